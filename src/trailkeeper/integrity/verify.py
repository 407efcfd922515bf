"""Verify a store or a server against its signed checkpoints (``trailkeeper verify``).

What is checked, bottom up (docs/integrity.md has the reasoning):

1. every checkpoint's signature, with keys the caller trusts;
2. every event against its leaf record: the record recomputed from the event as it is now
   must equal the stored one, and the row's indexed time the record's. An event with no leaf
   was *inserted*; a leaf with no event was *deleted* — unless its record's time is no newer
   than what a recorded retention run says it removed (``Deleted events up to``); two
   events whose contents changed places were *reordered*;
3. every full tile's root against the hash stored for it one level up;
4. every checkpoint's root against the root of the stored tree at its size (so consistency
   between checkpoints holds too: they are roots of one append-only tree), and every
   checkpoint the caller brings (`Trust.checkpoints`: one kept off this machine) likewise —
   which is what catches a log cut short and rebuilt.

The event pass, the expensive one, runs in ``jobs`` processes when the source is a store:
the leaf tiles are cut into small parts, which this process takes from the start and the
workers from the end, so that no process waits long for another however late the workers
start.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import multiprocessing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from trailkeeper.integrity import merkle
from trailkeeper.integrity.canonical import CanonicalError, LeafRecord
from trailkeeper.integrity.keys import Verifier
from trailkeeper.integrity.note import NoteError, verify_checkpoint
from trailkeeper.integrity.report import Report
from trailkeeper.integrity.sources import RetentionClaim, Row, Source, StoreSource
from trailkeeper.integrity.tree import (
    TILE_HEIGHT,
    TILE_WIDTH,
    CompactRange,
    MissingTileError,
    StoredTree,
)
from trailkeeper.storage.base import Storage
from trailkeeper.storage.merkle import CheckpointRecord

# Leaf tiles per part of a parallel event pass: 8,192 events, about 60 ms of work, so the
# processes finish within a part or two of each other.
_TILES_PER_PART = 32
# Below this many leaf tiles one process is quicker than starting others (~0.3 s each).
_PARALLEL_FROM_TILES = 200
_TILES_PER_READ = 64
_MAX_EDITED_KEPT = 1000  # edited events kept to look for swaps among them


@dataclass(frozen=True, slots=True)
class Trust:
    """What the verifier trusts: public keys, and checkpoints kept elsewhere."""

    verifiers: Sequence[Verifier]
    checkpoints: Sequence[str] = ()  # signed notes


@dataclass(frozen=True, slots=True)
class _Range:
    """One part of the event pass: leaf tiles first..last and the events with ids in
    (after_id, up_to_id] (None: to the end)."""

    first_tile: int
    last_tile: int
    after_id: int
    up_to_id: int | None


@dataclass(slots=True)
class _Context:
    size: int  # leaves in the tree when verification began (it may grow meanwhile)
    covered_size: int  # leaves under the largest verified checkpoint
    last_hashed_id: int
    horizon_ms: int | None  # retention removed nothing newer


@dataclass(slots=True)
class _Part:
    report: Report
    roots: dict[int, bytes] = field(default_factory=dict)  # full leaf tile -> its root
    # Events whose content no longer matches their leaf, to look for swaps among them all.
    edited: list[tuple[Row, LeafRecord]] = field(default_factory=list)


def verify_source(source: Source, trust: Trust, *, db_url: str | None = None,
                  jobs: int = 1, tiles_per_part: int | None = None) -> Report:
    """Verify a store or server; ``db_url`` lets the event pass run in ``jobs`` processes.

    The event pass is cut into parts of ``tiles_per_part`` leaf tiles; by default only to
    share it out among processes, when the log is large enough to gain from it."""
    report = Report(source.name)
    size, last_hashed = source.position()
    report.tree_size = size
    stored = _signed(source.checkpoints(), trust, report, size)
    brought = _brought(trust, report)
    covered = max([c.size for c in stored] + [n for n, _ in brought if n <= size], default=0)
    claims = _covered_claims(source, stored)
    context = _Context(size, covered, last_hashed, _horizon(claims))
    first_tile = source.first_leaf_tile()
    _check_pruned_head(source, first_tile, claims, report)
    last_tile = (size - 1) >> TILE_HEIGHT if size else -1
    parallel = db_url is not None and jobs > 1
    parts = _ranges(source, first_tile, last_tile, tiles_per_part, parallel)
    roots: dict[int, bytes] = {}
    edited: list[tuple[Row, LeafRecord]] = []
    for part in _run(source, parts, context, db_url if parallel else None, jobs):
        report.merge(part.report)
        roots.update(part.roots)
        edited += part.edited[:_MAX_EDITED_KEPT - len(edited)]
    _find_swaps(source, edited, report)
    tree = StoredTree(lambda level, index: next(iter(source.tiles(level, index, index)), None))
    _check_levels(source, roots, size, report)
    pruned_before = first_tile or 0  # leaf tiles retention removed (checked above)
    for checkpoint in stored:
        _check_root(tree, checkpoint.size, checkpoint.root, report,
                    f"checkpoint {checkpoint.size}", pruned_before)
        _check_last_id(source, checkpoint, report)
    for brought_size, root in brought:
        if brought_size > size:
            report.problem("truncated", f"the checkpoint you brought covers {brought_size:,} "
                           f"events but the log's tree has only {size:,}: its end was cut off",
                           where=f"checkpoint {brought_size}")
        else:
            _check_root(tree, brought_size, root, report, f"your checkpoint {brought_size}",
                        pruned_before)
    return report


def _signed(checkpoints: list[CheckpointRecord], trust: Trust, report: Report,
            size: int) -> list[CheckpointRecord]:
    """The stored checkpoints whose note a trusted key signed and which say what the row
    says; the others are problems."""
    good = []
    for c in checkpoints:
        where = f"checkpoint {c.size}"
        try:
            body = verify_checkpoint(c.note, trust.verifiers)
        except NoteError as exc:
            report.problem("checkpoint", f"the checkpoint of {c.size:,} events does not "
                           f"verify with a trusted key: {exc}", where=where)
            continue
        if (body.size, body.root, body.origin) != (c.size, c.root, c.origin):
            report.problem("checkpoint", f"the stored checkpoint of {c.size:,} events differs "
                           "from the note that was signed", where=where)
        elif not _folds_to(c.size, c.compact_range, c.root):
            report.problem("checkpoint", f"the compact range stored with the checkpoint of "
                           f"{c.size:,} events does not fold to its root", where=where)
        elif c.size > size:
            report.problem("truncated", f"a checkpoint covers {c.size:,} events but the tree "
                           f"has only {size:,}: the log's end was cut off", where=where)
        else:
            good.append(c)
    report.checkpoints_verified += len(good)
    return good


def _folds_to(size: int, hashes: Sequence[bytes], root: bytes) -> bool:
    try:
        return CompactRange(size, hashes).root() == root
    except ValueError:  # not one hash per set bit of the size
        return False


def _brought(trust: Trust, report: Report) -> list[tuple[int, bytes]]:
    out = []
    for note in trust.checkpoints:
        try:
            body = verify_checkpoint(note, trust.verifiers)
        except NoteError as exc:
            report.problem("checkpoint", f"a checkpoint you brought does not verify: {exc}")
            continue
        out.append((body.size, body.root))
    report.checkpoints_verified += len(out)
    return out


def _covered_claims(source: Source, stored: list[CheckpointRecord]) -> list[RetentionClaim]:
    """The recorded retention runs that a verified checkpoint covers: a claim appended since
    (by anyone who can write to the store) excuses nothing yet."""
    covered_id = max((c.last_id for c in stored), default=0)
    return [c for c in source.retention_claims() if c.event_id <= covered_id]


def _horizon(claims: list[RetentionClaim]) -> int | None:
    """The newest time retention says it removed, from runs a verified checkpoint covers."""
    times = [c.deleted_up_to_ms for c in claims if c.deleted_up_to_ms is not None]
    return max(times, default=None)


def _check_pruned_head(source: Source, first_tile: int | None, claims: list[RetentionClaim],
                       report: Report) -> None:
    """Leaf tiles may be missing only at the start, and only as far as a recorded retention
    run (one a verified checkpoint covers) says it removed them."""
    if not first_tile:
        return
    kept_from = max((c.merkle_kept_from_id or 0 for c in claims), default=0)
    tiles = source.tiles(0, first_tile, first_tile)
    first_id = tiles[0].event_ids()[0] if tiles else 0
    if first_id > kept_from:
        report.problem("deleted", f"the leaves before event #{first_id} (tiles 0 to "
                       f"{first_tile - 1}) were removed, but no retention run records that",
                       where=f"tile 0/{first_tile}")
    else:
        report.notes.append(f"retention removed the leaves of the events before #{first_id}")


def _ranges(source: Source, first_tile: int | None, last_tile: int,
            tiles_per_part: int | None, parallel: bool) -> list[_Range]:
    """The event pass cut into parts of ``tiles_per_part`` leaf tiles (None: parts only to
    share the work among processes, and only for a large log); a part checks the events
    after the last event id of the part before, up to the last of its own tiles."""
    if first_tile is None or last_tile < 0:
        return [_Range(0, -1, 0, None)]
    count = last_tile - first_tile + 1
    if tiles_per_part is not None:
        size = max(1, tiles_per_part)
    elif parallel and count >= _PARALLEL_FROM_TILES:
        size = _TILES_PER_PART
    else:
        size = count
    whole = [_Range(first_tile, last_tile, 0, None)]
    out = []
    after = 0
    for lo in range(first_tile, last_tile + 1, size):
        hi = min(lo + size, last_tile + 1) - 1
        if hi == last_tile:
            out.append(_Range(lo, hi, after, None))
            break
        edge = source.tiles(0, hi, hi)
        up_to = edge[0].event_ids()[1] if edge else 0
        if up_to <= after:
            # A missing or damaged tile leaves no bound between two parts: check everything
            # in one part (the leaf check reports the tile) rather than miss or repeat events.
            return whole
        out.append(_Range(lo, hi, after, up_to))
        after = up_to
    return out


def _run(source: Source, parts: list[_Range], context: _Context, db_url: str | None,
         jobs: int) -> Iterator[_Part]:
    """Each part checked, in order. With ``db_url``, ``jobs - 1`` worker processes (spawned:
    a store's connections must not cross a fork) take parts from the end while this
    process takes them from the start; a part is this process's if its future can still
    be cancelled, that is if no worker has begun it."""
    if len(parts) == 1 or db_url is None:
        for part in parts:
            yield _check_leaves(source, part, context)
        return
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
            jobs - 1, mp_context=spawn, initializer=_open_worker_store,
            initargs=(db_url, source.name)) as pool:
        futures = {k: pool.submit(_check_leaves_in_worker, parts[k], context)
                   for k in reversed(range(len(parts)))}
        mine = {k: _check_leaves(source, part, context)
                for k, part in enumerate(parts) if futures[k].cancel()}
        for k in range(len(parts)):
            yield mine[k] if k in mine else futures[k].result()


_worker_source: StoreSource | None = None


def _open_worker_store(db_url: str, name: str) -> None:
    """A worker's own connection to the store, for all the parts it checks."""
    from trailkeeper.storage import open_storage

    global _worker_source
    storage: Storage = open_storage(db_url)
    atexit.register(storage.close)
    _worker_source = StoreSource(storage, name)


def _check_leaves_in_worker(part: _Range, context: _Context) -> _Part:
    assert _worker_source is not None, "the pool's initializer opens the store"
    return _check_leaves(_worker_source, part, context)


def _check_leaves(source: Source, part: _Range, context: _Context) -> _Part:
    """Each leaf of the tiles against its event, and each event of the range against a leaf."""
    out = _Part(Report(source.name))
    report, edited = out.report, out.edited
    rows = source.rows(part.after_id, part.up_to_id)
    row = next(rows, None)
    previous_id = part.after_id
    expected_tile = part.first_tile
    for start in range(part.first_tile, part.last_tile + 1, _TILES_PER_READ):
        for tile in source.tiles(0, start, min(part.last_tile, start + _TILES_PER_READ - 1)):
            if tile.index != expected_tile:
                report.problem("tree", f"leaf tiles {expected_tile} to {tile.index - 1} are "
                               "missing", where=f"tile 0/{expected_tile}")
            expected_tile = tile.index + 1
            needed = min(TILE_WIDTH, context.size - (tile.index << TILE_HEIGHT))
            records = tile.records()[:max(0, needed)]
            if len(records) < needed:
                report.problem("tree", f"leaf tile {tile.index} holds {len(records)} leaves; "
                               f"the tree of {context.size:,} needs {needed} there",
                               where=f"tile 0/{tile.index}")
            base = tile.index << TILE_HEIGHT
            for offset, raw in enumerate(records):
                leaf = base + offset
                # The common case first: the event is as recorded (its id and document are
                # in the record; the row's indexed time is compared with the record's).
                if row is not None and row.record == raw and row.id > previous_id \
                        and row.row_ts == int.from_bytes(raw[9:17], "big", signed=True):
                    previous_id = row.id
                    if leaf < context.covered_size:
                        report.events_verified += 1
                    else:
                        report.not_covered(row.id)
                    row = next(rows, None)
                    continue
                try:
                    record = LeafRecord.decode(raw)
                except CanonicalError as exc:
                    report.problem("tree", f"leaf {leaf}: {exc}", where=f"tile 0/{tile.index}")
                    continue
                if record.event_id <= previous_id:
                    report.problem("reordered", f"leaf {leaf} names event #{record.event_id} "
                                   f"after #{previous_id}: the tree's leaves are out of order",
                                   event_id=record.event_id, where=f"tile 0/{tile.index}")
                previous_id = max(previous_id, record.event_id)
                while row is not None and row.id < record.event_id:
                    _stray(row, context, report)
                    row = next(rows, None)
                if row is not None and row.id == record.event_id:
                    if row.record != raw:
                        report.problem("edited", f"event #{row.id} was changed after it was "
                                       "recorded (its content no longer matches its leaf)",
                                       event_id=row.id)
                        if len(edited) < _MAX_EDITED_KEPT:
                            edited.append((row, record))
                    elif row.row_ts != record.timestamp_ms:
                        report.problem("edited", f"event #{row.id}'s indexed time was changed "
                                       "(searches by time no longer find it where it was)",
                                       event_id=row.id)
                    elif leaf < context.covered_size:
                        report.events_verified += 1
                    else:
                        report.not_covered(row.id)
                    row = next(rows, None)
                elif context.horizon_ms is not None and record.timestamp_ms <= context.horizon_ms:
                    report.pruned += 1
                else:
                    report.problem("deleted", f"event #{record.event_id} (leaf {leaf}) was "
                                   "deleted: it is in the tree but no longer stored",
                                   event_id=record.event_id)
            if len(records) == TILE_WIDTH:
                out.roots[tile.index] = merkle.root([merkle.leaf_hash(r) for r in records])
    if expected_tile <= part.last_tile:
        report.problem("tree", f"leaf tiles {expected_tile} to {part.last_tile} are missing",
                       where=f"tile 0/{expected_tile}")
    while row is not None:
        _stray(row, context, report)
        row = next(rows, None)
    return out


def _stray(row: Row, context: _Context, report: Report) -> None:
    """An event with no leaf: inserted, unless it is newer than what was hashed so far."""
    if row.id <= context.last_hashed_id:
        report.problem("inserted", f"event #{row.id} is stored but is not in the tree: it was"
                       " added afterwards", event_id=row.id)
    else:
        report.not_covered(row.id)


def _find_swaps(source: Source, edited: list[tuple[Row, LeafRecord]], report: Report) -> None:
    """Edited events whose contents match each other's leaves were swapped."""
    by_id = {record.event_id: record.encode() for _, record in edited}
    for row, _ in edited:
        for other_id, other in by_id.items():
            if other_id != row.id and source.rehash(row, other_id) == other:
                report.problem("reordered", f"event #{row.id} holds what was recorded as "
                               f"event #{other_id}: events were swapped", event_id=row.id)
                break


def _check_levels(source: Source, roots: dict[int, bytes], size: int, report: Report) -> None:
    """Each stored hash above the leaves against the tile below it."""
    below = roots
    level, count = 1, size >> TILE_HEIGHT  # complete subtrees at height 8·level
    while count:
        last = (count - 1) >> TILE_HEIGHT
        here: dict[int, bytes] = {}
        expected = 0
        for start in range(0, last + 1, _TILES_PER_READ):
            for tile in source.tiles(level, start, min(last, start + _TILES_PER_READ - 1)):
                if tile.index != expected:
                    report.problem("tree", f"tiles {level}/{expected} to {level}/"
                                   f"{tile.index - 1} are missing",
                                   where=f"tile {level}/{expected}")
                expected = tile.index + 1
                hashes = tile.hashes()
                needed = min(TILE_WIDTH, count - (tile.index << TILE_HEIGHT))
                if len(hashes) < needed or len(tile.data) % merkle.HASH_SIZE:
                    report.problem("tree", f"tile {level}/{tile.index} holds {len(hashes)} "
                                   f"hashes; the tree of {size:,} needs {needed} there",
                                   where=f"tile {level}/{tile.index}")
                for offset, h in enumerate(hashes):
                    node = (tile.index << TILE_HEIGHT) + offset
                    if node in below and below[node] != h:
                        report.problem("tree", f"the stored hash of leaves {node << (8 * level)}"
                                       f"… does not match them", where=f"tile {level}/"
                                       f"{tile.index}")
                if len(hashes) == TILE_WIDTH:
                    here[tile.index] = merkle.root(hashes)
        if expected <= last:
            report.problem("tree", f"tiles {level}/{expected} to {level}/{last} are missing",
                           where=f"tile {level}/{expected}")
        below, level, count = here, level + 1, count >> TILE_HEIGHT


def _check_root(tree: StoredTree, size: int, root: bytes, report: Report, what: str,
                pruned_before: int) -> None:
    try:
        now = tree.root(size)
    except MissingTileError as exc:
        if exc.level == 0 and exc.index < pruned_before:
            report.checkpoints_unchecked += 1
            report.notes.append(f"{what} predates what retention kept; not recomputed")
        else:  # retention removes whole leaf tiles at the start, nothing else
            report.problem("tree", f"{what} cannot be recomputed: tile {exc.level}/{exc.index}"
                           " is missing or shorter than the tree needs",
                           where=f"tile {exc.level}/{exc.index}")
        return
    if now != root:
        report.problem("checkpoint", f"the log no longer has the root signed in {what}: "
                       "events it covers were changed, removed or added", where=what)


def _check_last_id(source: Source, checkpoint: CheckpointRecord, report: Report) -> None:
    """The checkpoint's last event is the tree's leaf ``size - 1`` (files rely on it)."""
    leaf = checkpoint.size - 1
    tiles = source.tiles(0, leaf >> TILE_HEIGHT, leaf >> TILE_HEIGHT) if leaf >= 0 else []
    records = tiles[0].records() if tiles else []
    offset = leaf & (TILE_WIDTH - 1)
    if offset >= len(records):
        return  # the leaf check reports the short tile
    try:
        last_id = LeafRecord.decode(records[offset]).event_id
    except CanonicalError:
        return  # the leaf check reports the unreadable record
    if last_id != checkpoint.last_id:
        report.problem("checkpoint", f"checkpoint {checkpoint.size} names event "
                       f"#{checkpoint.last_id} as its last, but leaf {leaf} is another event",
                       where=f"checkpoint {checkpoint.size}")
