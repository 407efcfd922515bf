"""The tiled tree: built leaf by leaf, saved tile by tile, reloaded from its right edge, and
proving what the reference Merkle functions prove, for random sizes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.integrity import merkle
from trailkeeper.integrity.canonical import leaf_record
from trailkeeper.integrity.tree import (
    TILE_WIDTH,
    CompactRange,
    MissingTileError,
    StoredTree,
    Tile,
    TreeBuilder,
    edge_tiles,
    tiles_needed,
)

# Sizes around tile boundaries are where tiling goes wrong.
sizes = st.one_of(st.integers(0, 600), st.sampled_from(
    [255, 256, 257, 511, 512, 513, 65535, 65536, 65537, 65536 + 256 * 3 + 17]))


def records(n: int, start: int = 0) -> list[bytes]:
    return [leaf_record(i + 1, 1_000 + i, str(i).encode()) for i in range(start, start + n)]


class Store:
    """Tiles as a store keeps them: the latest write of each wins."""

    def __init__(self) -> None:
        self.tiles: dict[tuple[int, int], Tile] = {}

    def save(self, tiles: list[Tile]) -> None:
        for tile in tiles:
            self.tiles[(tile.level, tile.index)] = tile

    def fetch(self, level: int, index: int) -> Tile | None:
        return self.tiles.get((level, index))

    def edge(self, size: int) -> list[Tile]:
        return [self.tiles[(level, index)] for level, index, count in edge_tiles(size) if count]


def build(n: int, *, batches: int = 3) -> tuple[Store, list[bytes]]:
    store, leaves, tree = Store(), records(n), TreeBuilder()
    step = max(1, n // batches)
    for start in range(0, n, step):
        for record in leaves[start:start + step]:
            tree.append(record)
        store.save(tree.take_dirty())
        tree = TreeBuilder(tree.size, store.edge(tree.size))  # reload, as after a restart
    return store, leaves


@settings(max_examples=60, deadline=None)
@given(sizes)
def test_the_root_of_a_tiled_tree_is_the_rfc_9162_root(n: int) -> None:
    """Built in batches with a reload between them, the tree has the reference root, and the
    saved tiles give the same root and compact range."""
    store, leaves = build(n)
    hashes = [merkle.leaf_hash(r) for r in leaves]
    tree = TreeBuilder(n, store.edge(n))
    assert tree.root() == merkle.root(hashes)
    stored = StoredTree(store.fetch)
    assert stored.root(n) == merkle.root(hashes)
    assert stored.compact_range(n) == tree.compact_range()
    assert merkle.fold(tree.compact_range()) == merkle.root(hashes)


@settings(max_examples=60, deadline=None)
@given(sizes.filter(lambda n: n > 0), st.data())
def test_proofs_from_tiles_are_the_reference_proofs_and_verify(n: int, data: st.DataObject
                                                               ) -> None:
    """Inclusion and consistency proofs read from the tiles equal those computed from all the
    leaves, and verify against the roots."""
    store, leaves = build(n)
    hashes = [merkle.leaf_hash(r) for r in leaves]
    stored = StoredTree(store.fetch)
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(0, size))
    path = stored.inclusion_proof(index, size)
    assert path == merkle.inclusion_proof(hashes[:size], index)
    assert merkle.verify_inclusion(hashes[index], index, size, path, merkle.root(hashes[:size]))
    proof = stored.consistency_proof(old, size)
    assert proof == merkle.consistency_proof(hashes[:size], old)
    assert merkle.verify_consistency(old, size, merkle.root(hashes[:old]),
                                     merkle.root(hashes[:size]), proof)


def test_a_full_tile_is_saved_once_and_upper_tiles_hold_its_root() -> None:
    """When a tile fills, it is handed over whole and its root becomes an entry one level up."""
    tree = TreeBuilder()
    leaves = records(TILE_WIDTH + 1)
    for record in leaves:
        tree.append(record)
    dirty = {(t.level, t.index): t for t in tree.take_dirty()}
    assert set(dirty) == {(0, 0), (0, 1), (1, 0)}
    assert dirty[(0, 0)].width == TILE_WIDTH and dirty[(0, 1)].width == 1
    assert dirty[(1, 0)].hashes() == [merkle.root([merkle.leaf_hash(r)
                                                   for r in leaves[:TILE_WIDTH]])]
    assert tree.take_dirty() == []


def test_reloading_with_the_wrong_tiles_is_refused() -> None:
    """A right edge that does not fit the size (a lost write) is an error, not a wrong root."""
    store, _ = build(300)
    with pytest.raises(ValueError, match="entries"):
        TreeBuilder(301, store.edge(300))


def test_a_proof_that_needs_a_removed_tile_says_so() -> None:
    """After retention removed a leaf tile, proofs into it fail with MissingTileError while
    proofs of later leaves still work (the hashes above the removed tile are kept)."""
    store, leaves = build(3 * TILE_WIDTH)
    del store.tiles[(0, 0)]
    stored = StoredTree(store.fetch)
    hashes = [merkle.leaf_hash(r) for r in leaves]
    with pytest.raises(MissingTileError):
        stored.inclusion_proof(5, len(leaves))
    assert stored.inclusion_proof(TILE_WIDTH + 5, len(leaves)) == \
        merkle.inclusion_proof(hashes, TILE_WIDTH + 5)
    assert stored.root(len(leaves)) == merkle.root(hashes)


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=40))
def test_a_compact_range_appends_like_the_tree(hashes: list[bytes]) -> None:
    """Leaf by leaf, a compact range has the root of the leaves so far."""
    compact = CompactRange()
    for count, h in enumerate(hashes, start=1):
        compact.append(h)
        assert compact.size == count
        assert compact.root() == merkle.root(hashes[:count])
    with pytest.raises(ValueError, match="hashes"):
        CompactRange(3, hashes[:1])


@settings(max_examples=40, deadline=None)
@given(sizes.filter(lambda n: n > 0), st.data())
def test_the_tiles_a_proof_needs_are_known_before_reading_any(n: int, data: st.DataObject
                                                              ) -> None:
    """`tiles_needed` names exactly the tiles a proof reads, so a store can fetch them in
    one query; the proof from those tiles alone is the same."""
    store, _ = build(n)
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(0, size))

    def compute(tree: StoredTree) -> object:
        return (tree.inclusion_proof(index, size), tree.consistency_proof(old, size),
                tree.root(size))

    read: set[tuple[int, int]] = set()

    def counting(level: int, tile: int) -> Tile | None:
        read.add((level, tile))
        return store.fetch(level, tile)

    expected = compute(StoredTree(counting))
    wanted = tiles_needed(compute)
    assert wanted == read
    preloaded = StoredTree(lambda level, tile: pytest.fail("a tile was read twice"))
    preloaded.load(store.tiles[key] for key in wanted)
    assert compute(preloaded) == expected


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 1300), st.lists(st.integers(1, 700), min_size=1, max_size=8))
def test_extending_in_runs_saves_the_tiles_appending_one_by_one_saves(
        n: int, runs: list[int]) -> None:
    """Runs of any length, starting and ending anywhere in a tile (the builder's batches),
    leave the tree and its saved tiles as appending the same leaves one at a time."""
    leaves = records(n)
    one_by_one, by_runs = Store(), Store()
    single, runner = TreeBuilder(), TreeBuilder()
    for record in leaves:
        single.append(record)
    one_by_one.save(single.take_dirty())
    start, turn = 0, 0
    while start < n:
        run = runs[turn % len(runs)]
        runner.extend(iter(leaves[start:start + run]))  # any iterable
        by_runs.save(runner.take_dirty())
        start, turn = start + run, turn + 1
    assert by_runs.tiles == one_by_one.tiles
    assert runner.size == single.size == n
    assert runner.root() == single.root() == merkle.root([merkle.leaf_hash(r) for r in leaves])
