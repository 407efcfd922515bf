"""Proofs from a store: where an event is in the tree, its inclusion proof against a
checkpoint, and consistency proofs between tree sizes — each a handful of tile reads.

The answers carry hashes only; checking them needs `trailkeeper.integrity.merkle`'s verifiers,
the event itself (for its leaf) and a checkpoint whose signature the checker trusts.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from trailkeeper.errors import NotFoundError, TrailkeeperError
from trailkeeper.integrity.canonical import record_event_id
from trailkeeper.integrity.tree import TILE_HEIGHT, MissingTileError, StoredTree, Tile, tiles_needed
from trailkeeper.storage.base import Storage
from trailkeeper.storage.merkle import POSITION, CheckpointRecord


class NotCoveredError(TrailkeeperError):
    """The proof asked for is not possible yet (or any more): the event is newer than the
    tree or checkpoint, or retention removed what the proof needs."""

    http_status = 409
    exit_code = 1


@dataclass(frozen=True, slots=True)
class Leaf:
    """An event's place in the tree."""

    index: int
    record: bytes


@dataclass(frozen=True, slots=True)
class InclusionProof:
    event_id: int
    leaf: Leaf
    tree_size: int
    root: bytes
    path: list[bytes]
    checkpoint: CheckpointRecord | None  # when tree_size is a checkpoint's


def stored_tree(storage: Storage, plan: Callable[[StoredTree], object] | None = None
                ) -> StoredTree:
    """The store's tree, reading each tile when first needed — or, given the computation
    it is for, every tile that needs in one query first."""
    def fetch(level: int, index: int) -> Tile | None:
        found = storage.merkle_tiles(level, index, index)
        return found[0] if found else None

    tree = StoredTree(fetch)
    if plan is not None:
        tree.load(storage.merkle_tiles_at(sorted(tiles_needed(plan))))
    return tree


def tree_size(storage: Storage) -> tuple[int, int]:
    """(leaves in the tree, id of the last event hashed)."""
    text = storage.get_position(POSITION)
    if text is None:
        return 0, 0
    state = orjson.loads(text)
    return int(state["size"]), int(state["id"])


def find_leaf(storage: Storage, event_id: int) -> Leaf | None:
    """The leaf of an event (None when it is not in the tree, or retention removed it)."""
    found = _first_leaf_from(storage, event_id)
    if found is None or record_event_id(found.record) != event_id:
        return None
    return found


def _first_leaf_from(storage: Storage, event_id: int) -> Leaf | None:
    """The first leaf whose event id is ``event_id`` or more."""
    tile = storage.merkle_leaf_tile(event_id)
    if tile is None:
        return None
    records = tile.records()
    at = bisect.bisect_left([record_event_id(r) for r in records], event_id)
    return Leaf((tile.index << TILE_HEIGHT) + at, records[at])


@dataclass(frozen=True, slots=True)
class Range:
    """The tree of the leaves before one event: what verifying an export that starts at that
    event needs (checked when hashing the export reaches a signed checkpoint)."""

    size: int
    last_event_id: int  # the event of leaf size - 1 (0 when size is 0)
    compact_range: list[bytes]


def range_before(storage: Storage, event_id: int) -> Range:
    """The range of the leaves of the events before ``event_id``."""
    size, _ = tree_size(storage)
    start = _first_leaf_from(storage, event_id)
    count = size if start is None else start.index
    if count == 0:
        return Range(0, 0, [])
    tree = stored_tree(storage)
    try:
        hashes = tree.compact_range(count)
        tile = storage.merkle_tiles(0, (count - 1) >> TILE_HEIGHT, (count - 1) >> TILE_HEIGHT)
        last = record_event_id(tile[0].records()[(count - 1) & 0xFF])
    except (MissingTileError, IndexError):
        raise NotCoveredError(f"Retention removed the leaves this range needs (before event "
                              f"{event_id})") from None
    return Range(count, last, hashes)


def checkpoint_for(storage: Storage, size: int | None) -> CheckpointRecord:
    """The checkpoint of ``size`` leaves, or the latest; `NotFoundError` when none."""
    found = storage.checkpoint(size)
    if found is None:
        raise NotFoundError("No checkpoint has been signed yet" if size is None
                            else f"No checkpoint of tree size {size}")
    return found


def inclusion(storage: Storage, event_id: int, size: int | None = None) -> InclusionProof:
    """The proof that event ``event_id`` is leaf ``i`` of the tree of ``size`` leaves (by
    default the latest checkpoint's)."""
    leaf = find_leaf(storage, event_id)
    if leaf is None:
        raise NotCoveredError(f"Event {event_id} is not in the Merkle tree (yet): it is "
                              "hashed a moment after it is stored, unless retention "
                              "removed its leaf")
    latest = checkpoint_for(storage, None)
    size = latest.size if size is None else size
    if size > latest.size:
        raise NotCoveredError(f"Tree size {size} is beyond the latest checkpoint "
                              f"({latest.size})")
    if leaf.index >= size:
        raise NotCoveredError(f"Event {event_id} (leaf {leaf.index}) is not covered by a "
                              f"tree of {size} leaves; the next checkpoint will cover it")
    at_latest = size == latest.size

    def proof(tree: StoredTree) -> tuple[list[bytes], bytes]:
        # The latest checkpoint's root is known: no need to read what computing it needs.
        return (tree.inclusion_proof(leaf.index, size),
                latest.root if at_latest else tree.root(size))

    try:
        path, root = proof(stored_tree(storage, proof))
    except MissingTileError as exc:
        raise NotCoveredError(f"Retention removed what this proof needs ({exc})") from None
    return InclusionProof(event_id, leaf, size, root, path,
                          latest if at_latest else storage.checkpoint(size))


def consistency(storage: Storage, old_size: int, size: int) -> tuple[bytes, bytes, list[bytes]]:
    """(old root, new root, proof) that the tree of ``old_size`` leaves is a prefix of the
    tree of ``size`` leaves; ``size`` at most the latest checkpoint's."""
    latest = checkpoint_for(storage, None)
    if not 0 <= old_size <= size <= latest.size:
        raise NotCoveredError(f"Consistency needs 0 <= from ({old_size}) <= to ({size}) <= "
                              f"the latest checkpoint's size ({latest.size})")
    def proof(tree: StoredTree) -> tuple[bytes, bytes, list[bytes]]:
        return tree.root(old_size), tree.root(size), tree.consistency_proof(old_size, size)

    try:
        return proof(stored_tree(storage, proof))
    except MissingTileError as exc:
        raise NotCoveredError(f"Retention removed what this proof needs ({exc}); prove from "
                              "a later checkpoint") from None

