"""The `Storage` protocol both backends implement, and the values that cross it."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import orjson

from trailkeeper.errors import ConflictError
from trailkeeper.model.document import CanonicalDigest
from trailkeeper.model.event import AuditAuthor, AuditEvent
from trailkeeper.query.ast import Node
from trailkeeper.query.plan import Order

if TYPE_CHECKING:
    from trailkeeper.alerts.model import AlertQuery, AlertRecord, NewAlert
    from trailkeeper.integrity.tree import Tile
    from trailkeeper.storage.merkle import CheckpointRecord
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


class NewEvent(msgspec.Struct, frozen=True, gc=False):
    """An event encoded for storage, so the writer only executes SQL.

    ``timestamp_ms`` and ``author`` are the event's own or the defaults (time of receipt,
    authenticated principal); ``doc`` is the stored REST document with them filled in;
    ``fingerprint`` hashes what the producer sent, for ``uid`` idempotency; ``canonical``,
    when asked for, hashes the document's canonical bytes as far as the id, for the store to
    finish and keep as the event's Merkle leaf digest.

    A Struct rather than a frozen dataclass, whose ``__init__`` cost 3 µs per event; it
    refers to no container that could lead back to it, so the cycle collector skips it.
    """

    event: AuditEvent
    timestamp_ms: int
    author: AuditAuthor
    fingerprint: bytes | None
    doc: bytes
    text: str
    canonical: CanonicalDigest | None = None


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Ids of one batch in input order; ``created`` counts the events that were new;
    ``rejected`` lists the uid conflicts a lenient batch left out (their ids are 0)."""

    ids: list[int]
    created: int
    rejected: list[ConflictError] = field(default_factory=list)


# What the tree builder reads of an event (`Storage.leaf_rows_after`): id, time, which of the
# builder's marked actions it has (0: none of them), the leaf digest its writer stored
# (SHA-256 of the canonical bytes) and, only when there is none, the document. A plain tuple:
# the builder reads hundreds of thousands a second.
LeafRow = tuple[int, int, int, bytes | None, bytes | None]


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
                 offset: int = 0, cursor: Cursor | None = None) -> Iterator[StoredEvent]:
    """Every matching event (after ``cursor``, when given), one keyset page at a time (the
    `Storage.stream` of PostgreSQL for time order; an export resumed from a page's cursor)."""
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


# -- groups and grants (access control) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupRecord:
    name: str
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Grant:
    """A role (``target_type`` empty, ``target_id`` the role) or an administered object
    (``target_type`` ``PROJECT``, ``target_id`` ``12``) given to a user or a group."""

    grantee_kind: str  # "user" or "group"
    grantee: str
    target_type: str
    target_id: str

    @property
    def role(self) -> str | None:
        return self.target_id if not self.target_type else None


def group_records(rows: Sequence[tuple[str, str | None]]) -> list[GroupRecord]:
    """Groups from (group, member or None) rows sorted by group."""
    members: dict[str, list[str]] = {}
    for group, member in rows:
        names = members.setdefault(group, [])
        if member is not None:
            names.append(member)
    return [GroupRecord(name, tuple(names)) for name, names in members.items()]


