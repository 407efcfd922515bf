"""What the tamper-detection tests share: a realistic hashed store, a tamperer's own SQL
connection to it that can put every row back exactly, and single random tamperings of a
store or of a directory of exported files, each saying what the verifier must find.

A tampering is drawn from a seeded `random.Random`. One that changes no content is drawn
again rather than applied: a line or document that parses to the same JSON (an escape or
whitespace spelled otherwise: canonical bytes re-serialise the parsed JSON, by design).
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg

from tests.conftest import PG_ADMIN_URL
from trailkeeper.demo import demo_events
from trailkeeper.governance.retention import ACTION as RETENTION_ACTION
from trailkeeper.ingest.service import AuditService
from trailkeeper.integrity.consumer import IntegrityConsumer
from trailkeeper.integrity.keys import Verifier, generate_signer, read_verifier_key_file
from trailkeeper.integrity.note import signed_checkpoint
from trailkeeper.integrity.report import Report
from trailkeeper.integrity.sources import StoreSource
from trailkeeper.integrity.tree import TILE_HEIGHT, edge_tiles
from trailkeeper.integrity.verify import Trust, verify_source
from trailkeeper.model.timestamps import format_iso
from trailkeeper.storage.base import Storage

RECORD = 49  # bytes of a leaf record
HASH = 32

# -- the store ------------------------------------------------------------------------------


class StoreSql:
    """A tamperer's own connection to the store behind ``url`` (sqlite3 or psycopg, in
    autocommit), with a holding table per table to put rows back exactly: `save` copies the
    rows a tampering is about to touch, `restore` deletes whatever is there now and puts the
    copies back."""

    def __init__(self, url: str) -> None:
        self.postgres = url.startswith("postgresql")
        # A test needs no durability: no waiting for the disk at each statement.
        if self.postgres:
            self._pg = psycopg.connect(url, autocommit=True)
            self._pg.execute("SET synchronous_commit = off")
        else:
            self._lite = sqlite3.connect(url.removeprefix("sqlite://"), isolation_level=None,
                                         timeout=30)
            self._lite.execute("PRAGMA synchronous = OFF")
        self._saved: list[tuple[str, str, tuple[Any, ...]]] = []
        self._held: set[str] = set()
        self._sequence = None if self.postgres else self.rows(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'")

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.postgres:
            cur = self._pg.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []
        return self._lite.execute(sql, params).fetchall()

    def run(self, sql: str, *params: Any) -> None:
        self.rows(sql, *params)

    def one(self, sql: str, *params: Any) -> Any:
        found = self.rows(sql, *params)
        return found[0][0] if found else None

    def save(self, table: str, where: str, *params: Any) -> None:
        """Keep the rows of ``table`` matching ``where`` to put back; `restore` replaces
        every row matching ``where`` then (including rows a tampering added there)."""
        assert table not in {t for t, _, _ in self._saved}, f"{table} saved twice"
        hold = f"tamper_hold_{table}"
        if hold not in self._held:
            self.run(f"CREATE TABLE IF NOT EXISTS {hold} AS SELECT * FROM {table} WHERE 1 = 0")
            self._held.add(hold)
        self.run(f"INSERT INTO {hold} SELECT * FROM {table} WHERE {where}", *params)
        self._saved.append((table, where, params))

    def restore(self) -> None:
        """Put back every row saved since the last restore, exactly."""
        for table, where, params in reversed(self._saved):
            hold = f"tamper_hold_{table}"
            self.run(f"DELETE FROM {table} WHERE {where}", *params)
            self.run(f"INSERT INTO {table} SELECT * FROM {hold}")
            self.run(f"DELETE FROM {hold}")
        self._saved.clear()
        if self._sequence:  # an id inserted past the end moved SQLite's AUTOINCREMENT
            self.run("UPDATE sqlite_sequence SET seq = ? WHERE name = 'events'",
                     self._sequence[0][0])

    def fingerprint(self) -> str:
        """A digest of everything the verifier reads (to check a restore was exact)."""
        digest = hashlib.sha256()
        for sql in ("SELECT id, ts, doc FROM events ORDER BY id",
                    "SELECT tile, first_id, last_id, records FROM merkle_leaves ORDER BY tile",
                    "SELECT level, tile, hashes FROM merkle_nodes ORDER BY level, tile",
                    "SELECT size, root, last_id, created_ms, origin, note, compact_range"
                    " FROM checkpoints ORDER BY size",
                    "SELECT name, state FROM consumer_positions ORDER BY name"):
            for row in self.rows(sql):
                digest.update(repr(row).encode())
        return digest.hexdigest()

    def drop_holding_tables(self) -> None:
        for hold in self._held:
            self.run(f"DROP TABLE IF EXISTS {hold}")
        self._held.clear()

    def close(self) -> None:
        if self.postgres:
            self._pg.close()
        else:
            self._lite.close()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    size: int
    root: bytes
    last_id: int
    note: str


@dataclass(slots=True)
class HashedStore:
    """A store whose every event is under a signed checkpoint, and what it holds."""

    url: str
    storage: Storage
    verifier: Verifier
    origin: str
    ids: list[int]  # the events, in id order
    gaps: list[int]  # ids inside the hashed range that no event has (deleted before hashing)
    checkpoints: list[Checkpoint]  # in size order; the last covers every event
    leaf_tiles: list[int] = field(default_factory=list)
    node_tiles: list[tuple[int, int]] = field(default_factory=list)  # (level, tile)

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def kept_note(self) -> str:
        """The latest checkpoint, as an auditor who kept a copy elsewhere has it."""
        return self.checkpoints[-1].note

    def verify(self, *, kept: bool = False, tiles_per_part: int | None = None,
               jobs: int = 1) -> Report:
        """The verifier's report; ``tiles_per_part`` cuts its event pass into parts (in this
        process, or shared with ``jobs - 1`` worker processes), as a large store's is."""
        trust = Trust([self.verifier], [self.kept_note] if kept else [])
        return verify_source(StoreSource(self.storage, self.url), trust,
                             db_url=self.url if jobs > 1 else None, jobs=jobs,
                             tiles_per_part=tiles_per_part)


