"""What every consumer of the committed log is, and the thread that drives one.

Consumers (the Atlassian-format file sink, and later syslog, Splunk HEC, webhooks and the
detection engine) read the committed log in id order from their own durable position
(`trailkeeper.consumers.cursor.LogCursor`). The server starts each one, calls `notify` after
every commit so that it need not wait for its next poll, and stops it at shutdown, after the
writer has drained, so that what was committed is delivered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("trailkeeper.consumers")

_FIRST_BACKOFF_S = 0.5


def backoff_s(failures: int, *, first_s: float, max_s: float,
              retry_after_s: float | None = None) -> float:
    """The pause after the ``failures``-th failure in a row: ``first_s`` doubling up to
    ``max_s``, or longer when the receiver asked for ``retry_after_s`` (still ``max_s`` at
    most)."""
    delay = first_s * 2.0 ** min(failures - 1, 60)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return min(max_s, delay)


class Consumer(Protocol):
    """A reader of the committed log with its own durable position."""

    @property
    def name(self) -> str:
        """Unique per store and node: the key of its position (``file-sink:<node>``)."""
        ...

    def start(self) -> None:
        """Start delivering in the background."""
        ...

    def notify(self) -> None:
        """New events were committed: look now instead of at the next poll."""
        ...

    def stop(self, timeout: float | None = 30.0) -> None:
        """Deliver what is committed (for up to ``timeout`` seconds), then stop."""
        ...


class Poller:
    """Runs ``step`` on a background thread until stopped.

    ``step`` returns how long to wait before the next step (0: at once, there is more);
    `notify` cuts the wait short. A step that raises is logged and retried with exponential
    back-off up to ``max_backoff_s``. On `stop`, ``finish`` runs on the thread with the
    deadline (a `time.monotonic` value, None for none) to deliver what is left.
    """

    def __init__(self, name: str, step: Callable[[], float], *,
                 finish: Callable[[float | None], None] | None = None,
                 max_backoff_s: float = 30.0) -> None:
        self.name = name
        self._step = step
        self._finish = finish
        self._max_backoff_s = max_backoff_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} was started already")
        self._thread = threading.Thread(target=self._run, name=f"trailkeeper-{self.name}",
                                        daemon=True)
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after ``finish`` delivered what it could within ``timeout`` seconds."""
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            # A little beyond the deadline: finish checks it between batches.
            self._thread.join(None if timeout is None else timeout + 5.0)
            if self._thread.is_alive():
                log.warning("%s did not stop within %s s", self.name, timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()  # a notify() from here on makes the next wait return at once
            try:
                delay = self._step()
                failures = 0
            except Exception:
                failures += 1
                delay = backoff_s(failures, first_s=_FIRST_BACKOFF_S,
                                  max_s=self._max_backoff_s)
                log.exception("%s failed (attempt %d); retrying in %.1f s", self.name,
                              failures, delay)
            if delay > 0:
                self._wake.wait(delay)
        if self._finish is not None:
            try:
                self._finish(self._deadline)
            except Exception:
                log.exception("%s failed while stopping", self.name)
