"""The embedded store: SQLite in WAL mode, one writer connection, a pool of readers.

Durability: ``synchronous=FULL`` makes every commit fsync the WAL, so an acknowledged event
survives a power cut, not only a crash. The writer assigns ids itself inside the write lock,
so ids grow in commit order.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import ipaddress
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import astuple
from pathlib import Path

import orjson

from trailkeeper.alerts.model import AlertQuery, AlertRecord, NewAlert
from trailkeeper.errors import ConfigurationError, ConflictError, StorageError
from trailkeeper.integrity.tree import Tile
from trailkeeper.model.document import CanonicalDigest
from trailkeeper.query.ast import MatchAll, Node
from trailkeeper.query.compile import SQLITE, compile_where, contains_pattern
from trailkeeper.query.plan import (
    Order,
    Page,
    keyset_order,
    plan_histogram,
    plan_search,
    plan_sorted,
    text_terms,
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
    token_and_owner_of_row,
    token_of_row,
    token_row,
)
from trailkeeper.storage.merkle import CheckpointRecord
from trailkeeper.storage.migrations import migrations
from trailkeeper.storage.prune import KEYS_PER_STATEMENT, Doomed, doomed, flat
from trailkeeper.storage.rows import Batch, Catalogue, chunks, object_keys, plan_group, uids_of

log = logging.getLogger("trailkeeper.storage")

_PARAMS_PER_QUERY = 30_000
_OPTIMIZE_EVERY_S = 600.0
_CHECKPOINT_EVERY_S = 0.5
_READER_MMAP_BYTES = 256 << 20
_ALL_ROWS = 1 << 62  # "no limit" for a streamed export's plan
_WAL_RESTART_PAGES = 100_000  # about 400 MB of WAL

_EVENT_COLUMNS = (
    "events (id, ts, area, level, category, action, author_id, author_name, source, method,"
    " node, system, uid, doc)"
)
# sqlite3 binds only exact ints, floats, strs and bytearrays directly; anything else (None,
# bytes, the enums' str subclasses) goes through its adapter lookup, which costs five times
# as much and holds the GIL. So a row's optional values travel as 0 for NULL (they are
# strings otherwise) and the document as a bytearray; `_Rows.of` prepares them. (nullif
# once in the SELECT rather than in every VALUES row halves the statements' parsing.)
_EVENT_VALUES = ", ".join([*(f"column{n}" for n in range(1, 9)),
                           *(f"nullif(column{n}, 0)" for n in range(9, 14)), "column14"])
# A group with Merkle leaf digests (writers with integrity on) has one more column; a group
# without them keeps the narrower statement.
_DIGESTED_COLUMNS = _EVENT_COLUMNS[:-1] + ", leaf_digest)"
_DIGESTED_VALUES = _EVENT_VALUES + ", nullif(column15, 0)"
# Parameters per multi-row INSERT. executemany() would release and re-take the GIL once per
# row; with other threads busy in Python each re-take waits up to the 5 ms switch interval,
# so one statement carries many rows and the whole step runs without the GIL.
_PARAMS_PER_INSERT = 30_000


def sqlite_path(url: str) -> Path:
    """The file of ``sqlite:///abs/path.db``, ``sqlite://rel.db`` or a plain path."""
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
    elif "://" in url:
        raise ConfigurationError(f"not a SQLite URL: {url!r}")
    else:
        path = url
    if not path or path in (":memory:", "/:memory:"):
        raise ConfigurationError("an in-memory SQLite store is not supported; give a file path")
    return Path(path)


