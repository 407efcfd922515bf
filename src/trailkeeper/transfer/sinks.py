"""Where imported and followed events go: a store, written directly, or a server.

Both sinks are synchronous: `Sink.store` returns once the events are durable (committed to
the store, or acknowledged by the server), so a caller may record its progress afterwards.
Refusals come back with the tag of each refused event (its source and line).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from trailkeeper.client import Client, EventError
from trailkeeper.config import redact_url
from trailkeeper.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    PermissionDeniedError,
    TrailkeeperError,
    UnavailableError,
)
from trailkeeper.governance.live import LiveGovernance
from trailkeeper.model.event import AuditEvent
from trailkeeper.model.timestamps import now_ms
from trailkeeper.storage import open_storage
from trailkeeper.storage.rows import Batch
from trailkeeper.transfer.identity import encode_imported, is_imported

Tag = tuple[int, int]  # (source index, line number) of an event
# Statuses that refuse one event (invalid, uid clash, too large); any other refusal is about
# the server or the credentials, and would refuse every event alike.
_EVENT_REFUSALS = frozenset({400, 409, 413})


@dataclass(slots=True)
class Outcome:
    stored: int = 0
    present: int = 0  # already stored before (same uid, same content)
    refused: list[tuple[Tag, str]] = field(default_factory=list)


class Interrupted(Exception):
    """A stop was requested while a sink was waiting; nothing is known to be stored."""


class Sink(Protocol):
    reports_present: bool  # False: a server does not say which events it had already

    def store(self, events: Sequence[AuditEvent], documents: Sequence[bytes | None],
              tags: Sequence[Tag], stop: threading.Event | None = None) -> Outcome:
        """Store events (uids assigned); ``documents`` are their `identity.content`, when
        known. Raises `Interrupted` when ``stop`` is set before they are durable."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StoreTarget:
    """A store named by its URL; picklable, so worker processes open their own."""

    db_url: str
    reports_present = True

    def open(self) -> StoreSink:
        return StoreSink(self.db_url)

    def prepare(self) -> None:
        """Create or migrate the store once, before several processes open it."""
        open_storage(self.db_url).close()

    def __str__(self) -> str:
        return redact_url(self.db_url)


@dataclass(frozen=True, slots=True)
class ServerTarget:
    """A running Trailkeeper server, reached with HTTP Basic credentials. ``patience_s``: how
    long to wait for a server that does not acknowledge (None: as long as it takes)."""

    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    patience_s: float | None = None
    reports_present = False

    def open(self) -> ServerSink:
        auth = (self.user, self.password or "") if self.user is not None else None
        return ServerSink(self.url, auth, patience_s=self.patience_s)

    def prepare(self) -> None:
        pass

    def __str__(self) -> str:
        return redact_url(self.url)


Target = StoreTarget | ServerTarget


class StoreSink:
    """Writes straight to the store: one lenient batch per call, so a uid clash refuses only
    that event. (The import runs outside `AuditService`: no queue, no thread hop.)"""

    reports_present = True

    def __init__(self, db_url: str, *, clock: Callable[[], int] = now_ms) -> None:
        self.storage = open_storage(db_url)
        self._clock = clock
        # The store's redaction (read once per import). Imported events are history another
        # system already recorded under its own coverage: only redaction applies, so no
        # secret reaches the store, while coverage and the denylist keep the past intact.
        self._policy = LiveGovernance(self.storage).policy

    def store(self, events: Sequence[AuditEvent], documents: Sequence[bytes | None],
              tags: Sequence[Tag], stop: threading.Event | None = None) -> Outcome:
        events, documents = self._redact(events, documents)
        if not events:
            return Outcome()
        received = self._clock()
        encoded = [encode_imported(event, document, received)
                   for event, document in zip(events, documents, strict=True)]
        batch = Batch.of(encoded, self.storage.prepare(encoded), lenient=True)
        result = self.storage.append([batch])[0]
        if isinstance(result, ConflictError):  # not expected from a lenient batch
            return Outcome(refused=[(tag, result.message) for tag in tags])
        # A derived uid stored with other content: the same event with another area or level
        # (a REST export has none), so it is already there.
        refused = [(tags[c.index if c.index is not None else 0], c.message)
                   for c in result.rejected if not is_imported(c.uid)]
        return Outcome(result.created, len(events) - result.created - len(refused), refused)

    def _redact(self, events: Sequence[AuditEvent], documents: Sequence[bytes | None]
                ) -> tuple[list[AuditEvent], list[bytes | None]]:
        """The events redacted (a changed one loses its pre-rendered document)."""
        redacted = [self._policy.redact(event) for event in events]
        return redacted, [document if new is old else None
                          for new, old, document in zip(redacted, events, documents,
                                                        strict=True)]

    def close(self) -> None:
        self.storage.close()


class ServerSink:
    """Sends through `Client` (batched NDJSON, retried until acknowledged; the uids make
    retries harmless) and waits for the acknowledgement of every call's events."""

    reports_present = False
    _WAIT_S = 0.5

    def __init__(self, url: str, auth: tuple[str, str] | None = None, *,
                 patience_s: float | None = None) -> None:
        self._url = redact_url(url)
        self._patience_s = patience_s
        self._lock = threading.Lock()
        self._where: dict[str, Tag] = {}
        self._refused: list[tuple[Tag, EventError]] = []
        self._client = Client(url, auth=auth, batch_size=1000, on_error=self._on_error)

    def _on_error(self, error: EventError) -> None:
        with self._lock:
            self._refused.append((self._where.get(error.uid, (-1, 0)), error))

    def store(self, events: Sequence[AuditEvent], documents: Sequence[bytes | None],
              tags: Sequence[Tag], stop: threading.Event | None = None) -> Outcome:
        for event, tag in zip(events, tags, strict=True):
            with self._lock:
                self._where[event.uid or ""] = tag
            self._client.audit(event)
        waited = time.monotonic()
        while not self._client.flush(self._WAIT_S):
            if stop is not None and stop.is_set():
                raise Interrupted
            if self._patience_s is not None and time.monotonic() - waited > self._patience_s:
                raise UnavailableError(
                    f"the server at {self._url} has not acknowledged the events for "
                    f"{self._patience_s:g} s; giving up (running again stores nothing twice)")
        with self._lock:
            refused, self._refused = self._refused, []
            self._where.clear()
        for _, error in refused:
            if error.status not in _EVENT_REFUSALS:
                raise self._refusal(error)
        # As in StoreSink: a derived uid already stored with another area or level is there.
        refused = [(tag, error) for tag, error in refused
                   if not (error.status == 409 and is_imported(error.uid))]
        return Outcome(stored=len(events) - len(refused), refused=[
            (tag, f"refused by the server (HTTP {error.status}): {error.message}")
            for tag, error in refused])

    def _refusal(self, error: EventError) -> TrailkeeperError:
        """The error that stops the run: the server refuses every event, not one."""
        what = f"the server at {self._url} answered HTTP {error.status}: {error.message}"
        if error.status == 401:
            return AuthenticationError(f"{what} (check -u/--user and the password)")
        if error.status == 403:
            return PermissionDeniedError(f"{what} (the user may not record events)")
        if error.status == 0:
            return UnavailableError(f"the server at {self._url} did not acknowledge events: "
                                    f"{error.message}")
        return ConfigurationError(f"{what} (is -H/--host the server's URL?)")

    def close(self) -> None:
        self._client.close(timeout=5.0)
