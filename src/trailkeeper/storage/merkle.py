"""The integrity tables (Merkle tiles, checkpoints, signing keys), as both backends read and
write them: one implementation, two dialects (`trailkeeper.storage.dialect`).

The tree builder saves its new tiles, its position and (sometimes) a checkpoint in ONE
transaction, and only if the position is still the one it started from: two builders that
both believed they held the lease cannot interleave their leaves.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trailkeeper.integrity.tree import Tile
from trailkeeper.storage.dialect import Dialect, Run

#: The builder's position in ``consumer_positions``: ``{"id": last event, "size": leaves}``.
POSITION = "integrity"
HASH_SIZE = 32


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A stored checkpoint: the signed note and what verifiers want beside it."""

    size: int
    root: bytes
    last_id: int  # the event of leaf size - 1 (0 for the empty tree)
    created_ms: int
    origin: str
    note: str
    compact_range: tuple[bytes, ...]  # complete subtrees, largest first; fold to the root


_CHECKPOINT_COLUMNS = "size, root, last_id, created_ms, origin, note, compact_range"


@functools.lru_cache(maxsize=8)
def leaf_rows_query(dialect: Dialect, marks: int) -> str:
    """`Storage.leaf_rows_after`'s statement with ``marks`` marked actions; its parameters
    are those actions, the last id read and the limit."""
    mark = ("CASE action " + " ".join(f"WHEN ? THEN {i}" for i in range(1, marks + 1))
            + " ELSE 0 END") if marks else "0"
    return dialect.sql(f"SELECT id, ts, {mark}, leaf_digest, CASE WHEN leaf_digest IS NULL"
                       " THEN doc END FROM events WHERE id > ? ORDER BY id LIMIT ?")


def _checkpoint(row: Sequence[Any]) -> CheckpointRecord:
    packed = bytes(row[6])
    return CheckpointRecord(
        size=int(row[0]), root=bytes(row[1]), last_id=int(row[2]), created_ms=int(row[3]),
        origin=row[4], note=row[5],
        compact_range=tuple(packed[i:i + HASH_SIZE] for i in range(0, len(packed), HASH_SIZE)))


def save(run: Run, dialect: Dialect, tiles: Sequence[Tile], position: str,
         expected: str | None, checkpoint: CheckpointRecord | None) -> bool:
    """Write ``tiles``, the new position and ``checkpoint``, if the stored position is still
    ``expected`` (None: none saved yet); False, writing nothing, when it is not."""
    q = dialect.sql
    rows = run(q("SELECT state FROM consumer_positions WHERE name = ?"), [POSITION])
    if (rows[0][0] if rows else None) != expected:
        return False
    for tile in tiles:
        if tile.level == 0:
            first, last = tile.event_ids()
            run(q("INSERT INTO merkle_leaves (tile, first_id, last_id, records)"
                  " VALUES (?, ?, ?, ?) ON CONFLICT (tile) DO UPDATE SET"
                  " first_id = excluded.first_id, last_id = excluded.last_id,"
                  " records = excluded.records"), [tile.index, first, last, tile.data])
        else:
            run(q("INSERT INTO merkle_nodes (level, tile, hashes) VALUES (?, ?, ?)"
                  " ON CONFLICT (level, tile) DO UPDATE SET hashes = excluded.hashes"),
                [tile.level, tile.index, tile.data])
    run(q("INSERT INTO consumer_positions (name, state) VALUES (?, ?)"
          " ON CONFLICT (name) DO UPDATE SET state = excluded.state"), [POSITION, position])
    if checkpoint is not None:
        c = checkpoint
        run(q(f"INSERT INTO checkpoints ({_CHECKPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
              " ON CONFLICT (size) DO NOTHING"),
            [c.size, c.root, c.last_id, c.created_ms, c.origin, c.note,
             b"".join(c.compact_range)])
    return True


