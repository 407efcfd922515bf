"""`Lease`: one holder per cluster for a named piece of background work.

Consumers whose position is shared by the whole cluster (the detection engine, the alert
actions, the SIEM forwarders) must run in one process at a time, whichever node it is on.
The lease is a row of ``job_runs`` (`Storage.claim_job` with no minimum interval): the
holder renews it every third of its length; when the holder dies, another node takes over
once it expires. A pause longer than the lease can let two holders overlap briefly, which
at-least-once delivery tolerates.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from trailkeeper.storage.base import Storage

DEFAULT_LEASE_MS = 30_000


def process_owner() -> str:
    """This process's name in leases: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _now_ms() -> int:
    return int(time.time() * 1000)


class Lease:
    """The cluster-wide lease called ``name``, taken and renewed by `hold`."""

    def __init__(self, storage: Storage, name: str, *, owner: str | None = None,
                 lease_ms: int = DEFAULT_LEASE_MS,
                 clock: Callable[[], int] = _now_ms) -> None:
        self.storage = storage
        self.name = name
        self.owner = owner or process_owner()
        self.lease_ms = lease_ms
        self._clock = clock
        self._renew_at_ms = 0
        self.held = False

    def hold(self) -> bool:
        """Whether this process holds the lease now: takes it when free, renews it when a
        third of it has passed. Cheap to call before every batch."""
        now = self._clock()
        if self.held and now < self._renew_at_ms:
            return True
        self.held = self.storage.claim_job(self.name, self.owner, now, self.lease_ms, 0)
        self._renew_at_ms = now + self.lease_ms // 3 if self.held else 0
        return self.held

    def release(self) -> None:
        """Give the lease back so that another node can take over at once."""
        if self.held:
            self.storage.finish_job(self.name, self.owner, self._clock(), completed=False)
            self.held = False