class SqliteStorage:
    """`Storage` on a SQLite file."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()
        self._lock_file = os.open(f"{self.path}.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._writer = self._connect(read_only=False)
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._last_optimize = time.monotonic()
        self._closed = False
        self._migrate()
        self._checkpoints = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop,
                                              name="trailkeeper-checkpoint", daemon=True)
        self._checkpointer.start()

    # -- connections -----------------------------------------------------------------------

    def _connect(self, *, read_only: bool) -> sqlite3.Connection:
        if read_only:
            target = self.path.absolute().as_uri() + "?mode=ro"
            con = sqlite3.connect(target, uri=True, check_same_thread=False,
                                  isolation_level=None, timeout=30)
            con.execute("PRAGMA query_only = ON")
            con.execute(f"PRAGMA mmap_size = {_READER_MMAP_BYTES}")
        else:
            con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                  timeout=30)
            con.execute("PRAGMA journal_mode = WAL")
            # FULL: the WAL is fsynced at every commit; a 2xx survives power loss.
            con.execute("PRAGMA synchronous = FULL")
            # Checkpoints run on their own thread (see _checkpoint_loop), not inside commits.
            con.execute("PRAGMA wal_autocheckpoint = 0")
        con.create_function("tk_in_network", 2, in_network, deterministic=True)
        con.execute("PRAGMA cache_size = -65536")
        con.execute("PRAGMA temp_store = MEMORY")
        return con

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise StorageError("the store is closed")
        try:
            con = self._readers.get_nowait()
        except queue.Empty:
            con = self._connect(read_only=True)
            with self._readers_lock:
                self._all_readers.append(con)
        try:
            yield con
        finally:
            if con.in_transaction:
                con.rollback()
            self._readers.put(con)

    def _migrate(self) -> None:
        with self._write_lock:
            con = self._writer
            con.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER)")
            done = {row[0] for row in con.execute("SELECT version FROM schema_migrations")}
            for migration in migrations("sqlite"):
                if migration.version in done:
                    continue
                con.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _statements(migration.sql):
                        con.execute(statement)
                    con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                                (migration.version, migration.name, int(time.time() * 1000)))
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise

    # -- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _other_processes(self) -> Iterator[None]:
        """Take turns with writers in other processes (``serve --workers N``).

        SQLite's own lock would do, but a blocked writer polls it with sleeps of up to
        100 ms, leaving the file idle; flock() wakes the next writer the moment it is free.
        """
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer connection inside ``BEGIN IMMEDIATE``, holding both write locks;
        committed on leaving, rolled back on any error."""
        with self._write_lock, self._other_processes():
            con = self._writer
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def prepare(self, events: Sequence[NewEvent]) -> _Rows:
        return _Rows.of(events)

    def append(self, batches: Sequence[Batch]) -> list[AppendResult | ConflictError]:
        with self._transaction() as con:
            results = self._append(con, batches)
        self._maybe_optimize()
        return results

    def _append(
        self, con: sqlite3.Connection, batches: Sequence[Batch]
    ) -> list[AppendResult | ConflictError]:
        row = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        results, accepted = plan_group(batches, self._stored_uids(con, batches),
                                       (row[0] if row else 0) + 1)
        group = _Rows()
        catalogue = Catalogue()
        for item in accepted:
            rows = item.batch.rows if item.complete and item.batch.rows is not None \
                else _Rows.of(item.fresh())
            group.extend(rows, item.first_id)
            catalogue.merge(item.batch.catalogue)
        if group.digested:
            _insert_padded(con, _DIGESTED_COLUMNS, 15, group.with_digests(), _DIGESTED_VALUES,
                           "column1 > 0")
        else:
            _insert_padded(con, _EVENT_COLUMNS, 14, group.events, _EVENT_VALUES, "column1 > 0")
        _insert_padded(con, "event_objects", 6, group.objects, "*", "column4 > 0")
        _insert_padded(con, "event_uids", 3, group.uids, "*", "column2 > 0")
        if group.texts:
            # One statement, texts in one JSON array: FTS5 flushes its pending terms into a
            # new segment at every statement of the transaction, which made a fifth of
            # SQLite's work when the texts went in statements of a power of two rows.
            # The fresh events of a group have consecutive ids from the first one.
            con.execute("INSERT INTO events_fts (rowid, body) SELECT ? + key, value"
                        " FROM json_each(?)", (accepted[0].first_id,
                                               orjson.dumps(group.texts).decode()))
        self._upsert_catalogue(con, catalogue)
        return results

    def _stored_uids(
        self, con: sqlite3.Connection, batches: Sequence[Batch]
    ) -> dict[str, tuple[int, bytes]]:
        found: dict[str, tuple[int, bytes]] = {}
        for part in chunks(uids_of(batches), _PARAMS_PER_QUERY):
            marks = ",".join("?" * len(part))
            for uid, event_id, fingerprint in con.execute(
                f"SELECT uid, event_id, fingerprint FROM event_uids WHERE uid IN ({marks})", part
            ):
                found[uid] = (event_id, fingerprint)
        return found

    def _upsert_catalogue(self, con: sqlite3.Connection, catalogue: Catalogue) -> None:
        _insert_many(
            con, "catalogue_actions", 5,
            [value for (action, category), (akey, ckey, area) in catalogue.actions.items()
             for value in (action, category, akey, ckey, area)],
            " ON CONFLICT (action, category) DO UPDATE SET"
            " action_key = coalesce(excluded.action_key, action_key),"
            " category_key = coalesce(excluded.category_key, category_key),"
            " area = excluded.area",
        )
        _insert_many(
            con, "catalogue_authors", 5,
            [value for aid, (name, kind, uri, ts) in catalogue.authors.items()
             for value in (aid, name, kind, uri, ts)],
            " ON CONFLICT (author_id) DO UPDATE SET name = excluded.name, type = excluded.type,"
            " uri = excluded.uri, last_seen = excluded.last_seen"
            " WHERE excluded.last_seen >= last_seen",
        )
        _insert_many(
            con, "catalogue_objects", 5,
            [value for (kind, oid, name), (uri, ts) in catalogue.objects.items()
             for value in (kind, oid, name, uri, ts)],
            " ON CONFLICT (type, object_id, name) DO UPDATE SET uri = coalesce(excluded.uri, uri),"
            " last_seen = max(last_seen, excluded.last_seen)",
        )

    def _checkpoint_loop(self) -> None:
        """Copy the WAL back into the database off the commit path.

        PASSIVE never blocks the writer; when the WAL has grown large (readers kept a
        checkpoint from finishing) a RESTART waits for them so the file can be reused.
        """
        con = self._connect(read_only=False)
        try:
            while not self._checkpoints.wait(_CHECKPOINT_EVERY_S):
                try:
                    busy, wal_pages, _ = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if not busy and wal_pages > _WAL_RESTART_PAGES:
                        con.execute("PRAGMA wal_checkpoint(RESTART)")
                except sqlite3.Error as exc:
                    log.warning("WAL checkpoint failed: %s", exc)
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            con.close()

    def _maybe_optimize(self) -> None:
        """Refresh planner statistics now and then, as SQLite recommends for long runs."""
        now = time.monotonic()
        if now - self._last_optimize >= _OPTIMIZE_EVERY_S:
            self._last_optimize = now
            with self._write_lock, self._other_processes():
                self._writer.execute("PRAGMA optimize")

    def optimize(self) -> None:
        """Gather planner statistics now (after bulk loads)."""
        with self._write_lock, self._other_processes():
            self._writer.execute("ANALYZE")

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
            statement, params = plan_sorted(where, order, SQLITE, limit=limit, offset=offset)
            with self._reader() as con:
                return RowPage.of(con.execute(statement, params).fetchall(), limit, keyset=False)
        if order is not None:
            descending = order[0][1]
        page = Page.after((cursor.ts, cursor.id) if cursor else None, limit=limit,
                          offset=offset, descending=descending)
        with self._reader() as con:
            statement, params = plan_search(where, page, SQLITE,
                                            text_matches=self._text_matches(con, where))
            rows = con.execute(statement, params).fetchall()
        return RowPage.of(rows, limit)

    @staticmethod
    def _text_matches(con: sqlite3.Connection, where: Node) -> int | None:
        """How many events the query's full-text condition matches (the planner's input)."""
        text = text_terms(where)
        if text is None:
            return None
        counted = SQLITE.text_condition(text.terms, text.match_all)
        if counted is None:
            return None
        return int(con.execute("SELECT count(*) FROM events_fts WHERE events_fts MATCH ?",
                               (counted[1],)).fetchone()[0])

    def count(self, where: Node) -> int:
        sql, params = compile_where(where, SQLITE)
        with self._reader() as con:
            return int(con.execute(f"SELECT count(*) FROM events e WHERE {sql}",
                                   params).fetchone()[0])

    def histogram(self, where: Node, *, start_ms: int, bucket_ms: int, buckets: int,
                  timeout_ms: int | None = None) -> list[int] | None:
        statement, params = plan_histogram(where, start_ms=start_ms, bucket_ms=bucket_ms,
                                           buckets=buckets, dialect=SQLITE)
        counts = [0] * buckets
        with self._reader() as con:
            if timeout_ms is not None:
                deadline = time.monotonic() + timeout_ms / 1000
                con.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
            try:
                rows = con.execute(statement, params).fetchall()
            except sqlite3.OperationalError as exc:
                if timeout_ms is not None and "interrupted" in str(exc):
                    return None  # the handler stopped it: took longer than timeout_ms
                raise
            finally:
                con.set_progress_handler(None, 0)
        for bucket, count in rows:
            if 0 <= bucket < buckets:
                counts[bucket] = count
        return counts

    def stream(self, where: Node, *, descending: bool = True, order: Order | None = None,
               offset: int = 0, batch_size: int = 1000) -> Iterator[StoredEvent]:
        """One query read in batches: a consistent snapshot of the whole export (WAL keeps
        it while later commits go on)."""
        if order is not None and keyset_order(order) is None:
            return self._stream_rows(lambda con: plan_sorted(where, order, SQLITE, limit=None,
                                                             offset=offset), batch_size)
        if order is not None:
            descending = order[0][1]
        page = Page.after(None, limit=_ALL_ROWS, offset=offset, descending=descending)
        return self._stream_rows(
            lambda con: plan_search(where, page, SQLITE,
                                    text_matches=self._text_matches(con, where)), batch_size)

    def _stream_rows(self, plan: Callable[[sqlite3.Connection], tuple[str, list[object]]],
                     batch_size: int) -> Iterator[StoredEvent]:
        with self._reader() as con:
            # An export touches every page once: mapping them would only swell the RSS.
            con.execute("PRAGMA mmap_size = 0")
            rows = con.execute(*plan(con))
            try:
                while batch := rows.fetchmany(batch_size):
                    yield from (StoredEvent(*row) for row in batch)
            finally:
                rows.close()
                con.execute(f"PRAGMA mmap_size = {_READER_MMAP_BYTES}")

    def get(self, event_id: int) -> StoredEvent | None:
        with self._reader() as con:
            row = con.execute("SELECT id, ts, doc FROM events WHERE id = ?",
                              (event_id,)).fetchone()
        return StoredEvent(row[0], row[1], row[2]) if row else None

    def max_id(self, where: Node | None = None) -> int:
        sql, params = compile_where(where or MatchAll(), SQLITE)
        with self._reader() as con:
            row = con.execute(f"SELECT max(e.id) FROM events e WHERE {sql}", params).fetchone()
        return int(row[0] or 0)

    def leaf_rows_after(self, last_id: int, limit: int,
                        marked: Sequence[str] = ()) -> list[LeafRow]:
        with self._reader() as con:
            rows = con.execute(merkle_rows.leaf_rows_query(dialect.SQLITE, len(marked)),
                               (*marked, last_id, limit)).fetchall()
        return rows

    def events_after(self, last_id: int, limit: int) -> list[StoredEvent]:
        with self._reader() as con:
            rows = con.execute("SELECT id, ts, doc FROM events WHERE id > ? ORDER BY id"
                               " LIMIT ?", (last_id, limit)).fetchall()
        return [StoredEvent(r[0], r[1], r[2]) for r in rows]

    def find_objects(self, type: str, *, name: str | None = None, object_id: str | None = None,
                     limit: int = 100) -> list[CatalogueObject]:
        sql = "SELECT type, object_id, name, uri FROM catalogue_objects WHERE upper(type) = ?"
        params: list[object] = [type.upper()]
        if name is not None:
            sql += " AND name = ? COLLATE NOCASE"
            params.append(name)
        if object_id is not None:
            sql += " AND object_id = ?"
            params.append(object_id)
        sql += " ORDER BY last_seen DESC LIMIT ?"
        with self._reader() as con:
            rows = con.execute(sql, [*params, limit]).fetchall()
        return [CatalogueObject(r[0], r[1] or None, r[2], r[3]) for r in rows]

    def objects_seen_together(self, type: str, object_id: str, other_type: str,
                              other_id: str) -> bool:
        with self._reader() as con:
            row = con.execute(
                "SELECT 1 FROM event_objects a WHERE a.type = ? AND a.object_id = ? AND EXISTS"
                " (SELECT 1 FROM event_objects b WHERE b.type = ? AND b.object_id = ?"
                " AND b.ts = a.ts AND b.event_id = a.event_id) LIMIT 1",
                (type.upper(), object_id, other_type.upper(), other_id),
            ).fetchone()
        return row is not None

    def actions(self) -> list[CatalogueAction]:
        with self._reader() as con:
            rows = con.execute("SELECT category, action, area FROM catalogue_actions"
                               " ORDER BY category, action").fetchall()
        return [CatalogueAction(*r) for r in rows]

    def lookup_authors(self, search: str | None, *, limit: int,
                       offset: int = 0) -> list[CatalogueAuthor]:
        sql = "SELECT author_id, name, type, uri FROM catalogue_authors"
        params: list[object] = []
        if search:
            sql += " WHERE name LIKE ? ESCAPE '\\' OR author_id = ?"
            params += [contains_pattern(search), search]
        # Atlassian puts the built-in System, Anonymous and Unknown authors first.
        sql += " ORDER BY author_id NOT IN ('-1', '-2', '-3'), name COLLATE NOCASE LIMIT ? OFFSET ?"
        with self._reader() as con:
            rows = con.execute(sql, [*params, limit, offset]).fetchall()
        return [CatalogueAuthor(*r) for r in rows]

    def lookup_objects(self, type: str, search: str | None, *, limit: int,
                       offset: int = 0) -> list[CatalogueObject]:
        sql = "SELECT type, object_id, name, uri FROM catalogue_objects WHERE upper(type) = ?"
        params: list[object] = [type.upper()]
        if search:
            sql += " AND (name LIKE ? ESCAPE '\\' OR object_id = ?)"
            params += [contains_pattern(search), search]
        sql += " ORDER BY name COLLATE NOCASE LIMIT ? OFFSET ?"
        with self._reader() as con:
            rows = con.execute(sql, [*params, limit, offset]).fetchall()
        return [CatalogueObject(r[0], r[1] or None, r[2], r[3]) for r in rows]

    # -- principals ------------------------------------------------------------------------

    def get_user(self, name: str) -> UserRecord | None:
        with self._reader() as con:
            row = con.execute("SELECT name, password_hash, role, disabled FROM users"
                              " WHERE name = ?", (name,)).fetchone()
        return UserRecord(row[0], row[1], row[2], bool(row[3])) if row else None

    def put_user(self, user: UserRecord) -> None:
        with self._write_lock, self._other_processes():
            self._writer.execute(
                "INSERT INTO users VALUES (?,?,?,?) ON CONFLICT (name) DO UPDATE SET"
                " password_hash = excluded.password_hash, role = excluded.role,"
                " disabled = excluded.disabled",
                (user.name, user.password_hash, user.role, int(user.disabled)),
            )

    def count_users(self) -> int:
        with self._reader() as con:
            return int(con.execute("SELECT count(*) FROM users").fetchone()[0])

    # -- groups and grants (access control) ------------------------------------------------

    def list_users(self) -> list[UserRecord]:
        with self._reader() as con:
            rows = con.execute("SELECT name, password_hash, role, disabled FROM users"
                               " ORDER BY name").fetchall()
        return [UserRecord(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def _changed(self, statements: Sequence[tuple[str, Sequence[object]]]) -> int:
        """Run statements in one transaction; the rows the first one changed."""
        with self._transaction() as con:
            changed = [con.execute(sql, params).rowcount for sql, params in statements]
        return changed[0]

    def create_group(self, name: str) -> bool:
        return self._changed([("INSERT INTO groups VALUES (?) ON CONFLICT DO NOTHING",
                               (name,))]) > 0

    def delete_group(self, name: str) -> bool:
        return self._changed([
            ("DELETE FROM groups WHERE name = ?", (name,)),
            ("DELETE FROM group_members WHERE group_name = ?", (name,)),
            ("DELETE FROM grants WHERE grantee_kind = 'group' AND grantee = ?", (name,)),
        ]) > 0

    def list_groups(self) -> list[GroupRecord]:
        with self._reader() as con:
            rows = con.execute(
                "SELECT g.name, m.user_name FROM groups g LEFT JOIN group_members m"
                " ON m.group_name = g.name ORDER BY g.name, m.user_name").fetchall()
        return group_records(rows)

    def add_member(self, group: str, user: str) -> bool:
        return self._changed([(
            "INSERT INTO group_members SELECT name, ? FROM groups WHERE name = ?"
            " ON CONFLICT DO NOTHING", (user, group))]) > 0

    def remove_member(self, group: str, user: str) -> bool:
        return self._changed([("DELETE FROM group_members WHERE group_name = ?"
                               " AND user_name = ?", (group, user))]) > 0

    def add_grant(self, grant: Grant) -> bool:
        return self._changed([("INSERT INTO grants VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                               astuple(grant))]) > 0

    def remove_grant(self, grant: Grant) -> bool:
        return self._changed([(
            "DELETE FROM grants WHERE grantee_kind = ? AND grantee = ? AND target_type = ?"
            " AND target_id = ?", astuple(grant))]) > 0

    def list_grants(self) -> list[Grant]:
        with self._reader() as con:
            rows = con.execute("SELECT * FROM grants ORDER BY 1, 2, 3, 4").fetchall()
        return [Grant(*r) for r in rows]

    def grants_for(self, user: str) -> list[Grant]:
        with self._reader() as con:
            rows = con.execute(
                "SELECT * FROM grants WHERE grantee_kind = 'user' AND grantee = ?"
                " UNION SELECT g.* FROM group_members m JOIN grants g ON"
                " g.grantee_kind = 'group' AND g.grantee = m.group_name WHERE m.user_name = ?"
                " ORDER BY 1, 2, 3, 4", (user, user)).fetchall()
        return [Grant(*r) for r in rows]

    # -- API tokens (issue 4) --------------------------------------------------------------

    def put_token(self, token: TokenRecord) -> None:
        with self._write_lock, self._other_processes():
            self._writer.execute(f"INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES"
                                 f" ({', '.join('?' * 13)})", token_row(token))

    def get_token(self, token_id: str) -> TokenRecord | None:
        with self._reader() as con:
            row = con.execute(f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?",
                              (token_id,)).fetchone()
        return token_of_row(row) if row else None

    def get_token_and_owner(self, token_id: str
                            ) -> tuple[TokenRecord, UserRecord | None] | None:
        with self._reader() as con:
            row = con.execute(f"SELECT {TOKEN_AND_OWNER}?", (token_id,)).fetchone()
        return token_and_owner_of_row(row) if row else None

    def list_tokens(self, user: str | None = None) -> list[TokenRecord]:
        sql, params = f"SELECT {TOKEN_COLUMNS} FROM api_tokens", [] if user is None else [user]
        if user is not None:
            sql += " WHERE user_name = ?"
        with self._reader() as con:
            rows = con.execute(sql + " ORDER BY created_ms, id", params).fetchall()
        return [token_of_row(r) for r in rows]

    def revoke_token(self, token_id: str, when_ms: int) -> bool:
        with self._write_lock, self._other_processes():
            cur = self._writer.execute(
                "UPDATE api_tokens SET revoked_ms = coalesce(revoked_ms, ?) WHERE id = ?",
                (when_ms, token_id))
        return cur.rowcount > 0

    def touch_token(self, token_id: str, when_ms: int) -> None:
        with self._write_lock, self._other_processes():
            self._writer.execute("UPDATE api_tokens SET last_used_ms = ? WHERE id = ?",
                                 (when_ms, token_id))

    # -- shared run-time settings and consumer positions ---------------------------------

    def load_settings(self) -> tuple[int, dict[str, str]]:
        with self._reader() as con:
            rows = con.execute("SELECT name, value, version FROM settings").fetchall()
        return max((r[2] for r in rows), default=0), {r[0]: r[1] for r in rows}

    def settings_version(self) -> int:
        with self._reader() as con:
            return int(con.execute("SELECT coalesce(max(version), 0) FROM settings")
                       .fetchone()[0])

    def put_settings(self, values: Mapping[str, str]) -> int:
        with self._transaction() as con:
            version = con.execute("SELECT coalesce(max(version), 0) + 1 FROM settings"
                                  ).fetchone()[0]
            con.executemany("INSERT INTO settings VALUES (?, ?, ?) ON CONFLICT (name)"
                            " DO UPDATE SET value = excluded.value, version = excluded.version",
                            [(name, value, version) for name, value in values.items()])
        return int(version)

    def get_position(self, consumer: str) -> str | None:
        with self._reader() as con:
            row = con.execute("SELECT state FROM consumer_positions WHERE name = ?",
                              (consumer,)).fetchone()
        return row[0] if row else None

    def put_position(self, consumer: str, state: str) -> None:
        with self._write_lock, self._other_processes():
            self._writer.execute("INSERT INTO consumer_positions VALUES (?, ?) ON CONFLICT"
                                 " (name) DO UPDATE SET state = excluded.state",
                                 (consumer, state))

    # -- scheduled jobs and retention (issue 5) --------------------------------------------

    def delete_events_before(self, cutoff_ms: int, limit: int) -> int:
        return self._delete_first("WHERE ts < ?", [cutoff_ms], limit)

    def delete_oldest_events(self, keep: int, limit: int) -> int:
        with self._reader() as con:
            total = int(con.execute("SELECT count(*) FROM events").fetchone()[0])
        return self._delete_first("", [], min(limit, total - keep))

    def _delete_first(self, where: str, params: list[object], limit: int) -> int:
        """Delete the first ``limit`` events in (ts, id) order matching ``where``.

        The victims and the keys of their side rows are read from a snapshot before the
        write lock is taken; inside it only deletes run, and only for the events still
        there (RETURNING), so the full-text index is never told to forget a row twice.
        """
        if limit <= 0:
            return 0
        with self._reader() as con:
            rows = con.execute(f"SELECT id, ts, uid, doc FROM events {where}"
                               " ORDER BY ts, id LIMIT ?", [*params, limit]).fetchall()
        if not rows:
            return 0
        victims = doomed(rows, texts=True)
        with self._transaction() as con:
            return self._delete_doomed(con, victims)

    @staticmethod
    def _delete_doomed(con: sqlite3.Connection, victims: Doomed) -> int:
        gone: list[int] = []
        for part in chunks(victims.ids, KEYS_PER_STATEMENT):
            gone += [row[0] for row in con.execute(
                f"DELETE FROM events WHERE id IN ({','.join('?' * len(part))}) RETURNING id",
                part)]
        if len(gone) < len(victims.ids):
            victims = victims.only(gone)
        # event_objects has no index by event: its keys go to a scratch table whose rows
        # drive one primary-key lookup each (a VALUES list or OR chain would scan instead).
        con.execute("CREATE TEMP TABLE IF NOT EXISTS doomed_objects"
                    " (type TEXT, object_id TEXT, ts INTEGER, event_id INTEGER)")
        _insert_many(con, "temp.doomed_objects", 4, flat(victims.objects))
        con.execute("DELETE FROM event_objects WHERE (type, object_id, ts, event_id) IN"
                    " (SELECT type, object_id, ts, event_id FROM temp.doomed_objects)")
        con.execute("DELETE FROM temp.doomed_objects")
        for uids in chunks(victims.uids, KEYS_PER_STATEMENT):
            con.execute(f"DELETE FROM event_uids WHERE uid IN ({','.join('?' * len(uids))})"
                        f" AND event_id IN ({','.join('?' * len(uids))})",
                        [u[0] for u in uids] + [u[1] for u in uids])
        # The index is contentless: it forgets a row only when told its words again.
        _insert_many(con, "events_fts (events_fts, rowid, body)", 3,
                     [value for event_id, text in victims.texts.items()
                      for value in ("delete", event_id, text)])
        return len(gone)

    def estimated_count(self) -> int:
        """Exact: SQLite counts the entries of the smallest index of the events (about
        10 ms per million events once cached, much more from a cold disk). max(id) - min(id)
        would be O(1) but overstates without bound once retention has deleted imported
        (old, high-id) events."""
        with self._reader() as con:
            return int(con.execute("SELECT count(*) FROM events").fetchone()[0])

    def claim_job(self, name: str, owner: str, now_ms: int, lease_ms: int,
                  min_interval_ms: int) -> bool:
        with self._write_lock, self._other_processes():
            con = self._writer
            con.execute("INSERT INTO job_runs (name) VALUES (?) ON CONFLICT DO NOTHING",
                        (name,))
            # One statement: SQLite runs one writer at a time, so two claims cannot both pass.
            cur = con.execute(
                "UPDATE job_runs SET owner = ?, lease_until_ms = ? WHERE name = ?"
                " AND (owner IS NULL OR owner = ? OR lease_until_ms <= ?)"
                " AND (? <= 0 OR last_run_ms IS NULL OR last_run_ms <= ?)",
                (owner, now_ms + lease_ms, name, owner, now_ms, min_interval_ms,
                 now_ms - min_interval_ms))
        return cur.rowcount == 1

    def finish_job(self, name: str, owner: str, now_ms: int, *, completed: bool = True) -> None:
        with self._write_lock, self._other_processes():
            self._writer.execute(
                "UPDATE job_runs SET owner = NULL, lease_until_ms = 0,"
                " last_run_ms = CASE WHEN ? THEN ? ELSE last_run_ms END"
                " WHERE name = ? AND owner = ?", (completed, now_ms, name, owner))

    def get_job(self, name: str) -> JobRun | None:
        with self._reader() as con:
            row = con.execute("SELECT name, owner, lease_until_ms, last_run_ms FROM job_runs"
                              " WHERE name = ?", (name,)).fetchone()
        return JobRun(*row) if row else None

    # -- alerts (issue 6) -------------------------------------------------------------------

    def record_alerts(self, alerts: Sequence[NewAlert], *, throttle_ms: int, now_ms: int,
                      position: tuple[str, str] | None = None) -> list[int]:
        with self._transaction() as con:
            return alert_rows.record(lambda sql, params: con.execute(sql, params).fetchall(),
                                     alert_rows.SQLITE, alerts, throttle_ms=throttle_ms,
                                     now_ms=now_ms, position=position)

    def list_alerts(self, query: AlertQuery) -> list[AlertRecord]:
        sql, params = alert_rows.list_query(alert_rows.SQLITE, query)
        with self._reader() as con:
            return [alert_rows.alert_of_row(r) for r in con.execute(sql, params).fetchall()]

    def get_alert(self, alert_id: int) -> AlertRecord | None:
        with self._reader() as con:
            row = con.execute(alert_rows.get_query(alert_rows.SQLITE), (alert_id,)).fetchone()
        return alert_rows.alert_of_row(row) if row else None

    def acknowledge_alerts(self, ids: Sequence[int], by: str, now_ms: int) -> int:
        with self._transaction() as con:
            return alert_rows.acknowledge(lambda sql, params: con.execute(sql, params).rowcount,
                                          alert_rows.SQLITE, ids, by, now_ms)

    def alerts_after(self, last_id: int, limit: int) -> list[AlertRecord]:
        with self._reader() as con:
            rows = con.execute(alert_rows.after_query(alert_rows.SQLITE),
                               (last_id, limit)).fetchall()
        return [alert_rows.alert_of_row(r) for r in rows]

    def last_alert_id(self) -> int:
        with self._reader() as con:
            return int(con.execute(alert_rows.LAST_ID).fetchone()[0])

    # -- the verifiable log (issue 7) -----------------------------------------------------

    def merkle_save(self, tiles: Sequence[Tile], position: str, expected: str | None,
                    checkpoint: CheckpointRecord | None = None) -> bool:
        with self._transaction() as con:
            return merkle_rows.save(_run(con), dialect.SQLITE, tiles, position, expected,
                                    checkpoint)

    def merkle_tiles(self, level: int, first: int, last: int) -> list[Tile]:
        with self._reader() as con:
            return merkle_rows.tiles(_run(con), dialect.SQLITE, level, first, last)

    def merkle_tiles_at(self, keys: Sequence[tuple[int, int]]) -> list[Tile]:
        with self._reader() as con:
            return merkle_rows.tiles_at(_run(con), dialect.SQLITE, keys)

    def merkle_leaf_tile(self, event_id: int) -> Tile | None:
        with self._reader() as con:
            return merkle_rows.leaf_tile_of(_run(con), dialect.SQLITE, event_id)

    def merkle_first_leaf_tile(self) -> int | None:
        with self._reader() as con:
            return merkle_rows.first_leaf_tile(_run(con), dialect.SQLITE)

    def merkle_prune(self, before_id: int) -> int:
        with self._transaction() as con:
            return merkle_rows.prune(_run(con), dialect.SQLITE, before_id)

    def checkpoints(self, *, after_size: int = -1, limit: int = 1000) -> list[CheckpointRecord]:
        with self._reader() as con:
            return merkle_rows.checkpoints(_run(con), dialect.SQLITE, after_size, limit)

    def checkpoint(self, size: int | None = None) -> CheckpointRecord | None:
        with self._reader() as con:
            return merkle_rows.checkpoint_at(_run(con), dialect.SQLITE, size)

    def put_signing_key(self, vkey: str, now_ms: int) -> None:
        with self._transaction() as con:
            merkle_rows.put_signing_key(_run(con), dialect.SQLITE, vkey, now_ms)

    def signing_keys(self) -> list[str]:
        with self._reader() as con:
            return merkle_rows.signing_keys(_run(con), dialect.SQLITE)

    # -- web UI sessions (issue 8) ---------------------------------------------------------

    def put_session(self, session: SessionRecord) -> None:
        with self._write_lock, self._other_processes():
            self._writer.execute(f"INSERT INTO web_sessions ({SESSION_COLUMNS}) VALUES"
                                 " (?, ?, ?, ?, ?, ?, ?)", astuple(session))

    def get_session(self, session_id: str) -> SessionRecord | None:
        with self._reader() as con:
            row = con.execute(f"SELECT {SESSION_COLUMNS} FROM web_sessions WHERE id = ?",
                              (session_id,)).fetchone()
        return SessionRecord(*row) if row else None

    def touch_session(self, session_id: str, seen_ms: int) -> None:
        with self._write_lock, self._other_processes():
            self._writer.execute("UPDATE web_sessions SET seen_ms = ? WHERE id = ?",
                                 (seen_ms, session_id))

    def delete_session(self, session_id: str) -> bool:
        with self._write_lock, self._other_processes():
            cur = self._writer.execute("DELETE FROM web_sessions WHERE id = ?", (session_id,))
        return cur.rowcount > 0

    def delete_stale_sessions(self, now_ms: int, idle_ms: int) -> int:
        with self._write_lock, self._other_processes():
            cur = self._writer.execute("DELETE FROM web_sessions WHERE expires_ms <= ?"
                                       " OR seen_ms <= ?", (now_ms, now_ms - idle_ms))
        return cur.rowcount

    # -- upkeep ----------------------------------------------------------------------------

    def integrity_check(self) -> list[str]:
        with self._write_lock:
            problems = [r[0] for r in self._writer.execute("PRAGMA integrity_check")]
            problems = [p for p in problems if p != "ok"]
            try:
                self._writer.execute(
                    "INSERT INTO events_fts (events_fts) VALUES ('integrity-check')")
            except sqlite3.DatabaseError as exc:
                problems.append(f"full-text index: {exc}")
        return problems

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._checkpoints.set()
        self._checkpointer.join()
        with self._write_lock:
            with contextlib.suppress(sqlite3.Error):
                self._writer.execute("PRAGMA optimize")
            self._writer.close()
            os.close(self._lock_file)
        with self._readers_lock:
            for con in self._all_readers:
                con.close()
            self._all_readers.clear()


class _Rows:
    """Flat parameter lists of a batch's rows, built outside the lock with empty id slots.

    ``extend`` fills the slots with slice assignments (C speed) once ids are known, so the
    writer's critical section does almost no Python work per event.
    """

    __slots__ = ("digested", "digests", "events", "leaves", "object_owner", "objects", "texts",
                 "uid_owner", "uids")

    def __init__(self) -> None:
        self.events: list[object] = []  # 14 per event, id first
        self.digests: list[CanonicalDigest | None] = []  # 1 per event, to finish
        self.leaves: list[object] = []  # 1 per event: its leaf digest, or 0 (`extend`)
        self.digested = False  # whether any event has a leaf digest
        self.objects: list[object] = []  # 6 per object, event id fourth
        self.object_owner: list[int] = []  # the event (index in the batch) of each object
        self.uids: list[object] = []  # 3 per uid, event id second
        self.uid_owner: list[int] = []
        self.texts: list[str] = []  # 1 per event (the fresh events' ids are consecutive)

    @classmethod
    def of(cls, fresh: Sequence[NewEvent]) -> _Rows:
        rows = cls()
        events, objects, texts = rows.events, rows.objects, rows.texts
        for index, new in enumerate(fresh):
            e, ts, author = new.event, new.timestamp_ms, new.author
            t = e.type
            events.extend((
                None, ts, str(t.area), str(t.level), t.category, t.action, author.id,
                author.name, 0 if e.source is None else e.source,
                0 if e.method is None else e.method, 0 if e.node is None else e.node,
                0 if e.system is None else e.system, 0 if e.uid is None else e.uid,
                bytearray(new.doc)))
            rows.digests.append(new.canonical)
            for pos, (kind, oid, name) in object_keys(e):
                objects.extend((kind, oid, ts, None, pos, name))
                rows.object_owner.append(index)
            if e.uid is not None and new.fingerprint is not None:
                rows.uids.extend((e.uid, None, bytearray(new.fingerprint)))
                rows.uid_owner.append(index)
            texts.append(new.text)
        return rows

    def extend(self, other: _Rows, first_id: int) -> None:
        """Append ``other``'s rows, its events numbered from ``first_id``."""
        count = len(other.texts)
        ids = range(first_id, first_id + count)
        other.events[0::14] = ids
        if any(other.digests):  # finished now that the ids are known
            self.leaves += [0 if d is None else bytearray(d.digest(event_id))
                            for d, event_id in zip(other.digests, ids, strict=True)]
            self.digested = True
        else:
            self.leaves += [0] * count
        other.objects[3::6] = [first_id + i for i in other.object_owner]
        other.uids[1::3] = [first_id + i for i in other.uid_owner]
        self.events += other.events
        self.objects += other.objects
        self.uids += other.uids
        self.texts += other.texts

    def with_digests(self) -> list[object]:
        """The events' parameters with each one's leaf digest after its 14 (slice
        assignments: this runs in the critical section)."""
        events, count = self.events, len(self.texts)
        out: list[object] = [0] * (count * 15)
        for column in range(14):
            out[column::15] = events[column::14]
        out[14::15] = self.leaves
        return out


def _run(con: sqlite3.Connection) -> dialect.Run:
    """A table module's `Run` on this connection."""
    return lambda sql, params: con.execute(sql, params).fetchall()


def _insert_many(con: sqlite3.Connection, target: str, width: int, flat: Sequence[object],
                 suffix: str = "") -> None:
    """INSERT rows given as one flat parameter list, with few statements."""
    row_marks = "(" + ",".join("?" * width) + ")"
    most = 1 << ((_PARAMS_PER_INSERT // width).bit_length() - 1)
    rows, start = len(flat) // width, 0
    while start < rows:
        # Powers of two only: a handful of distinct statements for the statement cache.
        size = most if rows - start >= most else 1 << ((rows - start).bit_length() - 1)
        sql = f"INSERT INTO {target} VALUES " + ",".join([row_marks] * size) + suffix
        con.execute(sql, flat[start * width:(start + size) * width])
        start += size


def _insert_padded(con: sqlite3.Connection, target: str, width: int, flat: list[object],
                   select: str, keep: str) -> None:
    """INSERT rows given as one flat parameter list, as ``SELECT {select} FROM (VALUES ...)
    WHERE {keep}`` in statements of the most rows, the last one padded with rows of zeros
    (which ``keep`` leaves out) to a power of two rows.

    Padding costs a few cheap zeros; a statement costs the committer a wait of up to the
    switch interval for the GIL when SQLite returns, and taking the remainder in
    decreasing powers of two took up to eleven statements per table.
    """
    most = 1 << ((_PARAMS_PER_INSERT // width).bit_length() - 1)
    rows, start = len(flat) // width, 0
    while start < rows:
        size = most if rows - start >= most else 1 << (rows - start - 1).bit_length()
        params = flat[start * width:(start + size) * width]
        params += [0] * (size * width - len(params))
        con.execute(_padded_sql(target, width, size, select, keep), params)
        start += size


@functools.lru_cache(maxsize=64)
def _padded_sql(target: str, width: int, size: int, select: str, keep: str) -> str:
    # The same str object each time: the statement cache finds it without hashing and
    # comparing 100 KB of SQL.
    row_marks = "(" + ",".join("?" * width) + ")"
    return (f"INSERT INTO {target} SELECT {select} FROM (VALUES "
            + ",".join([row_marks] * size) + f") WHERE {keep}")


def in_network(value: str | None, network: str) -> bool:
    """SQL ``tk_in_network(source, cidr)``: the query language's CIDR test."""
    if not value:
        return False
    try:
        return ipaddress.ip_address(value) in _network(network)
    except ValueError:
        return False


@functools.lru_cache(maxsize=64)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text, strict=False)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (our migrations hold no semicolons in strings)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