def tiles(run: Run, dialect: Dialect, level: int, first: int, last: int) -> list[Tile]:
    """The stored tiles ``first`` to ``last`` of ``level``, in order (absent ones left out)."""
    if level == 0:
        sql = "SELECT tile, records FROM merkle_leaves WHERE tile BETWEEN ? AND ? ORDER BY tile"
        params: list[object] = [first, last]
    else:
        sql = ("SELECT tile, hashes FROM merkle_nodes WHERE level = ? AND tile BETWEEN ? AND ?"
               " ORDER BY tile")
        params = [level, first, last]
    return [Tile(level, int(r[0]), bytes(r[1])) for r in run(dialect.sql(sql), params)]


def tiles_at(run: Run, dialect: Dialect, keys: Sequence[tuple[int, int]]) -> list[Tile]:
    """The stored tiles among ``keys`` ((level, index) pairs), in one query."""
    leaves = sorted({index for level, index in keys if level == 0})
    nodes = sorted({(level, index) for level, index in keys if level > 0})
    parts: list[str] = []
    params: list[object] = []
    if leaves:
        parts.append("SELECT 0, tile, records FROM merkle_leaves WHERE tile IN "
                     f"({', '.join('?' * len(leaves))})")
        params += leaves
    if nodes:
        parts.append("SELECT level, tile, hashes FROM merkle_nodes WHERE (level, tile) IN "
                     f"(VALUES {', '.join(['(?, ?)'] * len(nodes))})")
        params += [v for pair in nodes for v in pair]
    if not parts:
        return []
    rows = run(dialect.sql(" UNION ALL ".join(parts)), params)
    return [Tile(int(r[0]), int(r[1]), bytes(r[2])) for r in rows]


def leaf_tile_of(run: Run, dialect: Dialect, event_id: int) -> Tile | None:
    """The first level-0 tile whose last event id is ``event_id`` or more: the one that holds
    the event if it is in the tree (ids can have gaps: check)."""
    rows = run(dialect.sql("SELECT tile, records FROM merkle_leaves"
                           " WHERE last_id >= ? ORDER BY last_id LIMIT 1"), [event_id])
    return Tile(0, int(rows[0][0]), bytes(rows[0][1])) if rows else None


def first_leaf_tile(run: Run, dialect: Dialect) -> int | None:
    """The lowest level-0 tile kept (retention removes those before it)."""
    rows = run(dialect.sql("SELECT min(tile) FROM merkle_leaves"), [])
    return None if not rows or rows[0][0] is None else int(rows[0][0])


def checkpoints(run: Run, dialect: Dialect, after_size: int, limit: int) -> list[CheckpointRecord]:
    rows = run(dialect.sql(f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE size > ?"
                           " ORDER BY size LIMIT ?"), [after_size, limit])
    return [_checkpoint(r) for r in rows]


def checkpoint_at(run: Run, dialect: Dialect, size: int | None) -> CheckpointRecord | None:
    """The checkpoint of ``size`` leaves, or the latest when ``size`` is None."""
    if size is None:
        rows = run(f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY size DESC LIMIT 1",
                   [])
    else:
        rows = run(dialect.sql(f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE size = ?"),
                   [size])
    return _checkpoint(rows[0]) if rows else None


def prune(run: Run, dialect: Dialect, before_id: int) -> int:
    """Remove the leaf tiles whose events all precede ``before_id`` (the oldest event kept),
    never the newest tile, which the builder grows; the tiles removed."""
    rows = run(dialect.sql("DELETE FROM merkle_leaves WHERE last_id < ?"
                           " AND tile < (SELECT max(tile) FROM merkle_leaves) RETURNING tile"),
               [before_id])
    return len(rows)


def put_signing_key(run: Run, dialect: Dialect, vkey: str, now_ms: int) -> None:
    run(dialect.sql("INSERT INTO signing_keys (vkey, first_used_ms) VALUES (?, ?)"
                    " ON CONFLICT (vkey) DO NOTHING"), [vkey, now_ms])


def signing_keys(run: Run, dialect: Dialect) -> list[str]:
    return [str(r[0]) for r in run("SELECT vkey FROM signing_keys ORDER BY first_used_ms", [])]
