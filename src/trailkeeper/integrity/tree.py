"""The log's Merkle tree as it is kept: tiles of 256 hashes, and the growing right edge.

The layout is that of C2SP tlog-tiles, with tiles 8 levels high. A tile at level 0 holds
the leaf records (`trailkeeper.integrity.canonical`) of 256 consecutive leaves: tile ``t``
has leaves ``256·t`` to ``256·t + 255``. A tile at level ``k ≥ 1`` holds up to 256 hashes of
complete subtrees of ``2^(8k)`` leaves: entry ``j`` of tile ``t`` is the tree node at height
``8k`` with index ``256·t + j``. Only the right-most tile of each level is partial, and it
grows as the log does; a full tile never changes again.

So any node of the tree is the Merkle root of at most 128 consecutive entries of one tile,
and a root, inclusion proof or consistency proof reads O(log n) tiles: a few reads and a few
hundred hashes at ten million leaves, whatever the size.

Pure: the store's tiles come in through a ``fetch`` function.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from trailkeeper.integrity import merkle
from trailkeeper.integrity.canonical import RECORD_SIZE, record_event_id
from trailkeeper.integrity.merkle import HASH_SIZE, leaf_hash, node_hash

__all__ = [
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "CompactRange",
    "MissingTileError",
    "StoredTree",
    "Tile",
    "TreeBuilder",
    "edge_tiles",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT


class MissingTileError(LookupError):
    """A tile the computation needs is not there (retention removed it, or it was never
    written)."""

    def __init__(self, level: int, index: int) -> None:
        super().__init__(f"tile {level}/{index} is missing")
        self.level = level
        self.index = index


@dataclass(frozen=True, slots=True)
class Tile:
    """One stored tile: leaf records (level 0) or 32-byte hashes (levels above)."""

    level: int
    index: int
    data: bytes

    @property
    def width(self) -> int:
        return len(self.data) // (RECORD_SIZE if self.level == 0 else HASH_SIZE)

    def records(self) -> list[bytes]:
        """The leaf records of a level-0 tile."""
        d = self.data
        return [d[i:i + RECORD_SIZE] for i in range(0, len(d), RECORD_SIZE)]

    def hashes(self) -> list[bytes]:
        """Its entries as hashes: the leaf hashes of a level-0 tile, else the stored ones."""
        if self.level == 0:
            return [leaf_hash(r) for r in self.records()]
        d = self.data
        return [d[i:i + HASH_SIZE] for i in range(0, len(d), HASH_SIZE)]

    def event_ids(self) -> tuple[int, int]:
        """(first, last) event id of a non-empty level-0 tile, read from the records' id
        fields as they stand (a damaged version byte is for the leaf check to report)."""
        return (record_event_id(self.data[:RECORD_SIZE]),
                record_event_id(self.data[-RECORD_SIZE:]))


def edge_tiles(size: int) -> list[tuple[int, int, int]]:
    """(level, index, entries) of the right-most tile of each level of a tree of ``size``
    leaves, level 0 first; a tile with 0 entries has not been written yet."""
    out = []
    level, count = 0, size
    while True:
        out.append((level, count >> TILE_HEIGHT, count & (TILE_WIDTH - 1)))
        count >>= TILE_HEIGHT
        if count == 0:
            return out
        level += 1


class CompactRange:
    """The complete subtrees of a tree of ``size`` leaves, largest first (one per set bit of
    the size): enough to append leaves and compute the root, without the leaves."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != size.bit_count():
            raise ValueError(f"a compact range of size {size} has {size.bit_count()} hashes,"
                             f" not {len(hashes)}")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; returns the nodes it completed, ``(height, index, hash)``, from
        height 1 up."""
        index = self.size
        done: list[tuple[int, int, bytes]] = []
        h, height = leaf, 0
        while index >> height & 1:  # a complete subtree of this height waits on the left
            h = node_hash(self.hashes.pop(), h)
            height += 1
            done.append((height, index >> height, h))
        self.hashes.append(h)
        self.size += 1
        return done

    def root(self) -> bytes:
        return merkle.fold(self.hashes)


@dataclass(slots=True)
class _Edge:
    """The right-most tile of one level, as it grows."""

    level: int
    index: int
    entries: list[bytes] = field(default_factory=list)  # records (level 0) or hashes
    dirty: bool = False

    def tile(self) -> Tile:
        return Tile(self.level, self.index, b"".join(self.entries))


class TreeBuilder:
    """Appends leaf records to the tree, keeping its right-edge tiles, and says which tiles
    changed since they were last taken (to be saved with the position)."""

    def __init__(self, size: int = 0, edge: Sequence[Tile] = ()) -> None:
        """A tree of ``size`` leaves whose right-most tiles are ``edge`` (from the store)."""
        by_level = {t.level: t for t in edge}
        self._full: list[Tile] = []  # tiles that filled since the last take_dirty
        self._edges: list[_Edge] = []
        subtrees: list[bytes] = []
        for level, index, count in edge_tiles(size):
            tile = by_level.get(level)
            have = tile.width if tile is not None and tile.index == index else 0
            if have != count:
                raise ValueError(f"tile {level}/{index} has {have} entries; a tree of"
                                 f" {size} leaves needs {count}")
            entries = ([] if count == 0 or tile is None
                       else tile.records() if level == 0 else tile.hashes())
            self._edges.append(_Edge(level, index, entries))
            subtrees[:0] = _edge_subtrees(tile.hashes() if tile and count else [])
        self._range = CompactRange(size, subtrees)

    @property
    def size(self) -> int:
        return self._range.size

    def root(self) -> bytes:
        return self._range.root()

    def compact_range(self) -> list[bytes]:
        """The hashes of the complete subtrees, largest first (see `CompactRange`)."""
        return list(self._range.hashes)

    def append(self, record: bytes) -> None:
        """Add the next leaf (its 49-byte record)."""
        self.extend((record,))

    def extend(self, records: Iterable[bytes]) -> None:
        """Add the next leaves: the builder's per-event path, so the records go into their
        tiles by slices and the leaves are hashed in one comprehension before the nodes
        (`CompactRange.append` inlined)."""
        records = list(records)
        start = self._range.size
        self._fill_leaf_tiles(start, records)
        hashes = self._range.hashes
        sha256 = hashlib.sha256
        index = start
        for h in [sha256(b"\x00" + record).digest() for record in records]:
            height = 0
            while index >> height & 1:  # a complete subtree of this height waits on the left
                h = sha256(b"\x01" + hashes.pop() + h).digest()
                height += 1
                if height % TILE_HEIGHT == 0:
                    self._add_entry(height // TILE_HEIGHT, index >> height, h)
            hashes.append(h)
            index += 1
        self._range.size = index

    def _fill_leaf_tiles(self, start: int, records: list[bytes]) -> None:
        """Put leaves ``start``… (their records) into the level-0 tiles."""
        done = 0
        while done < len(records):
            index = start + done
            leaves = self._edges[0]
            if leaves.index != index >> TILE_HEIGHT:
                leaves = self._edges[0] = _Edge(0, index >> TILE_HEIGHT)
            room = TILE_WIDTH - (index & (TILE_WIDTH - 1))
            leaves.entries += records[done:done + room]
            done += room
            leaves.dirty = True
            if len(leaves.entries) == TILE_WIDTH:  # saved before the next one replaces it
                self._full.append(leaves.tile())
                leaves.dirty = False

    def _add_entry(self, level: int, entry_index: int, entry: bytes) -> None:
        if level == len(self._edges):
            self._edges.append(_Edge(level, 0))
        edge = self._edges[level]
        if edge.index != entry_index >> TILE_HEIGHT:
            edge = self._edges[level] = _Edge(level, entry_index >> TILE_HEIGHT)
        edge.entries.append(entry)
        edge.dirty = True
        # A tile that just filled must be saved before the next one replaces it here.
        if len(edge.entries) == TILE_WIDTH:
            self._full.append(edge.tile())
            edge.dirty = False

    def take_dirty(self) -> list[Tile]:
        """The tiles changed since the last call: each full tile once, the partial ones as
        they are now."""
        out = self._full
        self._full = []
        for edge in self._edges:
            if edge.dirty:
                out.append(edge.tile())
                edge.dirty = False
        return out


def _edge_subtrees(entries: list[bytes]) -> list[bytes]:
    """The complete subtrees of a partial tile's entries, largest first."""
    out, start, count = [], 0, len(entries)
    for bit in reversed(range(TILE_HEIGHT)):
        if count >> bit & 1:
            out.append(merkle.root(entries[start:start + (1 << bit)]))
            start += 1 << bit
    return out


