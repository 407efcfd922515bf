"""The server store: PostgreSQL through psycopg 3, one writer connection, a pool of readers.

Durability: the writer runs with ``synchronous_commit = on`` and `append` returns only after
COMMIT, so an acknowledged event is in the flushed WAL. Ids: every append takes one
transaction-level advisory lock, then resolves uids and reserves its ids from
``events_id_seq``; the lock is held until COMMIT, so ids grow in commit order even with
several processes on one database, and a reader following ids never skips a late commit.

Ingest speed: rows go in by binary COPY. ``to_tsvector`` is a quarter of the server's work,
so a second connection of the writer computes the vectors while the first stores the objects,
uids and catalogues; the vectors come back in tsvector's binary format and are COPYed with
their events.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import astuple
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from trailkeeper.alerts.model import AlertQuery, AlertRecord, NewAlert
from trailkeeper.config import redact_url
from trailkeeper.errors import ConflictError, StorageError
from trailkeeper.integrity.tree import Tile
from trailkeeper.query.ast import MatchAll, Node
from trailkeeper.query.compile import POSTGRES, compile_where, contains_pattern
from trailkeeper.query.plan import (
    Order,
    Page,
    keyset_order,
    plan_histogram,
    plan_search,
    plan_sorted,
)
from trailkeeper.storage import alerts as alert_rows
from trailkeeper.storage import dialect
from trailkeeper.storage import merkle as merkle_rows
from trailkeeper.storage.base import (
    SESSION_COLUMNS,
    TOKEN_AND_OWNER,
    TOKEN_COLUMNS,
    AppendResult,
    CatalogueAction,
    CatalogueAuthor,
    CatalogueObject,
    Cursor,
    Grant,
    GroupRecord,
    JobRun,
    LeafRow,
    NewEvent,
    RowPage,
    SessionRecord,
    StoredEvent,
    TokenRecord,
    UserRecord,
    group_records,
    stream_pages,
    token_and_owner_of_row,
    token_of_row,
    token_row,
)
from trailkeeper.storage.merkle import CheckpointRecord
from trailkeeper.storage.migrations import migrations
from trailkeeper.storage.prune import doomed
from trailkeeper.storage.rows import (
    Accepted,
    Batch,
    Catalogue,
    object_keys,
    plan_group,
    uids_of,
)

log = logging.getLogger("trailkeeper.storage")

# Advisory lock keys (per database): one serialises appends, one schema migrations.
_APPEND_LOCK = 0x7472_6B70_0001
_MIGRATE_LOCK = 0x7472_6B70_0002
_ALERTS_LOCK = 0x7472_6B70_0006  # serialises alert writers (record_alerts)
_INTEGRITY_LOCK = 0x7472_6B70_0007  # serialises Merkle tree writers (merkle_save, prune)
_POOL_MAX = 10
_CONNECT_TIMEOUT_S = 10
_POOL_OPEN_TIMEOUT_S = 30.0
# A tsvector holds at most 1 MB and takes up to about 3 bytes per byte of text; beyond this
# an event's text is cut so that one huge event cannot fail its whole group commit.
_MAX_SEARCH_BYTES = 256 * 1024

# One vector per text, in input order; %b: a binary array costs Python half the time.
_VECTORS = ("SELECT to_tsvector('simple', t) FROM unnest(%b::text[]) WITH ORDINALITY AS u(t, n)"
            " ORDER BY n")
_EVENT_COPY = ("COPY events (id, ts, area, level, category, action, author_id, author_name,"
               " source, method, node, system, uid, doc, search, leaf_digest)"
               " FROM STDIN (FORMAT BINARY)")
# The search column gets the bytes of tsvector's binary format as the server sent them; a
# binary COPY takes each field in its column's format, so "bytea" passes them through as is.
_EVENT_TYPES = ("int8", "int8", "text", "text", "text", "text", "text", "text", "text",
                "text", "text", "text", "text", "bytea", "bytea", "bytea")
_OBJECT_TYPES = ("text", "text", "int8", "int8", "int4", "text")
_UID_TYPES = ("text", "int8", "bytea")

# Explicit, whatever the server or role default: COMMIT returns once the WAL is flushed, so
# an acknowledged event survives a crash of the database server.
_WRITER_SETUP = "SET synchronous_commit = on"
# Readers (and the writer's full-text helper) never write; the server enforces it. Custom
# plans always: after five runs a prepared search would switch to a generic plan that cannot
# see the actual object or text and scans the whole time index.
_READER_SETUP = ("SET default_transaction_read_only = on;"
                 " SET plan_cache_mode = force_custom_plan")


class PostgresStorage:
    """`Storage` on a PostgreSQL database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._password = _password(url)
        self._safe_url = self._scrub(redact_url(url))
        self._options = self._connect_options()
        self._write_lock = threading.Lock()
        self._closed = False
        self._token_lock = threading.Lock()  # API tokens: see _token_lookup
        self._token_con: psycopg.Connection[tuple[Any, ...]] | None = None
        self._prune_lock = threading.Lock()  # retention: see _delete_first
        self._prune_con: psycopg.Connection[tuple[Any, ...]] | None = None
        with contextlib.ExitStack() as undo:
            self._writer = self._connect(_WRITER_SETUP)
            undo.callback(self._writer.close)
            # The writer's helper: computes full-text vectors while the writer works.
            self._vectors = self._connect(_READER_SETUP)
            undo.callback(self._vectors.close)
            self._migrate()
            self._pool = self._open_pool()
            undo.pop_all()  # from here on close() closes them

    # -- connections -----------------------------------------------------------------------

    def _connect_options(self) -> dict[str, Any]:
        try:
            given = conninfo_to_dict(self.url)
        except psycopg.Error:
            # from None: the original message may quote the URL, password and all.
            raise StorageError(f"invalid database URL {self._safe_url!r}") from None
        options: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in given:
            options["connect_timeout"] = _CONNECT_TIMEOUT_S
        return options

    def _connect(self, setup: str) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            con = psycopg.connect(self.url, **self._options)
        except psycopg.Error as exc:
            raise self._unavailable(exc) from None
        try:
            con.execute(setup)
        except BaseException:
            con.close()
            raise
        return con

    def _open_pool(self) -> ConnectionPool[psycopg.Connection[tuple[Any, ...]]]:
        pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            self.url, min_size=1, max_size=_POOL_MAX, kwargs=self._options,
            configure=_configure_reader, open=False, name="trailkeeper-readers",
            # A cheap round trip that drops connections the server closed (restart, failover)
            # before a request gets one.
            check=ConnectionPool.check_connection)
        try:
            pool.open(wait=True, timeout=_POOL_OPEN_TIMEOUT_S)
        except Exception as exc:
            pool.close()
            raise self._unavailable(exc) from None
        return pool

    def _unavailable(self, exc: Exception) -> StorageError:
        return StorageError(f"cannot connect to {self._safe_url}: {self._scrub(str(exc))}")

    def _scrub(self, text: str) -> str:
        """Text fit for logs: the password (wherever the URL put it) masked."""
        return text.replace(self._password, "***") if self._password else text

    def _writing(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The writer connection (call with the write lock held); it and its helper are
        reconnected if either broke (the server restarted, a failover)."""
        if self._closed:
            raise StorageError("the store is closed")
        if _unusable(self._writer) or _unusable(self._vectors):
            log.warning("reconnecting the writer to %s", self._safe_url)
            self._writer.close()
            self._vectors.close()
            self._writer = self._connect(_WRITER_SETUP)
            self._vectors = self._connect(_READER_SETUP)
        return self._writer

    @contextlib.contextmanager
    def _reader(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        if self._closed:
            raise StorageError("the store is closed")
        with self._pool.connection() as con:
            yield con

    def _migrate(self) -> None:
        """Apply pending migrations, each once, in a transaction; the session advisory lock
        makes two processes starting together on an empty database take turns."""
        con = self._writer
        con.execute("SELECT pg_advisory_lock(%s)", (_MIGRATE_LOCK,))
        try:
            con.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                        "version integer PRIMARY KEY, name text NOT NULL, applied_ms bigint)")
            done = {row[0] for row in con.execute("SELECT version FROM schema_migrations")}
            for migration in migrations("postgres"):
                if migration.version in done:
                    continue
                with con.transaction():
                    con.execute(migration.sql)
                    con.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                                (migration.version, migration.name, int(time.time() * 1000)))
                log.info("applied migration %04d_%s", migration.version, migration.name)
        finally:
            con.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATE_LOCK,))

    # -- writing ---------------------------------------------------------------------------

    def prepare(self, events: Sequence[NewEvent]) -> None:
        """Nothing to prepare: rows are streamed to COPY straight from the events."""
        return None

    def append(self, batches: Sequence[Batch]) -> list[AppendResult | ConflictError]:
        with self._write_lock:
            con = self._writing()
            with con.transaction():
                # Held until COMMIT: ids are reserved and uids resolved by one writer at a time.
                con.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
                return self._append(con, batches)

    def _append(
        self, con: psycopg.Connection[tuple[Any, ...]], batches: Sequence[Batch]
    ) -> list[AppendResult | ConflictError]:
        stored = self._stored_uids(con, batches)
        # Planning is cheap: a dry run counts the fresh events, so that one sequence call
        # reserves their ids, and the real run hands them out.
        _, dry = plan_group(batches, dict(stored), 0)
        count = sum(len(item.plan.fresh) for item in dry)
        results, accepted = plan_group(batches, stored, self._reserve_ids(con, count))
        if count:
            self._insert(con, accepted)
        return results

    def _stored_uids(
        self, con: psycopg.Connection[tuple[Any, ...]], batches: Sequence[Batch]
    ) -> dict[str, tuple[int, bytes]]:
        uids = uids_of(batches)
        if not uids:
            return {}
        rows = con.execute("SELECT uid, event_id, fingerprint FROM event_uids"
                           " WHERE uid = ANY(%s)", (uids,), binary=True).fetchall()
        return {uid: (event_id, fingerprint) for uid, event_id, fingerprint in rows}

    def _reserve_ids(self, con: psycopg.Connection[tuple[Any, ...]], count: int) -> int:
        """The first of ``count`` consecutive new ids (one sequence call, under the lock)."""
        if count == 0:
            return 0
        row = con.execute("SELECT setval('events_id_seq', nextval('events_id_seq') + %s - 1)",
                          (count,)).fetchone()
        assert row is not None
        return int(row[0]) - count + 1

    def _insert(self, con: psycopg.Connection[tuple[Any, ...]],
                accepted: Sequence[Accepted]) -> None:
        """COPY the fresh events, their objects and uids; upsert the catalogues."""
        fresh: list[NewEvent] = []
        catalogue = Catalogue()
        for item in accepted:
            fresh += item.fresh()
            catalogue.merge(item.batch.catalogue)
        first_id = accepted[0].first_id
        ids = range(first_id, first_id + len(fresh))
        # Pipeline mode sends the query without waiting for its result: the helper's server
        # process computes the vectors while this one stores the other rows. (With a libpq
        # older than 14 the same steps run one after the other.)
        overlap = (self._vectors.pipeline() if psycopg.Pipeline.is_supported()
                   else contextlib.nullcontext())
        with self._vectors.cursor() as vectors, con.cursor() as cur:
            with overlap:
                vectors.execute(_VECTORS, ([_search_text(new.text) for new in fresh],),
                                binary=True)
                _copy_rows(cur, "event_objects (type, object_id, ts, event_id, pos, name)",
                           _OBJECT_TYPES,
                           [(kind, oid, new.timestamp_ms, event_id, pos, name)
                            for event_id, new in zip(ids, fresh, strict=True)
                            for pos, (kind, oid, name) in object_keys(new.event)])
                _copy_rows(cur, "event_uids (uid, event_id, fingerprint)", _UID_TYPES,
                           [(new.event.uid, event_id, new.fingerprint)
                            for event_id, new in zip(ids, fresh, strict=True)
                            if new.event.uid is not None and new.fingerprint is not None])
                self._upsert_catalogue(cur, catalogue)
            with cur.copy(_EVENT_COPY) as copy:
                copy.set_types(_EVENT_TYPES)
                for event_id, new, (vector,) in zip(ids, fresh, vectors, strict=True):
                    e, author, t = new.event, new.author, new.event.type
                    copy.write_row((
                        event_id, new.timestamp_ms, t.area.value, t.level.value, t.category,
                        t.action, author.id, author.name, e.source, e.method, e.node, e.system,
                        e.uid, new.doc, vector,
                        None if new.canonical is None else new.canonical.digest(event_id),
                    ))

    @staticmethod
    def _upsert_catalogue(cur: psycopg.Cursor[tuple[Any, ...]], catalogue: Catalogue) -> None:
        """One array upsert per catalogue (no row appears twice: the keys are dict keys)."""
        actions = [(action, category, akey, ckey, str(area))
                   for (action, category), (akey, ckey, area) in catalogue.actions.items()]
        authors = [(aid, name, kind, uri, ts)
                   for aid, (name, kind, uri, ts) in catalogue.authors.items()]
        objects = [(kind, oid, name, uri, ts)
                   for (kind, oid, name), (uri, ts) in catalogue.objects.items()]
        if actions:
            cur.execute(
                "INSERT INTO catalogue_actions AS c SELECT * FROM unnest(%s::text[],"
                " %s::text[], %s::text[], %s::text[], %s::text[]) ON CONFLICT (action, category)"
                " DO UPDATE SET action_key = coalesce(excluded.action_key, c.action_key),"
                " category_key = coalesce(excluded.category_key, c.category_key),"
                " area = excluded.area", _columns(actions, 5))
        if authors:
            cur.execute(
                "INSERT INTO catalogue_authors AS c SELECT * FROM unnest(%s::text[],"
                " %s::text[], %s::text[], %s::text[], %s::bigint[]) ON CONFLICT (author_id)"
                " DO UPDATE SET name = excluded.name, type = excluded.type, uri = excluded.uri,"
                " last_seen = excluded.last_seen WHERE excluded.last_seen >= c.last_seen",
                _columns(authors, 5))
        if objects:
            cur.execute(
                "INSERT INTO catalogue_objects AS c SELECT * FROM unnest(%s::text[],"
                " %s::text[], %s::text[], %s::text[], %s::bigint[])"
                " ON CONFLICT (type, object_id, name) DO UPDATE SET"
                " uri = coalesce(excluded.uri, c.uri),"
                " last_seen = greatest(c.last_seen, excluded.last_seen)", _columns(objects, 5))

    def optimize(self) -> None:
        """Gather planner statistics now (after bulk loads)."""
        with self._write_lock:
            self._writing().execute("ANALYZE")

    # -- reading ---------------------------------------------------------------------------

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
        if order is not None and keyset_order(order) is None:
            statement, params = plan_sorted(where, order, POSTGRES, limit=limit, offset=offset)
            with self._reader() as con:
                rows = con.execute(statement, params, binary=True).fetchall()
            return RowPage.of(rows, limit, keyset=False)
        if order is not None:
            descending = order[0][1]
        page = Page.after((cursor.ts, cursor.id) if cursor else None, limit=limit,
                          offset=offset, descending=descending)
        # No text_matches: PostgreSQL's planner weighs a wide full-text match by itself.
        statement, params = plan_search(where, page, POSTGRES)
        with self._reader() as con:
            rows = con.execute(statement, params, binary=True).fetchall()
        return RowPage.of(rows, limit)

    def count(self, where: Node) -> int:
        sql, params = compile_where(where, POSTGRES)
        return int(self._one(f"SELECT count(*) FROM events e WHERE {sql}", params) or 0)

    def histogram(self, where: Node, *, start_ms: int, bucket_ms: int, buckets: int,
                  timeout_ms: int | None = None) -> list[int] | None:
        statement, params = plan_histogram(where, start_ms=start_ms, bucket_ms=bucket_ms,
                                           buckets=buckets, dialect=POSTGRES)
        counts = [0] * buckets
        try:
            with self._reader() as con, con.transaction():
                if timeout_ms is not None:
                    con.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout_ms))}")
                rows = con.execute(statement, params).fetchall()
        except psycopg.errors.QueryCanceled:
            if timeout_ms is None:
                raise
            return None  # the server cancelled it: took longer than timeout_ms
        for bucket, count in rows:
            if 0 <= bucket < buckets:
                counts[int(bucket)] = int(count)
        return counts

    def stream(self, where: Node, *, descending: bool = True, order: Order | None = None,
               offset: int = 0, batch_size: int = 1000) -> Iterator[StoredEvent]:
        if order is None or keyset_order(order) is not None:
            if order is not None:
                descending = order[0][1]
            return stream_pages(self, where, descending=descending, batch_size=batch_size,
                                offset=offset)
        return self._stream_sorted(where, order, offset, batch_size)

    def _stream_sorted(self, where: Node, order: Order, offset: int,
                       batch_size: int) -> Iterator[StoredEvent]:
        """One sorted query read through a server-side cursor, in one snapshot."""
        statement, params = plan_sorted(where, order, POSTGRES, limit=None, offset=offset)
        with self._reader() as con, con.transaction(), \
                con.cursor(name="trailkeeper_export", binary=True) as rows:
            rows.execute(statement, params)
            while batch := rows.fetchmany(batch_size):
                yield from (StoredEvent(*row) for row in batch)

    def get(self, event_id: int) -> StoredEvent | None:
        with self._reader() as con:
            row = con.execute("SELECT id, ts, doc FROM events WHERE id = %s", (event_id,),
                              binary=True).fetchone()
        return StoredEvent(row[0], row[1], row[2]) if row else None

    def max_id(self, where: Node | None = None) -> int:
        sql, params = compile_where(where or MatchAll(), POSTGRES)
        return int(self._one(f"SELECT max(e.id) FROM events e WHERE {sql}", params) or 0)

    def leaf_rows_after(self, last_id: int, limit: int,
                        marked: Sequence[str] = ()) -> list[LeafRow]:
        with self._reader() as con:
            rows = con.execute(merkle_rows.leaf_rows_query(dialect.POSTGRES, len(marked)),
                               (*marked, last_id, limit), binary=True).fetchall()
        return rows

    def events_after(self, last_id: int, limit: int) -> list[StoredEvent]:
        with self._reader() as con:
            rows = con.execute("SELECT id, ts, doc FROM events WHERE id > %s ORDER BY id"
                               " LIMIT %s", (last_id, limit), binary=True).fetchall()
        return [StoredEvent(r[0], r[1], r[2]) for r in rows]

    def find_objects(self, type: str, *, name: str | None = None, object_id: str | None = None,
                     limit: int = 100) -> list[CatalogueObject]:
        sql = "SELECT type, object_id, name, uri FROM catalogue_objects WHERE upper(type) = %s"
        params: list[object] = [type.upper()]
        if name is not None:
            sql += " AND lower(name) = lower(%s)"
            params.append(name)
        if object_id is not None:
            sql += " AND object_id = %s"
            params.append(object_id)
        sql += " ORDER BY last_seen DESC LIMIT %s"
        rows = self._all(sql, [*params, limit])
        return [CatalogueObject(r[0], r[1] or None, r[2], r[3]) for r in rows]

    def objects_seen_together(self, type: str, object_id: str, other_type: str,
                              other_id: str) -> bool:
        return self._one(
            "SELECT 1 FROM event_objects a WHERE a.type = %s AND a.object_id = %s AND EXISTS"
            " (SELECT 1 FROM event_objects b WHERE b.type = %s AND b.object_id = %s"
            " AND b.ts = a.ts AND b.event_id = a.event_id) LIMIT 1",
            [type.upper(), object_id, other_type.upper(), other_id],
        ) is not None

    def actions(self) -> list[CatalogueAction]:
        rows = self._all("SELECT category, action, area FROM catalogue_actions"
                         " ORDER BY category, action", [])
        return [CatalogueAction(*r) for r in rows]

    def lookup_authors(self, search: str | None, *, limit: int,
                       offset: int = 0) -> list[CatalogueAuthor]:
        sql = "SELECT author_id, name, type, uri FROM catalogue_authors"
        params: list[object] = []
        if search:
            sql += " WHERE name ILIKE %s OR author_id = %s"
            params += [contains_pattern(search), search]
        # Atlassian puts the built-in System, Anonymous and Unknown authors first.
        sql += (" ORDER BY author_id NOT IN ('-1', '-2', '-3'), lower(name)"
                " LIMIT %s OFFSET %s")
        return [CatalogueAuthor(*r) for r in self._all(sql, [*params, limit, offset])]

    def lookup_objects(self, type: str, search: str | None, *, limit: int,
                       offset: int = 0) -> list[CatalogueObject]:
        sql = "SELECT type, object_id, name, uri FROM catalogue_objects WHERE upper(type) = %s"
        params: list[object] = [type.upper()]
        if search:
            sql += " AND (name ILIKE %s OR object_id = %s)"
            params += [contains_pattern(search), search]
        sql += " ORDER BY lower(name) LIMIT %s OFFSET %s"
        rows = self._all(sql, [*params, limit, offset])
        return [CatalogueObject(r[0], r[1] or None, r[2], r[3]) for r in rows]

    def _one(self, sql: str, params: Sequence[object]) -> Any:
        """The first column of the first row, or None when there is no row."""
        with self._reader() as con:
            row = con.execute(sql, params).fetchone()
        return row[0] if row else None

    def _all(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._reader() as con:
            return con.execute(sql, params).fetchall()

    # -- principals ------------------------------------------------------------------------

    def get_user(self, name: str) -> UserRecord | None:
        rows = self._all("SELECT name, password_hash, role, disabled FROM users WHERE name = %s",
                         [name])
        return UserRecord(*rows[0]) if rows else None

    def put_user(self, user: UserRecord) -> None:
        with self._write_lock:
            self._writing().execute(
                "INSERT INTO users VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET"
                " password_hash = excluded.password_hash, role = excluded.role,"
                " disabled = excluded.disabled",
                (user.name, user.password_hash, user.role, user.disabled),
            )

    def count_users(self) -> int:
        return int(self._one("SELECT count(*) FROM users", []))

    # -- groups and grants (access control) ------------------------------------------------

    def list_users(self) -> list[UserRecord]:
        rows = self._all("SELECT name, password_hash, role, disabled FROM users ORDER BY name",
                         [])
        return [UserRecord(*r) for r in rows]

    def _changed(self, statements: Sequence[tuple[str, Sequence[object]]]) -> int:
        """Run statements in one transaction; the rows the first one changed."""
        with self._write_lock:
            con = self._writing()
            with con.transaction():
                changed = [con.execute(sql, params).rowcount for sql, params in statements]
        return changed[0]

    def create_group(self, name: str) -> bool:
        return self._changed([("INSERT INTO groups VALUES (%s) ON CONFLICT DO NOTHING",
                               (name,))]) > 0

    def delete_group(self, name: str) -> bool:
        return self._changed([
            ("DELETE FROM groups WHERE name = %s", (name,)),
            ("DELETE FROM group_members WHERE group_name = %s", (name,)),
            ("DELETE FROM grants WHERE grantee_kind = 'group' AND grantee = %s", (name,)),
        ]) > 0

    def list_groups(self) -> list[GroupRecord]:
        rows = self._all("SELECT g.name, m.user_name FROM groups g LEFT JOIN group_members m"
                         " ON m.group_name = g.name ORDER BY g.name, m.user_name", [])
        return group_records(rows)

    def add_member(self, group: str, user: str) -> bool:
        return self._changed([(
            "INSERT INTO group_members SELECT name, %s FROM groups WHERE name = %s"
            " ON CONFLICT DO NOTHING", (user, group))]) > 0

    def remove_member(self, group: str, user: str) -> bool:
        return self._changed([("DELETE FROM group_members WHERE group_name = %s"
                               " AND user_name = %s", (group, user))]) > 0

    def add_grant(self, grant: Grant) -> bool:
        return self._changed([("INSERT INTO grants VALUES (%s, %s, %s, %s)"
                               " ON CONFLICT DO NOTHING", astuple(grant))]) > 0

    def remove_grant(self, grant: Grant) -> bool:
        return self._changed([(
            "DELETE FROM grants WHERE grantee_kind = %s AND grantee = %s AND target_type = %s"
            " AND target_id = %s", astuple(grant))]) > 0

    def list_grants(self) -> list[Grant]:
        return [Grant(*r) for r in self._all("SELECT * FROM grants ORDER BY 1, 2, 3, 4", [])]

    def grants_for(self, user: str) -> list[Grant]:
        rows = self._all(
            "SELECT * FROM grants WHERE grantee_kind = 'user' AND grantee = %s"
            " UNION SELECT g.* FROM group_members m JOIN grants g ON"
            " g.grantee_kind = 'group' AND g.grantee = m.group_name WHERE m.user_name = %s"
            " ORDER BY 1, 2, 3, 4", [user, user])
        return [Grant(*r) for r in rows]

    # -- API tokens (issue 4) --------------------------------------------------------------

    def put_token(self, token: TokenRecord) -> None:
        with self._write_lock:
            self._writing().execute(f"INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES"
                                    f" ({', '.join(['%s'] * 13)})", token_row(token))

    def get_token(self, token_id: str) -> TokenRecord | None:
        rows = self._all(f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = %s", [token_id])
        return token_of_row(rows[0]) if rows else None

    def get_token_and_owner(self, token_id: str
                            ) -> tuple[TokenRecord, UserRecord | None] | None:
        rows = self._token_lookup(f"SELECT {TOKEN_AND_OWNER}%s", [token_id])
        return token_and_owner_of_row(rows[0]) if rows else None

    def _token_lookup(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        """The per-request token check on a connection of its own: a pool checkout costs
        ~150 us (its health-check round trip), the query itself ~20 us. A broken connection
        is replaced once (server restart, failover)."""
        with self._token_lock:
            for attempt in (1, 2):
                if self._closed:
                    raise StorageError("the store is closed")
                if self._token_con is None or self._token_con.closed:
                    self._token_con = self._connect(_READER_SETUP)
                try:
                    return self._token_con.execute(sql, params).fetchall()
                except psycopg.OperationalError as exc:
                    self._token_con.close()
                    if attempt == 2:
                        raise self._unavailable(exc) from None
        raise AssertionError("unreachable")

    def list_tokens(self, user: str | None = None) -> list[TokenRecord]:
        sql, params = f"SELECT {TOKEN_COLUMNS} FROM api_tokens", []
        if user is not None:
            sql, params = sql + " WHERE user_name = %s", [user]
        return [token_of_row(r) for r in self._all(sql + " ORDER BY created_ms, id", params)]

    def revoke_token(self, token_id: str, when_ms: int) -> bool:
        with self._write_lock:
            cur = self._writing().execute(
                "UPDATE api_tokens SET revoked_ms = coalesce(revoked_ms, %s) WHERE id = %s",
                (when_ms, token_id))
        return cur.rowcount > 0

    def touch_token(self, token_id: str, when_ms: int) -> None:
        with self._write_lock:
            self._writing().execute("UPDATE api_tokens SET last_used_ms = %s WHERE id = %s",
                                    (when_ms, token_id))

    # -- shared run-time settings and consumer positions ---------------------------------

    def load_settings(self) -> tuple[int, dict[str, str]]:
        rows = self._all("SELECT name, value, version FROM settings", [])
        return max((int(r[2]) for r in rows), default=0), {r[0]: r[1] for r in rows}

    def settings_version(self) -> int:
        return int(self._all("SELECT coalesce(max(version), 0) FROM settings", [])[0][0])

    def put_settings(self, values: Mapping[str, str]) -> int:
        with self._write_lock:
            con = self._writing()
            with con.transaction():
                # Two nodes changing settings at once take turns, so versions never repeat.
                con.execute("LOCK TABLE settings IN SHARE ROW EXCLUSIVE MODE")
                row = con.execute("SELECT coalesce(max(version), 0) + 1 FROM settings"
                                  ).fetchone()
                version = int(row[0]) if row else 1
                with con.cursor() as cur:
                    cur.executemany("INSERT INTO settings VALUES (%s, %s, %s) ON CONFLICT"
                                    " (name) DO UPDATE SET value = excluded.value,"
                                    " version = excluded.version",
                                    [(name, value, version) for name, value in values.items()])
        return version

    def get_position(self, consumer: str) -> str | None:
        rows = self._all("SELECT state FROM consumer_positions WHERE name = %s", [consumer])
        return rows[0][0] if rows else None

    def put_position(self, consumer: str, state: str) -> None:
        with self._write_lock:
            self._writing().execute("INSERT INTO consumer_positions VALUES (%s, %s) ON CONFLICT"
                                    " (name) DO UPDATE SET state = excluded.state",
                                    (consumer, state))

    # -- scheduled jobs and retention (issue 5) --------------------------------------------

    def delete_events_before(self, cutoff_ms: int, limit: int) -> int:
        return self._delete_first("WHERE ts < %s", [cutoff_ms], limit)

    def delete_oldest_events(self, keep: int, limit: int) -> int:
        total = int(self._one("SELECT count(*) FROM events", []))
        return self._delete_first("", [], min(limit, total - keep))

    def _delete_first(self, where: str, params: list[object], limit: int) -> int:
        """Delete the first ``limit`` events in (ts, id) order matching ``where``, and the
        object and uid rows derived from their documents, in one transaction on a
        connection of its own (ingest goes on meanwhile: only the deleted rows are locked).
        """
        if limit <= 0:
            return 0
        with self._prune_lock:
            con = self._pruning()
            with con.transaction():
                rows = con.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events"
                    f" {where} ORDER BY ts, id LIMIT %s) RETURNING id, ts, uid, doc",
                    [*params, limit], binary=True).fetchall()
                victims = doomed(rows, texts=False)
                if victims.objects:
                    con.execute(
                        "DELETE FROM event_objects o USING unnest(%s::text[], %s::text[],"
                        " %s::bigint[], %s::bigint[]) AS d(type, object_id, ts, event_id)"
                        " WHERE o.type = d.type AND o.object_id = d.object_id"
                        " AND o.ts = d.ts AND o.event_id = d.event_id",
                        _columns(victims.objects, 4))
                if victims.uids:
                    con.execute(
                        "DELETE FROM event_uids u USING unnest(%s::text[], %s::bigint[])"
                        " AS d(uid, event_id) WHERE u.uid = d.uid AND u.event_id = d.event_id",
                        _columns(victims.uids, 2))
        return len(rows)

    def _pruning(self) -> psycopg.Connection[tuple[Any, ...]]:
        """Retention's connection (call with its lock held), opened on first use."""
        if self._closed:
            raise StorageError("the store is closed")
        if self._prune_con is None or _unusable(self._prune_con):
            if self._prune_con is not None:
                self._prune_con.close()
            self._prune_con = self._connect(_WRITER_SETUP)
        return self._prune_con

    def estimated_count(self) -> int:
        """The planner's estimate: rows per page at the last ANALYZE times the pages the
        table has now (so it follows growth between analyses); an exact count when the
        table was never analysed."""
        row = self._all(
            "SELECT CASE WHEN c.reltuples >= 0 AND c.relpages > 0 THEN c.reltuples / c.relpages"
            " * (pg_relation_size(c.oid) / current_setting('block_size')::int) END"
            " FROM pg_class c WHERE c.oid = to_regclass('events')", [])
        if row and row[0][0] is not None:
            return round(float(row[0][0]))
        return int(self._one("SELECT count(*) FROM events", []))

    def claim_job(self, name: str, owner: str, now_ms: int, lease_ms: int,
                  min_interval_ms: int) -> bool:
        with self._write_lock:
            con = self._writing()
            con.execute("INSERT INTO job_runs (name) VALUES (%s) ON CONFLICT DO NOTHING",
                        (name,))
            # A concurrent claim waits for this row's lock, then re-checks the condition
            # against the committed row, so only one of them passes.
            cur = con.execute(
                "UPDATE job_runs SET owner = %s, lease_until_ms = %s WHERE name = %s"
                " AND (owner IS NULL OR owner = %s OR lease_until_ms <= %s)"
                " AND (%s <= 0 OR last_run_ms IS NULL OR last_run_ms <= %s)",
                (owner, now_ms + lease_ms, name, owner, now_ms, min_interval_ms,
                 now_ms - min_interval_ms))
        return cur.rowcount == 1

    def finish_job(self, name: str, owner: str, now_ms: int, *, completed: bool = True) -> None:
        with self._write_lock:
            self._writing().execute(
                "UPDATE job_runs SET owner = NULL, lease_until_ms = 0,"
                " last_run_ms = CASE WHEN %s THEN %s ELSE last_run_ms END"
                " WHERE name = %s AND owner = %s", (completed, now_ms, name, owner))

    def get_job(self, name: str) -> JobRun | None:
        rows = self._all("SELECT name, owner, lease_until_ms, last_run_ms FROM job_runs"
                         " WHERE name = %s", [name])
        return JobRun(*rows[0]) if rows else None

    # -- alerts (issue 6) -------------------------------------------------------------------

    def record_alerts(self, alerts: Sequence[NewAlert], *, throttle_ms: int, now_ms: int,
                      position: tuple[str, str] | None = None) -> list[int]:
        with self._write_lock:
            con = self._writing()
            with con.transaction():
                # Alert writers of every node take turns: the checks below see every earlier
                # write, and ids grow in commit order (dispatchers follow them).
                con.execute("SELECT pg_advisory_xact_lock(%s)", (_ALERTS_LOCK,))
                return alert_rows.record(lambda sql, params: _fetched(con.execute(sql, params)),
                                         alert_rows.POSTGRES, alerts, throttle_ms=throttle_ms,
                                         now_ms=now_ms, position=position)

    def list_alerts(self, query: AlertQuery) -> list[AlertRecord]:
        sql, params = alert_rows.list_query(alert_rows.POSTGRES, query)
        return [alert_rows.alert_of_row(r) for r in self._all(sql, params)]

    def get_alert(self, alert_id: int) -> AlertRecord | None:
        rows = self._all(alert_rows.get_query(alert_rows.POSTGRES), [alert_id])
        return alert_rows.alert_of_row(rows[0]) if rows else None

    def acknowledge_alerts(self, ids: Sequence[int], by: str, now_ms: int) -> int:
        with self._write_lock:
            con = self._writing()
            with con.transaction():
                return alert_rows.acknowledge(
                    lambda sql, params: con.execute(sql, params).rowcount,
                    alert_rows.POSTGRES, ids, by, now_ms)

    def alerts_after(self, last_id: int, limit: int) -> list[AlertRecord]:
        rows = self._all(alert_rows.after_query(alert_rows.POSTGRES), [last_id, limit])
        return [alert_rows.alert_of_row(r) for r in rows]

    def last_alert_id(self) -> int:
        return int(self._one(alert_rows.LAST_ID, []))

    # -- the verifiable log (issue 7) -----------------------------------------------------

    def merkle_save(self, tiles: Sequence[Tile], position: str, expected: str | None,
                    checkpoint: CheckpointRecord | None = None) -> bool:
        with self._write_lock:
            con = self._writing()
            with con.transaction():
                # Tree builders of every node take turns: the position check sees every
                # earlier save.
                con.execute("SELECT pg_advisory_xact_lock(%s)", (_INTEGRITY_LOCK,))
                return merkle_rows.save(_run(con), dialect.POSTGRES, tiles, position,
                                        expected, checkpoint)

    def merkle_tiles(self, level: int, first: int, last: int) -> list[Tile]:
        with self._reader() as con:
            return merkle_rows.tiles(_run(con), dialect.POSTGRES, level, first, last)

    def merkle_tiles_at(self, keys: Sequence[tuple[int, int]]) -> list[Tile]:
        with self._reader() as con:
            return merkle_rows.tiles_at(_run(con), dialect.POSTGRES, keys)

    def merkle_leaf_tile(self, event_id: int) -> Tile | None:
        with self._reader() as con:
            return merkle_rows.leaf_tile_of(_run(con), dialect.POSTGRES, event_id)

    def merkle_first_leaf_tile(self) -> int | None:
        with self._reader() as con:
            return merkle_rows.first_leaf_tile(_run(con), dialect.POSTGRES)

    def merkle_prune(self, before_id: int) -> int:
        with self._write_lock:
            con = self._writing()
            with con.transaction():
                con.execute("SELECT pg_advisory_xact_lock(%s)", (_INTEGRITY_LOCK,))
                return merkle_rows.prune(_run(con), dialect.POSTGRES, before_id)

    def checkpoints(self, *, after_size: int = -1, limit: int = 1000) -> list[CheckpointRecord]:
        with self._reader() as con:
            return merkle_rows.checkpoints(_run(con), dialect.POSTGRES, after_size, limit)

    def checkpoint(self, size: int | None = None) -> CheckpointRecord | None:
        with self._reader() as con:
            return merkle_rows.checkpoint_at(_run(con), dialect.POSTGRES, size)

    def put_signing_key(self, vkey: str, now_ms: int) -> None:
        with self._write_lock:
            con = self._writing()
            with con.transaction():
                merkle_rows.put_signing_key(_run(con), dialect.POSTGRES, vkey, now_ms)

    def signing_keys(self) -> list[str]:
        with self._reader() as con:
            return merkle_rows.signing_keys(_run(con), dialect.POSTGRES)

    # -- web UI sessions (issue 8) ---------------------------------------------------------

    def put_session(self, session: SessionRecord) -> None:
        with self._write_lock:
            self._writing().execute(f"INSERT INTO web_sessions ({SESSION_COLUMNS}) VALUES"
                                    " (%s, %s, %s, %s, %s, %s, %s)", astuple(session))

    def get_session(self, session_id: str) -> SessionRecord | None:
        rows = self._all(f"SELECT {SESSION_COLUMNS} FROM web_sessions WHERE id = %s",
                         [session_id])
        return SessionRecord(*rows[0]) if rows else None

    def touch_session(self, session_id: str, seen_ms: int) -> None:
        with self._write_lock:
            self._writing().execute("UPDATE web_sessions SET seen_ms = %s WHERE id = %s",
                                    (seen_ms, session_id))

    def delete_session(self, session_id: str) -> bool:
        with self._write_lock:
            cur = self._writing().execute("DELETE FROM web_sessions WHERE id = %s",
                                          (session_id,))
        return cur.rowcount > 0

    def delete_stale_sessions(self, now_ms: int, idle_ms: int) -> int:
        with self._write_lock:
            cur = self._writing().execute("DELETE FROM web_sessions WHERE expires_ms <= %s"
                                          " OR seen_ms <= %s", (now_ms, now_ms - idle_ms))
        return cur.rowcount

    # -- upkeep ----------------------------------------------------------------------------

    def integrity_check(self) -> list[str]:
        """Ids the sequence could hand out again, dangling uid and object rows, and (when the
        amcheck extension is installed) B-tree index corruption."""
        problems: list[str] = []
        with self._reader() as con, con.transaction():
            con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            seq = con.execute("SELECT last_value, is_called FROM events_id_seq").fetchone()
            top = con.execute("SELECT max(id) FROM events").fetchone()
            if seq and top and top[0] is not None:
                issued = seq[0] if seq[1] else seq[0] - 1
                if top[0] > issued:
                    problems.append(f"event id {top[0]} is above the id sequence ({issued})")
            for table in ("event_uids", "event_objects"):
                dangling = con.execute(
                    f"SELECT count(*) FROM {table} x WHERE NOT EXISTS"
                    " (SELECT 1 FROM events e WHERE e.id = x.event_id)").fetchone()
                if dangling and dangling[0]:
                    problems.append(f"{dangling[0]} {table} rows point at no event")
            if con.execute("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'").fetchone():
                for (name,) in con.execute(
                        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                        " JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree'"
                        " AND c.relnamespace = current_schema()::regnamespace").fetchall():
                    try:
                        with con.transaction():
                            con.execute("SELECT bt_index_check(%s::regclass)", (name,))
                    except psycopg.Error as exc:
                        problems.append(f"index {name}: {exc}")
        return problems

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.close()
        with self._token_lock:  # API tokens
            if self._token_con is not None:
                self._token_con.close()
        with self._prune_lock:  # retention
            if self._prune_con is not None:
                self._prune_con.close()
        with self._write_lock:
            self._writer.close()
            self._vectors.close()


def _configure_reader(con: psycopg.Connection[tuple[Any, ...]]) -> None:
    con.execute(_READER_SETUP)


def _run(con: psycopg.Connection[tuple[Any, ...]]) -> dialect.Run:
    """A table module's `Run` on this connection."""
    return lambda sql, params: _fetched(con.execute(sql, params))


def _fetched(cur: psycopg.Cursor[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows of a statement; none for one without results (an INSERT, an UPDATE)."""
    return cur.fetchall() if cur.description is not None else []


def _unusable(con: psycopg.Connection[tuple[Any, ...]]) -> bool:
    return con.closed or con.broken


def _copy_rows(cur: psycopg.Cursor[tuple[Any, ...]], target: str, types: Sequence[str],
               rows: Sequence[tuple[object, ...]]) -> None:
    if rows:
        with cur.copy(f"COPY {target} FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)


def _columns(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    """Rows as one list per column, the parameters of an ``unnest`` insert."""
    return [[row[i] for row in rows] for i in range(width)]


def _search_text(text: str) -> str:
    if len(text) * 4 <= _MAX_SEARCH_BYTES:  # fast path: cannot exceed it even in UTF-8
        return text
    return text.encode()[:_MAX_SEARCH_BYTES].decode(errors="ignore")


def _password(url: str) -> str | None:
    """The password a connection URL carries, if any (to scrub it from messages)."""
    with contextlib.suppress(psycopg.Error):
        password = conninfo_to_dict(url).get("password")
        return str(password) if password else None
    # libpq cannot parse it; look where a URL keeps a password anyway.
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        return parts.password or parse_qs(parts.query).get("password", [None])[0]
    return None

