"""`AuditService`: record events from Python, search them, and serve the HTTP layer.

    service = AuditService.open("sqlite:///var/lib/trailkeeper/audit.db")
    service.audit(AuditEvent(type=AuditType("Repositories", "Repository created"), ...))
    page = service.search(AuditQuery(actions=["Repository created"]), limit=50)
    service.close()   # drains the queue: nothing recorded is lost
"""

from __future__ import annotations

import asyncio
import atexit
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from trailkeeper.errors import ConflictError
from trailkeeper.governance.live import LiveGovernance
from trailkeeper.ingest.writer import Overflow, Writer
from trailkeeper.metrics import Metrics
from trailkeeper.model.event import AuditAuthor, AuditEvent
from trailkeeper.model.timestamps import now_ms
from trailkeeper.query.ast import AuditQuery, Node
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import (
    AppendResult,
    Cursor,
    RowPage,
    Storage,
    StoredEvent,
)
from trailkeeper.storage.rows import Batch, encode

_EXIT_DRAIN_S = 30.0


@dataclass(frozen=True, slots=True)
class Page:
    """One page of events and the cursor of the next (None on the last page)."""

    events: list[AuditEvent]
    next_cursor: Cursor | None


class AuditService:
    """Records events durably and answers searches over one `Storage`."""

    def __init__(
        self,
        storage: Storage,
        *,
        clock: Callable[[], int] = now_ms,
        queue_size: int = 10_000,
        overflow: Overflow = "drop-oldest",
        metrics: Metrics | None = None,
        close_storage: bool = False,
    ) -> None:
        """``close_storage``: whether `close` also closes the store (`open` sets it)."""
        self.storage = storage
        self._close_storage = close_storage
        self.metrics = metrics or Metrics()
        self._clock = clock
        self.governance = LiveGovernance(storage)
        self.governance.start()
        self._writer = Writer(storage, self.metrics, capacity=queue_size, overflow=overflow,
                              clock=clock, screen=self._screen_one)
        self._closed = False
        atexit.register(self._close_at_exit)

    @classmethod
    def open(cls, db_url: str, **options: object) -> AuditService:
        """A service on the store named by ``db_url`` (``sqlite:///...`` or ``postgresql://...``)."""
        return cls(open_storage(db_url), close_storage=True, **options)  # type: ignore[arg-type]

    # -- recording -------------------------------------------------------------------------

    def audit(self, event: AuditEvent) -> None:
        """Record an event without waiting: it is queued and written by the writer thread.

        When the queue is full the oldest queued event is dropped, and an "Audit events
        discarded" event records how many (``overflow="block"`` waits instead).
        """
        self._writer.enqueue(event, self._clock())

    def submit(self, events: Sequence[AuditEvent], *,
               author: AuditAuthor = AuditAuthor.SYSTEM, screen: bool = True) -> AppendResult:
        """Store a batch atomically and wait until it is durable (the HTTP ingest path).

        The result's ids are those of the events the audit policy recorded (see `prepare`;
        ``screen=False`` records every event, still redacted). Raises `ConflictError` when a
        ``uid`` is reused with different content.
        """
        future = self._writer.submit(self.prepare(events, author, screen=screen))
        return future.result()

    async def commit_async(self, prepared: Batch) -> AppendResult:
        """Store a batch made by `prepare` and wait, without blocking the event loop."""
        return await asyncio.wrap_future(self._writer.submit(prepared))

    def prepare(self, events: Sequence[AuditEvent], author: AuditAuthor, *,
                screen: bool = True) -> Batch:
        """Pass a batch through the audit policy and encode what it keeps for the store,
        filling in defaults (time of receipt, author).

        ``screen=False`` still redacts but records whatever the coverage and denylist say
        (Trailkeeper's own configuration-change records). Pure CPU: callers run it in
        their own thread, leaving the writer only SQL to do.
        """
        received = self._clock()
        policy = self.governance.policy
        digest = self._writer.digest_leaves
        encoded = []
        skipped: list[tuple[int, str]] = []
        for position, event in enumerate(events):
            kept = policy.screen(event) if screen else policy.redact(event)
            if isinstance(kept, str):
                skipped.append((position, kept))
                self.metrics.events_not_recorded.labels(kept).inc()
            else:
                encoded.append(encode(kept, received, author, canonical=digest))
        return Batch.of(encoded, self.storage.prepare(encoded), skipped=tuple(skipped))

    def _screen_one(self, event: AuditEvent) -> AuditEvent | None:
        """The in-process queue's policy check: the event to store, or None."""
        kept = self.governance.policy.screen(event)
        if isinstance(kept, str):
            self.metrics.events_not_recorded.labels(kept).inc()
            return None
        return kept

    def after_commit(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (quickly: it runs on the writer thread) after each commit."""
        self._writer.after_commit.append(listener)

    def digest_leaves(self, enabled: bool = True) -> None:
        """Store each event's Merkle leaf digest with it, computed while encoding (a few
        microseconds an event), so that the tree's builder need not read the document back
        and re-encode it (several times that). A server with integrity on does."""
        self._writer.digest_leaves = enabled

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued so far is committed."""
        return self._writer.wait_idle(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Drain the queue and commit it (then close the store, if this service opened it).

        Waits as long as the store needs (or ``timeout`` seconds): a store that is down
        holds the queued events until it is back.
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._close_at_exit)
        self._writer.stop(timeout)
        self.governance.stop()
        if self._close_storage:
            self.storage.close()

    def _close_at_exit(self) -> None:
        """A program that never called `close` still gets its queued events written."""
        self.close(timeout=_EXIT_DRAIN_S)

    def __enter__(self) -> AuditService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------

    def search(self, query: AuditQuery | Node | None = None, *, limit: int = 200,
               cursor: Cursor | str | None = None, descending: bool = True) -> Page:
        """One page of matching events, newest first; pass ``next_cursor`` for the next."""
        rows = self.search_rows(query, limit=limit, cursor=cursor, descending=descending)
        return Page([row.to_event() for row in rows.events], rows.next_cursor)

    def search_rows(self, query: AuditQuery | Node | None = None, *, limit: int = 200,
                    cursor: Cursor | str | None = None, offset: int = 0,
                    descending: bool = True) -> RowPage:
        if isinstance(cursor, str):
            cursor = Cursor.parse(cursor)
        return self.storage.search(_where(query), limit=limit, cursor=cursor, offset=offset,
                                   descending=descending)

    def count(self, query: AuditQuery | Node | None = None) -> int:
        return self.storage.count(_where(query))

    def stream(self, query: AuditQuery | Node | None = None, *,
               descending: bool = True) -> Iterator[StoredEvent]:
        return self.storage.stream(_where(query), descending=descending)

    def get(self, event_id: int) -> AuditEvent | None:
        row = self.storage.get(event_id)
        return row.to_event() if row else None


def _where(query: AuditQuery | Node | None) -> Node:
    if query is None:
        return AuditQuery().to_ast()
    if isinstance(query, AuditQuery):
        return query.to_ast()
    return query


__all__ = ["AuditService", "ConflictError", "Page"]