class StoredTree:
    """Nodes, roots and proofs of the stored tree, from its tiles (``fetch(level, index)``,
    None when absent), each tile read once."""

    def __init__(self, fetch: Callable[[int, int], Tile | None]) -> None:
        self._fetch = fetch
        self._hashes: dict[tuple[int, int], list[bytes]] = {}

    def load(self, tiles: Iterable[Tile]) -> None:
        """Take tiles read beforehand (all of a proof's at once: see `tiles_needed`)."""
        for tile in tiles:
            self._hashes[(tile.level, tile.index)] = tile.hashes()

    def entries(self, level: int, index: int) -> list[bytes]:
        key = (level, index)
        if key not in self._hashes:
            tile = self._fetch(level, index)
            if tile is None:
                raise MissingTileError(level, index)
            self._hashes[key] = tile.hashes()
        return self._hashes[key]

    def node(self, height: int, index: int) -> bytes:
        """The complete subtree of ``2^height`` leaves numbered ``index`` at that height."""
        level, tile, offset, count = _place(height, index)
        part = self.entries(level, tile)[offset:offset + count]
        if len(part) != count:
            raise MissingTileError(level, tile)
        return merkle.root(part)

    def subtree(self, lo: int, hi: int) -> bytes:
        """MTH of leaves ``lo`` to ``hi - 1``: complete subtrees, or one at the right edge."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            return self.node(n.bit_length() - 1, lo // n)
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(self.subtree(lo, lo + k), self.subtree(lo + k, hi))

    def root(self, size: int) -> bytes:
        return merkle.EMPTY_ROOT if size == 0 else self.subtree(0, size)

    def compact_range(self, size: int) -> list[bytes]:
        """The complete subtrees of the tree of ``size`` leaves, largest first."""
        out, start = [], 0
        for bit in reversed(range(size.bit_length())):
            if size >> bit & 1:
                out.append(self.node(bit, start >> bit))
                start += 1 << bit
        return out

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return merkle.inclusion_path(size, index, self.subtree)

    def consistency_proof(self, old_size: int, size: int) -> list[bytes]:
        return merkle.consistency_path(old_size, size, self.subtree)


def _place(height: int, index: int) -> tuple[int, int, int, int]:
    """Where a complete subtree's node is: (tile level, tile index, first entry, entries)."""
    level, below = divmod(height, TILE_HEIGHT)
    first = index << below
    return level, first >> TILE_HEIGHT, first & (TILE_WIDTH - 1), 1 << below


class _Planner(StoredTree):
    """A dry run: notes the tiles each node would be read from, hashes nothing real."""

    def __init__(self) -> None:
        super().__init__(lambda level, index: None)
        self.wanted: set[tuple[int, int]] = set()

    def node(self, height: int, index: int) -> bytes:
        level, tile, _, _ = _place(height, index)
        self.wanted.add((level, tile))
        return bytes(HASH_SIZE)


def tiles_needed(compute: Callable[[StoredTree], object]) -> set[tuple[int, int]]:
    """The (level, index) of every tile ``compute`` reads from a `StoredTree`: which nodes a
    root or proof needs depends on sizes only, so a dry run finds them, and a store can read
    them in one query."""
    planner = _Planner()
    compute(planner)
    return planner.wanted