# -- API tokens (issue 4) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored API token: its public id and the SHA-256 of its secret, never the secret.

    ``scopes`` and ``allow_ips`` (CIDRs) are tuples of text; ``rate_requests`` within
    ``rate_minutes`` is the rate limit (None: unlimited); times are epoch milliseconds.
    """

    id: str
    user: str
    secret_sha256: str
    scopes: tuple[str, ...]
    created_ms: int
    created_by: str
    description: str = ""
    expires_ms: int | None = None
    allow_ips: tuple[str, ...] = ()
    rate_requests: int | None = None
    rate_minutes: int | None = None
    revoked_ms: int | None = None
    last_used_ms: int | None = None


TOKEN_COLUMNS = ", ".join((
    "id", "user_name", "secret_sha256", "scopes", "created_ms", "created_by", "description",
    "expires_ms", "allow_ips", "rate_requests", "rate_minutes", "revoked_ms", "last_used_ms"))


def token_row(token: TokenRecord) -> tuple[object, ...]:
    """``token`` as a row of `TOKEN_COLUMNS` (lists joined by spaces)."""
    return (token.id, token.user, token.secret_sha256, " ".join(token.scopes),
            token.created_ms, token.created_by, token.description, token.expires_ms,
            " ".join(token.allow_ips), token.rate_requests, token.rate_minutes,
            token.revoked_ms, token.last_used_ms)


TOKEN_AND_OWNER = ", ".join(f"t.{c}" for c in TOKEN_COLUMNS.split(", ")) + (
    ", u.name, u.password_hash, u.role, u.disabled"
    " FROM api_tokens t LEFT JOIN users u ON u.name = t.user_name WHERE t.id = ")


def token_and_owner_of_row(row: Sequence[Any]) -> tuple[TokenRecord, UserRecord | None]:
    owner = UserRecord(row[13], row[14], row[15], bool(row[16])) if row[13] else None
    return token_of_row(row), owner


def token_of_row(row: Sequence[Any]) -> TokenRecord:
    return TokenRecord(row[0], row[1], row[2], tuple(row[3].split()), row[4], row[5], row[6],
                       row[7], tuple(row[8].split()), row[9], row[10], row[11], row[12])


# -- scheduled jobs and retention (issue 5) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobRun:
    """A row of ``job_runs``: who holds the job's lease (until when) and when it last ran
    to the end (epoch ms; None before its first run)."""

    name: str
    owner: str | None
    lease_until_ms: int
    last_run_ms: int | None


# -- web UI sessions (issue 8) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A signed-in browser: ``id`` is the SHA-256 (hex) of the cookie's secret, never the
    secret; ``credential`` fingerprints the user's password hash at sign-in; times are epoch
    milliseconds (``seen_ms``: the last request, written at most once a minute)."""

    id: str
    user: str
    credential: str
    created_ms: int
    seen_ms: int
    expires_ms: int
    client: str | None = None