def build_store(url: str, service: AuditService, key_path: Path, *, count: int, seed: int,
                stages: int = 4, deleted: float = 0.05, batch_size: int = 40,
                every_events: int = 90, record_checkpoints: bool = False,
                delete_ids: tuple[int, ...] = ()) -> None:
    """``count`` demo events submitted in ``stages``, some of each stage deleted before it is
    hashed (so that ids have gaps), each stage hashed by the tree builder in batches, with a
    checkpoint every ``every_events`` leaves and one at the end of each stage (``delete_ids``:
    events deleted before hashing too). Every other stage is written with leaf digests, as a
    server writes them. With ``record_checkpoints`` every checkpoint is also recorded as an
    event, as a server does."""
    rng = random.Random(seed)
    events = list(demo_events(count, seed=seed, end_ms=1_780_000_000_000))[:count]
    record = ((lambda e: service.submit([e], screen=False)) if record_checkpoints else None)
    builder = IntegrityConsumer(service.storage, key_path, origin="tamper.example/log",
                                record_event=record, every_events=every_events,
                                batch_size=batch_size)
    sql = StoreSql(url)
    try:
        for stage in range(stages):
            part = events[len(events) * stage // stages:len(events) * (stage + 1) // stages]
            service.digest_leaves(stage % 2 == 1)  # both ways the builder gets leaves
            ids = service.submit(part, screen=False).ids
            gone = [i for i in ids if rng.random() < deleted or i in delete_ids]
            for event_id in gone:
                sql.run("DELETE FROM events WHERE id = ?", event_id)
            builder.drain(checkpoint=True)
    finally:
        sql.close()


@contextmanager
def scratch_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of a store of its own: a file, or a PostgreSQL database dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite://{directory / 'audit.db'}"
        return
    name = f"trailkeeper_tamper_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_store(url: str) -> None:
    """Remove what `build_store` put in a PostgreSQL store (quicker than emptying every
    table: enough for the next store built there)."""
    with psycopg.connect(url, autocommit=True) as con:
        for table in ("events", "event_objects", "event_uids", "merkle_leaves", "merkle_nodes",
                      "checkpoints", "consumer_positions", "signing_keys"):
            con.execute(f"DELETE FROM {table}")  # type: ignore[arg-type]


def describe_store(url: str, storage: Storage, key_path: Path) -> HashedStore:
    """What a hashed store holds, read back with plain SQL."""
    sql = StoreSql(url)
    try:
        ids = [r[0] for r in sql.rows("SELECT id FROM events ORDER BY id")]
        last_hashed = max(ids)
        present = set(ids)
        checkpoints = [Checkpoint(r[0], bytes(r[1]), r[2], r[3]) for r in sql.rows(
            "SELECT size, root, last_id, note FROM checkpoints ORDER BY size")]
        origin = sql.one("SELECT origin FROM checkpoints LIMIT 1")
        leaf_tiles = [r[0] for r in sql.rows("SELECT tile FROM merkle_leaves ORDER BY tile")]
        node_tiles = [(r[0], r[1]) for r in sql.rows(
            "SELECT level, tile FROM merkle_nodes ORDER BY level, tile")]
    finally:
        sql.close()
    return HashedStore(url, storage, read_verifier_key_file(f"{key_path}.pub"), origin, ids,
                       [i for i in range(1, last_hashed) if i not in present], checkpoints,
                       leaf_tiles, node_tiles)


# -- tamperings of a store --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tampering:
    """One tampering applied, and what the verifier must say about it."""

    kind: str
    what: str
    # The first problem must name one of these events (None: any problem will do).
    first_event: frozenset[int] | None = None
    # Only this event is added after the tree's end: not a problem, but not covered (exit 3).
    uncovered: int | None = None
    # Detectable only with the checkpoint kept elsewhere (the tree was rolled back too).
    needs_kept_checkpoint: bool = False
    # Problem kinds of which at least one must be reported.
    expect_kinds: frozenset[str] | None = None


StoreTamper = Callable[[StoreSql, HashedStore, random.Random], Tampering | None]


def same_event_respelled(old: bytes, new: bytes) -> bool:
    """Whether ``new`` holds the same event as ``old``, only spelled otherwise: the same JSON
    value (another escape of the same character, say)."""
    try:
        return bool(orjson.loads(old) == orjson.loads(new))
    except orjson.JSONDecodeError:
        return False


def other_byte(rng: random.Random, old: int) -> int:
    return rng.choice([b for b in range(256) if b != old])


def edit_doc_byte(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering | None:
    event_id = rng.choice(store.ids)
    doc = bytes(sql.one("SELECT doc FROM events WHERE id = ?", event_id))
    at = rng.randrange(len(doc))
    new = doc[:at] + bytes([other_byte(rng, doc[at])]) + doc[at + 1:]
    if same_event_respelled(doc, new):
        return None
    sql.save("events", "id = ?", event_id)
    sql.run("UPDATE events SET doc = ? WHERE id = ?", new, event_id)
    return Tampering("doc byte", f"event #{event_id}: doc byte {at} {doc[at]:#04x} -> "
                     f"{new[at]:#04x} ({doc[max(0, at - 20):at + 20]!r})",
                     first_event=frozenset({event_id}), expect_kinds=frozenset({"edited"}))


def edit_time_column(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    event_id = rng.choice(store.ids)
    delta = rng.choice([1, -1, 1000, -3_600_000, 86_400_000]) * rng.randint(1, 5)
    sql.save("events", "id = ?", event_id)
    sql.run("UPDATE events SET ts = ts + ? WHERE id = ?", delta, event_id)
    return Tampering("ts column", f"event #{event_id}: ts {delta:+} ms",
                     first_event=frozenset({event_id}), expect_kinds=frozenset({"edited"}))


def delete_event(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    event_id = rng.choice(store.ids)
    sql.save("events", "id = ?", event_id)
    sql.run("DELETE FROM events WHERE id = ?", event_id)
    return Tampering("delete event", f"event #{event_id} deleted",
                     first_event=frozenset({event_id}), expect_kinds=frozenset({"deleted"}))


def _copy_event(sql: StoreSql, source_id: int, new_id: int) -> None:
    """A copy of an event's row (every column, the PostgreSQL search vector too)."""
    if sql.postgres:
        columns = [r[0] for r in sql.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'"
            " AND table_schema = 'public' ORDER BY ordinal_position")]
    else:
        columns = [r[0] for r in sql.rows("SELECT name FROM pragma_table_info('events')")]
    rest = ", ".join(c for c in columns if c != "id")
    sql.run(f"INSERT INTO events (id, {rest}) SELECT ?, {rest} FROM events WHERE id = ?",
            new_id, source_id)


def insert_in_gap(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering | None:
    if not store.gaps:
        return None
    new_id, source_id = rng.choice(store.gaps), rng.choice(store.ids)
    sql.save("events", "id = ?", new_id)
    _copy_event(sql, source_id, new_id)
    return Tampering("insert in a gap", f"copy of event #{source_id} inserted as #{new_id}",
                     first_event=frozenset({new_id}), expect_kinds=frozenset({"inserted"}))


def insert_at_end(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    new_id, source_id = store.ids[-1] + rng.randint(1, 1000), rng.choice(store.ids)
    sql.save("events", "id = ?", new_id)
    _copy_event(sql, source_id, new_id)
    # After the last event hashed, a new row looks like an event committed since: it is no
    # problem, but it is reported as not under a checkpoint (exit 3), never as verified.
    return Tampering("insert at the end", f"copy of event #{source_id} appended as #{new_id}",
                     uncovered=new_id)


def swap_events(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    a, b = sorted(rng.sample(store.ids, 2))
    with_time = rng.random() < 0.5
    sql.save("events", "id IN (?, ?)", a, b)
    (ta, da), (tb, db) = sql.rows("SELECT ts, doc FROM events WHERE id IN (?, ?) ORDER BY id",
                                  a, b)
    for event_id, ts, doc in ((a, tb if with_time else ta, db), (b, ta if with_time else tb, da)):
        sql.run("UPDATE events SET ts = ?, doc = ? WHERE id = ?", ts, doc, event_id)
    return Tampering("swap events", f"events #{a} and #{b} swapped their docs"
                     f"{' and times' if with_time else ''}", first_event=frozenset({a, b}),
                     expect_kinds=frozenset({"reordered"}))


def _cut(store: HashedStore, rng: random.Random) -> tuple[int, int]:
    """(k, the new size): how many of the newest events a truncation removes."""
    k = rng.randint(1, min(80, store.size - 1))
    return k, store.size - k


def truncate_events(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    k, keep = _cut(store, rng)
    first = store.ids[keep]
    sql.save("events", "id >= ?", first)
    sql.run("DELETE FROM events WHERE id >= ?", first)
    return Tampering("truncate events", f"the newest {k} events (#{first} on) deleted",
                     first_event=frozenset({first}), expect_kinds=frozenset({"deleted"}))


def _roll_back_tree(sql: StoreSql, store: HashedStore, size: int, *, position: bool) -> None:
    """Make the tiles (and the builder's position) those of the tree of ``size`` leaves,
    as the builder had left them at that size."""
    sql.save("merkle_leaves", "1 = 1")
    sql.save("merkle_nodes", "1 = 1")
    levels = edge_tiles(size)
    for level, index, count in levels:
        table, width = (("merkle_leaves", RECORD) if level == 0 else ("merkle_nodes", HASH))
        at_level = "" if level == 0 else f" AND level = {level}"
        sql.run(f"DELETE FROM {table} WHERE tile > ?{at_level}", index)
        if count == 0:
            sql.run(f"DELETE FROM {table} WHERE tile = ?{at_level}", index)
        elif level == 0:
            records = bytes(sql.one("SELECT records FROM merkle_leaves WHERE tile = ?", index))
            records = records[:count * width]
            last_id = int.from_bytes(records[-RECORD + 1:-RECORD + 9], "big")
            sql.run("UPDATE merkle_leaves SET records = ?, last_id = ? WHERE tile = ?",
                    records, last_id, index)
        else:
            hashes = bytes(sql.one("SELECT hashes FROM merkle_nodes WHERE tile = ?"
                                   f"{at_level}", index))
            sql.run(f"UPDATE merkle_nodes SET hashes = ? WHERE tile = ?{at_level}",
                    hashes[:count * width], index)
    sql.run("DELETE FROM merkle_nodes WHERE level > ?", levels[-1][0])
    if position:
        sql.save("consumer_positions", "name = 'integrity'")
        state = orjson.dumps({"id": store.ids[size - 1], "size": size}).decode()
        sql.run("UPDATE consumer_positions SET state = ? WHERE name = 'integrity'", state)


def truncate_with_tree(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    """The newest events and their leaves removed, the checkpoints left (the tamperer could
    not remove them, or did not think of it)."""
    k, keep = _cut(store, rng)
    first = store.ids[keep]
    position = rng.random() < 0.5
    sql.save("events", "id >= ?", first)
    sql.run("DELETE FROM events WHERE id >= ?", first)
    _roll_back_tree(sql, store, keep, position=position)
    return Tampering("truncate events and tree",
                     f"the newest {k} events (#{first} on) and their leaves removed"
                     f"{', position rolled back' if position else ''}")


def roll_back(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    """The log cut short and everything rebuilt to match: only a checkpoint kept elsewhere
    can tell."""
    k, keep = _cut(store, rng)
    first = store.ids[keep]
    sql.save("events", "id >= ?", first)
    sql.run("DELETE FROM events WHERE id >= ?", first)
    _roll_back_tree(sql, store, keep, position=True)
    sql.save("checkpoints", "size > ?", keep)
    sql.run("DELETE FROM checkpoints WHERE size > ?", keep)
    return Tampering("roll back", f"the newest {k} events (#{first} on), their leaves and the"
                     " checkpoints over them removed, the position rolled back",
                     needs_kept_checkpoint=True, expect_kinds=frozenset({"truncated"}))


def _checkpoint(store: HashedStore, rng: random.Random) -> Checkpoint:
    return rng.choice(store.checkpoints)


def checkpoint_root(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    c = _checkpoint(store, rng)
    root = bytearray(c.root)
    root[rng.randrange(HASH)] ^= 1 << rng.randrange(8)
    sql.save("checkpoints", "size = ?", c.size)
    sql.run("UPDATE checkpoints SET root = ? WHERE size = ?", bytes(root), c.size)
    return Tampering("checkpoint root", f"checkpoint {c.size}: one bit of its root flipped",
                     expect_kinds=frozenset({"checkpoint"}))


def checkpoint_size(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    c = _checkpoint(store, rng)
    taken = {x.size for x in store.checkpoints}
    size = rng.choice([s for s in range(1, store.size + 20) if s not in taken])
    sql.save("checkpoints", "size IN (?, ?)", c.size, size)
    sql.run("UPDATE checkpoints SET size = ? WHERE size = ?", size, c.size)
    return Tampering("checkpoint size", f"checkpoint {c.size}: size changed to {size}",
                     expect_kinds=frozenset({"checkpoint"}))


NOTE_CHARACTERS = [chr(c) for c in range(1, 0x7F)] + ["—", "é", "\u2028"]


def checkpoint_note(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    c = _checkpoint(store, rng)
    at = rng.randrange(len(c.note))
    note = c.note[:at] + rng.choice([x for x in NOTE_CHARACTERS if x != c.note[at]]) \
        + c.note[at + 1:]
    sql.save("checkpoints", "size = ?", c.size)
    sql.run("UPDATE checkpoints SET note = ? WHERE size = ?", note, c.size)
    return Tampering("checkpoint note", f"checkpoint {c.size}: note character {at} "
                     f"{c.note[at]!r} -> {note[at]!r}", expect_kinds=frozenset({"checkpoint"}))


def checkpoint_other_key(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    c = _checkpoint(store, rng)
    same = rng.random() < 0.5
    root = c.root if same else hashlib.sha256(c.root).digest()
    note = signed_checkpoint(store.origin, c.size, root, generate_signer(store.origin))
    sql.save("checkpoints", "size = ?", c.size)
    sql.run("UPDATE checkpoints SET note = ?, root = ? WHERE size = ?", note, root, c.size)
    return Tampering("checkpoint by another key", f"checkpoint {c.size}: signed again by"
                     f" another key{'' if same else ' over another root'}",
                     expect_kinds=frozenset({"checkpoint"}))


def checkpoint_last_id(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    c = _checkpoint(store, rng)
    last_id = rng.choice([i for i in store.ids if i != c.last_id])
    sql.save("checkpoints", "size = ?", c.size)
    sql.run("UPDATE checkpoints SET last_id = ? WHERE size = ?", last_id, c.size)
    return Tampering("checkpoint last id", f"checkpoint {c.size}: last id {c.last_id} -> "
                     f"{last_id}", expect_kinds=frozenset({"checkpoint"}))


def checkpoint_compact_range(sql: StoreSql, store: HashedStore, rng: random.Random
                             ) -> Tampering:
    c = _checkpoint(store, rng)
    packed = bytearray(sql.one("SELECT compact_range FROM checkpoints WHERE size = ?", c.size))
    at = rng.randrange(len(packed))
    packed[at] ^= 1 << rng.randrange(8)
    sql.save("checkpoints", "size = ?", c.size)
    sql.run("UPDATE checkpoints SET compact_range = ? WHERE size = ?", bytes(packed), c.size)
    return Tampering("checkpoint compact range", f"checkpoint {c.size}: a bit of byte {at} of"
                     " its compact range flipped", expect_kinds=frozenset({"checkpoint"}))


def checkpoint_origin(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    c = _checkpoint(store, rng)
    sql.save("checkpoints", "size = ?", c.size)
    sql.run("UPDATE checkpoints SET origin = ? WHERE size = ?", "other.example/log", c.size)
    return Tampering("checkpoint origin", f"checkpoint {c.size}: origin column changed",
                     expect_kinds=frozenset({"checkpoint"}))


def forged_retention_run(sql: StoreSql, store: HashedStore, rng: random.Random
                         ) -> Tampering | None:
    """The oldest leaf tile and its events deleted, with a retention run that claims it
    appended after the tree's end (where no checkpoint covers it yet)."""
    if len(store.leaf_tiles) < 2:
        return None
    first_kept = int(sql.one("SELECT first_id FROM merkle_leaves WHERE tile = 1"))
    new_id = store.ids[-1] + rng.randint(1, 50)
    source_id = rng.choice([i for i in store.ids if i >= first_kept])
    up_to = int(sql.one("SELECT max(ts) FROM events WHERE id < ?", first_kept))
    sql.save("events", "id < ? OR id = ?", first_kept, new_id)
    sql.save("merkle_leaves", "tile = 0")
    sql.run("DELETE FROM events WHERE id < ?", first_kept)
    sql.run("DELETE FROM merkle_leaves WHERE tile = 0")
    _copy_event(sql, source_id, new_id)
    doc = orjson.loads(sql.one("SELECT doc FROM events WHERE id = ?", new_id))
    doc["type"]["action"] = RETENTION_ACTION
    doc["extraAttributes"] = [
        {"name": "Deleted events up to", "value": format_iso(up_to)},
        {"name": "Merkle leaves kept from event ID", "value": str(first_kept)}]
    sql.run("UPDATE events SET action = ?, doc = ? WHERE id = ?", RETENTION_ACTION,
            orjson.dumps(doc), new_id)
    return Tampering("forged retention run", f"leaf tile 0 and events before #{first_kept} "
                     f"deleted; a retention run claiming them appended as #{new_id}",
                     expect_kinds=frozenset({"deleted"}))


def _flip_tile(sql: StoreSql, table: str, column: str, where: str, *key: Any,
               rng: random.Random) -> tuple[int, int, int]:
    data = bytearray(sql.one(f"SELECT {column} FROM {table} WHERE {where}", *key))
    at = rng.randrange(len(data))
    old = data[at]
    data[at] = other_byte(rng, old)
    sql.save(table, where, *key)
    sql.run(f"UPDATE {table} SET {column} = ? WHERE {where}", bytes(data), *key)
    return at, old, data[at]


def leaf_tile_byte(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    tile = rng.choice(store.leaf_tiles)
    at, old, new = _flip_tile(sql, "merkle_leaves", "records", "tile = ?", tile, rng=rng)
    leaf = (tile << TILE_HEIGHT) + at // RECORD
    return Tampering("leaf tile byte", f"leaf tile {tile}: byte {at} (leaf {leaf}, byte "
                     f"{at % RECORD} of its record) {old:#04x} -> {new:#04x}")


def node_tile_byte(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering | None:
    if not store.node_tiles:
        return None
    level, tile = rng.choice(store.node_tiles)
    at, old, new = _flip_tile(sql, "merkle_nodes", "hashes", "level = ? AND tile = ?", level,
                              tile, rng=rng)
    return Tampering("node tile byte", f"node tile {level}/{tile}: byte {at} {old:#04x} -> "
                     f"{new:#04x}", expect_kinds=frozenset({"tree"}))


def delete_tile(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    tiles = [(0, t) for t in store.leaf_tiles] + store.node_tiles
    level, tile = rng.choice(tiles)
    if level == 0:
        sql.save("merkle_leaves", "tile = ?", tile)
        sql.run("DELETE FROM merkle_leaves WHERE tile = ?", tile)
    else:
        sql.save("merkle_nodes", "level = ? AND tile = ?", level, tile)
        sql.run("DELETE FROM merkle_nodes WHERE level = ? AND tile = ?", level, tile)
    return Tampering("delete tile", f"tile {level}/{tile} deleted")


def shorten_tile(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    """The last entry of a tile removed (a leaf record, or a hash)."""
    tiles = [(0, t) for t in store.leaf_tiles] + store.node_tiles
    level, tile = rng.choice(tiles)
    if level == 0:
        sql.save("merkle_leaves", "tile = ?", tile)
        data = bytes(sql.one("SELECT records FROM merkle_leaves WHERE tile = ?", tile))
        sql.run("UPDATE merkle_leaves SET records = ? WHERE tile = ?", data[:-RECORD], tile)
    else:
        sql.save("merkle_nodes", "level = ? AND tile = ?", level, tile)
        data = bytes(sql.one("SELECT hashes FROM merkle_nodes WHERE level = ? AND tile = ?",
                             level, tile))
        sql.run("UPDATE merkle_nodes SET hashes = ? WHERE level = ? AND tile = ?",
                data[:-HASH], level, tile)
    return Tampering("shorten tile", f"the last entry of tile {level}/{tile} removed")


def truncate_tree_only(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    """The newest events and their leaves removed, the position and checkpoints left."""
    k, keep = _cut(store, rng)
    first = store.ids[keep]
    sql.save("events", "id >= ?", first)
    sql.run("DELETE FROM events WHERE id >= ?", first)
    _roll_back_tree(sql, store, keep, position=False)
    return Tampering("truncate events and leaves", f"the newest {k} events (#{first} on) and"
                     " their leaves removed; position and checkpoints left")


# Each kind of tampering with its weight in the random draw: the kinds first.
STORE_TAMPERINGS: list[tuple[StoreTamper, int]] = [
    (edit_doc_byte, 12),
    (edit_time_column, 4),
    (delete_event, 8),
    (insert_in_gap, 6),
    (insert_at_end, 3),
    (swap_events, 8),
    (truncate_events, 4),
    (truncate_with_tree, 4),
    (roll_back, 4),
    (checkpoint_root, 3),
    (checkpoint_size, 3),
    (checkpoint_note, 3),
    (checkpoint_other_key, 3),
    (leaf_tile_byte, 6),
    (node_tile_byte, 4),
    # Beyond the list: other parts of a checkpoint row and of the tree.
    (checkpoint_last_id, 2),
    (checkpoint_compact_range, 2),
    (checkpoint_origin, 2),
    (forged_retention_run, 2),
    (delete_tile, 2),
    (shorten_tile, 2),
    (truncate_tree_only, 2),
]


def draw_store_tampering(sql: StoreSql, store: HashedStore, rng: random.Random) -> Tampering:
    """Apply one random tampering (see `STORE_TAMPERINGS`)."""
    functions, weights = zip(*STORE_TAMPERINGS, strict=True)
    while True:
        tamper = rng.choices(functions, weights)[0]
        done = tamper(sql, store, rng)
        if done is not None:
            return done


def explain(report: Report) -> str:
    problems = "\n".join(f"  {p.kind} #{p.event_id} [{p.where}]: {p.message}"
                         for p in report.problems[:8])
    return f"{report.summary()}\n{problems}"
