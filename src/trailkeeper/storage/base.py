"""The `Storage` protocol both backends implement, and the values that cross it."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from trailkeeper.errors import ConflictError
from trailkeeper.model.event import AuditAuthor, AuditEvent
from trailkeeper.query.ast import Node
from trailkeeper.query.plan import Order

if TYPE_CHECKING:
    from trailkeeper.storage.rows import Batch

_CURSOR = re.compile(r"^\s*(-?\d{1,19})\s*,\s*(\d{1,19})\s*$")


@dataclass(frozen=True, slots=True)
class Cursor:
    """A keyset position: Atlassian's ``"<epochMillis>,<id>"``."""

    ts: int
    id: int

    @classmethod
    def parse(cls, text: str) -> Cursor:
        match = _CURSOR.match(text)
        if not match:
            raise ValueError("Cursor format is invalid. Should be two numbers delimited by ,")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.ts},{self.id}"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event encoded for storage, so the writer only executes SQL.

    ``timestamp_ms`` and ``author`` are the event's own or the defaults (time of receipt,
    authenticated principal); ``doc`` is the stored REST document with them filled in;
    ``fingerprint`` hashes what the producer sent, for ``uid`` idempotency.
    """

    event: AuditEvent
    timestamp_ms: int
    author: AuditAuthor
    fingerprint: bytes | None
    doc: bytes
    text: str


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Ids of one batch in input order; ``created`` counts the events that were new;
    ``rejected`` lists the uid conflicts a lenient batch left out (their ids are 0)."""

    ids: list[int]
    created: int
    rejected: list[ConflictError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A stored row: the REST document (without ``id``) as JSON bytes."""

    id: int
    timestamp_ms: int
    doc: bytes

    def rest_json(self) -> bytes:
        """The REST entity as JSON, ``id`` first, without re-encoding the document."""
        return b'{"id":%d,%s' % (self.id, self.doc[1:])

    def to_event(self) -> AuditEvent:
        from trailkeeper.model.parse import event_from_rest

        event = event_from_rest(orjson.loads(self.doc))
        object.__setattr__(event, "id", self.id)
        return event


@dataclass(frozen=True, slots=True)
class RowPage:
    events: list[StoredEvent]
    next_cursor: Cursor | None
    more: bool = False  # rows follow this page (sorted pages have no cursor to say so)

    @property
    def last_page(self) -> bool:
        return not self.more

    @classmethod
    def of(cls, rows: Sequence[tuple[int, int, bytes]], limit: int, *,
           keyset: bool = True) -> RowPage:
        """A page from ``limit + 1`` fetched (id, ts, doc) rows: the extra row means more."""
        events = [StoredEvent(r[0], r[1], r[2]) for r in rows[:limit]]
        more = bool(len(rows) > limit and events)
        cursor = Cursor(events[-1].timestamp_ms, events[-1].id) if more and keyset else None
        return cls(events, cursor, more)


def stream_pages(storage: Storage, where: Node, *, descending: bool, batch_size: int,
                 offset: int = 0) -> Iterator[StoredEvent]:
    """Every matching event, one keyset page at a time (the `Storage.stream` of both stores
    for time order)."""
    cursor = None
    while True:
        page = storage.search(where, limit=batch_size, cursor=cursor, descending=descending,
                              offset=offset)
        offset = 0
        yield from page.events
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


@dataclass(frozen=True, slots=True)
class CatalogueObject:
    type: str
    id: str | None
    name: str
    uri: str | None


@dataclass(frozen=True, slots=True)
class CatalogueAction:
    category: str
    action: str
    area: str


@dataclass(frozen=True, slots=True)
class CatalogueAuthor:
    id: str
    name: str
    type: str
    uri: str | None


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    password_hash: str
    role: str
    disabled: bool = False


class Storage(Protocol):
    """A durable, append-only store of audit events.

    `append` is called from one writer thread per process; everything else may be called
    from any thread. Implementations: `SqliteStorage`, `PostgresStorage`.
    """

    url: str

    def prepare(self, events: Sequence[NewEvent]) -> Any:
        """Rows for `append`, built in the producer's thread (pure CPU, no I/O)."""
        ...

    def append(self, batches: Sequence[Batch]) -> list[AppendResult | ConflictError]:
        """Store several batches in one durable transaction (group commit).

        Each batch is atomic: a batch whose ``uid`` clashes with a stored event of different
        content stores nothing and yields a `ConflictError`; the other batches still commit.
        An event whose ``uid`` is already stored with the same content yields the existing id.
        """
        ...

    def search(
        self,
        where: Node,
        *,
        limit: int,
        cursor: Cursor | None = None,
        offset: int = 0,
        descending: bool = True,
        order: Order | None = None,
    ) -> RowPage:
        """One page in (timestamp, id) order, newest first unless ``descending`` is False;
        or, given an ``order`` by other columns, sorted by them and paged by ``offset``
        (no cursor)."""
        ...

    def count(self, where: Node) -> int: ...

    def stream(self, where: Node, *, descending: bool = True, order: Order | None = None,
               offset: int = 0, batch_size: int = 1000) -> Iterator[StoredEvent]:
        """Every matching event (after skipping ``offset``) in constant memory: keyset
        batches in time order, or one sorted query read in batches for another ``order``."""
        ...

    def get(self, event_id: int) -> StoredEvent | None: ...

    def max_id(self, where: Node | None = None) -> int:
        """The highest id among matching events (0 when none match)."""
        ...

    def find_objects(self, type: str, *, name: str | None = None, object_id: str | None = None,
                     limit: int = 100) -> list[CatalogueObject]: ...

    def objects_seen_together(self, type: str, object_id: str, other_type: str,
                              other_id: str) -> bool:
        """Whether some event names both objects (e.g. a repository and its project)."""
        ...

    def lookup_authors(self, search: str | None, *, limit: int,
                       offset: int = 0) -> list[CatalogueAuthor]: ...

    def actions(self) -> list[CatalogueAction]:
        """Every (category, action) ever stored, by category then action."""
        ...

    def lookup_objects(self, type: str, search: str | None, *, limit: int,
                       offset: int = 0) -> list[CatalogueObject]: ...

    def get_user(self, name: str) -> UserRecord | None: ...

    def put_user(self, user: UserRecord) -> None: ...

    def count_users(self) -> int: ...

    def integrity_check(self) -> list[str]:
        """Problems found by the database's own consistency check (empty when healthy)."""
        ...

    def close(self) -> None: ...