SESSION_COLUMNS = "id, user_name, credential, created_ms, seen_ms, expires_ms, client"


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

    def histogram(self, where: Node, *, start_ms: int, bucket_ms: int, buckets: int,
                  timeout_ms: int | None = None) -> list[int] | None:
        """How many matching events fall in each of ``buckets`` consecutive windows of
        ``bucket_ms`` from ``start_ms`` (the web UI's chart), counted in SQL with the
        search's own compiled condition and access path, so a scope or filter means the
        same as in `search`. None when counting took longer than ``timeout_ms``."""
        ...

    def stream(self, where: Node, *, descending: bool = True, order: Order | None = None,
               offset: int = 0, batch_size: int = 1000) -> Iterator[StoredEvent]:
        """Every matching event (after skipping ``offset``) in constant memory: keyset
        batches in time order, or one sorted query read in batches for another ``order``."""
        ...

    def get(self, event_id: int) -> StoredEvent | None: ...

    def max_id(self, where: Node | None = None) -> int:
        """The highest id among matching events (0 when none match)."""
        ...

    def events_after(self, last_id: int, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events with ids above ``last_id``, in id order: the committed log
        as its consumers read it. Ids grow in commit order, so an event committed later
        never has a lower id than one already read."""
        ...

    def leaf_rows_after(self, last_id: int, limit: int,
                        marked: Sequence[str] = ()) -> list[LeafRow]:
        """Up to ``limit`` events after ``last_id`` in id order, as the Merkle tree's
        builder reads them: the leaf digest their writer stored, or else the document; an
        event whose action is ``marked[i]`` comes with the mark ``i + 1``.

        (Marks rather than the action: turning every action into a str cost the builder
        a third of its reading.)"""
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

    # -- groups and grants (access control) ------------------------------------------------

    def list_users(self) -> list[UserRecord]: ...

    def create_group(self, name: str) -> bool:
        """False when the group exists already."""
        ...

    def delete_group(self, name: str) -> bool:
        """Delete a group, its memberships and the grants to it; False when unknown."""
        ...

    def list_groups(self) -> list[GroupRecord]: ...

    def add_member(self, group: str, user: str) -> bool:
        """False when the user was a member already (the group must exist)."""
        ...

    def remove_member(self, group: str, user: str) -> bool: ...

    def add_grant(self, grant: Grant) -> bool:
        """False when the grant existed already."""
        ...

    def remove_grant(self, grant: Grant) -> bool: ...

    def list_grants(self) -> list[Grant]: ...

    def grants_for(self, user: str) -> list[Grant]:
        """The grants to ``user`` and to every group ``user`` belongs to."""
        ...

    # -- API tokens (issue 4) --------------------------------------------------------------

    def put_token(self, token: TokenRecord) -> None:
        """Store a new token (ids are unique; a clash raises)."""
        ...

    def get_token(self, token_id: str) -> TokenRecord | None: ...

    def get_token_and_owner(self, token_id: str
                            ) -> tuple[TokenRecord, UserRecord | None] | None:
        """The token and its owner in one round trip (the per-request check)."""
        ...

    def list_tokens(self, user: str | None = None) -> list[TokenRecord]:
        """Every token (of ``user``), revoked ones included, oldest first."""
        ...

    def revoke_token(self, token_id: str, when_ms: int) -> bool:
        """Mark a token revoked; False when there is no such token (revoking twice keeps
        the first time)."""
        ...

    def touch_token(self, token_id: str, when_ms: int) -> None:
        """Record the token's last use (callers throttle this)."""
        ...

    # -- shared run-time settings and consumer positions (issue 5) ------------------------

    def load_settings(self) -> tuple[int, dict[str, str]]:
        """(version, {name: JSON text}) of every stored setting; version 0 when none."""
        ...

    def settings_version(self) -> int:
        """The version of the newest change (cheap: nodes poll it)."""
        ...

    def put_settings(self, values: Mapping[str, str]) -> int:
        """Store settings (JSON text) in one transaction; the new version."""
        ...

    def get_position(self, consumer: str) -> str | None:
        """A consumer's saved state (JSON text), None before its first save."""
        ...

    def put_position(self, consumer: str, state: str) -> None: ...

    # -- scheduled jobs and retention (issue 5) --------------------------------------------

    def delete_events_before(self, cutoff_ms: int, limit: int) -> int:
        """Delete up to ``limit`` of the oldest events (in (ts, id) order) with ts below
        ``cutoff_ms``, with their objects, uid and full-text entry, in one short
        transaction; how many were deleted. Only retention calls it."""
        ...

    def delete_oldest_events(self, keep: int, limit: int) -> int:
        """Delete up to ``limit`` of the oldest events so that at most ``keep`` remain
        (counted when called), like `delete_events_before`; how many were deleted."""
        ...

    def estimated_count(self) -> int:
        """A fast estimate of how many events are stored (never a full scan of a large
        store on PostgreSQL)."""
        ...

    def claim_job(self, name: str, owner: str, now_ms: int, lease_ms: int,
                  min_interval_ms: int) -> bool:
        """Take (or, for its holder, extend) the lease of a cluster-wide job: succeeds only
        when no other owner holds an unexpired lease and the job last ran at least
        ``min_interval_ms`` ago (0: whenever, the forced run). Atomic across nodes."""
        ...

    def finish_job(self, name: str, owner: str, now_ms: int, *, completed: bool = True) -> None:
        """Give the lease back; ``completed`` records ``now_ms`` as the last run (False: the
        run failed or was stopped, the next check may try again at once)."""
        ...

    def get_job(self, name: str) -> JobRun | None: ...

    # -- alerts (issue 6) -------------------------------------------------------------------

    def record_alerts(self, alerts: Sequence[NewAlert], *, throttle_ms: int, now_ms: int,
                      position: tuple[str, str] | None = None) -> list[int]:
        """Record rule matches in one transaction, in order: a (rule_id, trigger_id) already
        recorded is skipped; a match of the same rule and group as an open alert whose last
        match is at most ``throttle_ms`` older is merged into it (count, event ids, last
        time); any other becomes a new alert. ``position`` (consumer name, state JSON) is
        saved in the same transaction. The ids of the alerts created."""
        ...

    def list_alerts(self, query: AlertQuery) -> list[AlertRecord]:
        """Alerts matching ``query``, newest (highest id) first."""
        ...

    def get_alert(self, alert_id: int) -> AlertRecord | None: ...

    def acknowledge_alerts(self, ids: Sequence[int], by: str, now_ms: int) -> int:
        """Mark open alerts acknowledged; how many changed (acknowledged ones keep their
        first acknowledgement)."""
        ...

    def alerts_after(self, last_id: int, limit: int) -> list[AlertRecord]:
        """Up to ``limit`` alerts with ids above ``last_id``, in id order (ids grow in
        commit order, as events' do)."""
        ...

    def last_alert_id(self) -> int:
        """The highest alert id (0 when there is none)."""
        ...

    # -- the verifiable log (issue 7; trailkeeper.storage.merkle) -----------------------------

    def merkle_save(self, tiles: Sequence[Tile], position: str, expected: str | None,
                    checkpoint: CheckpointRecord | None = None) -> bool:
        """Save the tree builder's new tiles, position and checkpoint in one transaction, if
        its stored position is still ``expected``; False (nothing written) otherwise."""
        ...

    def merkle_tiles(self, level: int, first: int, last: int) -> list[Tile]:
        """Stored tiles ``first`` to ``last`` of a level, in order; absent ones left out."""
        ...

    def merkle_tiles_at(self, keys: Sequence[tuple[int, int]]) -> list[Tile]:
        """The stored tiles among ``keys`` ((level, index) pairs), read at once."""
        ...

    def merkle_leaf_tile(self, event_id: int) -> Tile | None:
        """The first level-0 tile whose last event id is ``event_id`` or more."""
        ...

    def merkle_first_leaf_tile(self) -> int | None:
        """The lowest level-0 tile still kept (None before the first)."""
        ...

    def merkle_prune(self, before_id: int) -> int:
        """Remove the leaf tiles of events that all precede ``before_id``; how many."""
        ...

    def checkpoints(self, *, after_size: int = -1, limit: int = 1000) -> list[CheckpointRecord]:
        """Checkpoints larger than ``after_size``, smallest first."""
        ...

    def checkpoint(self, size: int | None = None) -> CheckpointRecord | None:
        """The checkpoint of ``size`` leaves, or the latest (None when there is none)."""
        ...

    def put_signing_key(self, vkey: str, now_ms: int) -> None: ...

    def signing_keys(self) -> list[str]:
        """The verifier keys that signed checkpoints here, oldest first."""
        ...

    # -- web UI sessions (issue 8) ---------------------------------------------------------

    def put_session(self, session: SessionRecord) -> None: ...

    def get_session(self, session_id: str) -> SessionRecord | None: ...

    def touch_session(self, session_id: str, seen_ms: int) -> None: ...

    def delete_session(self, session_id: str) -> bool:
        """End a session (sign-out); False when there was none."""
        ...

    def delete_stale_sessions(self, now_ms: int, idle_ms: int) -> int:
        """Delete sessions past their end or idle for more than ``idle_ms``; how many."""
        ...

    def integrity_check(self) -> list[str]:
        """Problems found by the database's own consistency check (empty when healthy)."""
        ...

    def close(self) -> None: ...
