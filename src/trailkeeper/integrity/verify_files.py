"""Verify a directory of exported events against signed checkpoints, with no store at all.

The directory holds Atlassian-format audit log files as the file sink writes them
(``YYYYMMDD.NNNNN.audit.log``) or NDJSON exports (``*.ndjson``, ``*.jsonl``) of consecutive
events in id order, and optionally checkpoints kept elsewhere: the JSON of
``GET /api/v1/checkpoints/latest`` or a signed note (``*.checkpoint``, ``*.json``), and the
JSON of ``GET /api/v1/integrity/range`` when the events start after the log's first.

The files are read twice. First for the checkpoints: those in the directory's files and the
"Audit Log checkpoint signed" events among the lines (which carry the signed note, the id of
their last event and the compact range). Then each event's leaf is appended to a compact
range, and at each checkpoint's last event the count and the root must be what was signed.
A wrong count says events were deleted or inserted before that point; a wrong root that one
of the events since the previous checkpoint was changed; ids must grow from line to line.

Memory stays constant: one compact range (a few dozen hashes) and a few parts of the files
being hashed, whatever the size.
"""

from __future__ import annotations

import base64
import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from trailkeeper.integrity import record as checkpoint_record
from trailkeeper.integrity.file_leaves import (
    PART_BYTES,
    FilePart,
    HashedPart,
    file_parts,
    hashed_parts,
)
from trailkeeper.integrity.note import Checkpoint, NoteError, verify_checkpoint
from trailkeeper.integrity.report import Report
from trailkeeper.integrity.tree import CompactRange
from trailkeeper.integrity.verify import Trust

EVENT_PATTERNS = ("*.audit.log", "*.ndjson", "*.jsonl")
CHECKPOINT_PATTERNS = ("*.checkpoint", "*.json")
_MARK = checkpoint_record.ACTION.encode()


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    size: int
    root: bytes
    last_id: int | None  # None for a bare note: matched by size alone
    compact_range: tuple[bytes, ...] | None
    where: str


@dataclass(frozen=True, slots=True)
class _Start:
    """Where hashing starts: after event ``after_id``, with ``size`` leaves before it."""

    size: int
    hashes: tuple[bytes, ...]
    after_id: int


def event_files(directory: Path) -> list[Path]:
    """The event files, in the order their events were written (names sort so)."""
    found = {p for pattern in EVENT_PATTERNS for p in directory.glob(pattern) if p.is_file()}
    return sorted(found, key=lambda p: p.name)


def verify_directory(directory: Path, trust: Trust, *, jobs: int = 1,
                     part_bytes: int = PART_BYTES) -> Report:
    """Verify the event files of ``directory`` (see the module's description); the lines
    are hashed in ``jobs`` processes, in parts of about ``part_bytes``
    (`trailkeeper.integrity.file_leaves`)."""
    report = Report(str(directory))
    files = event_files(directory)
    if not files:
        report.problem("unreadable", f"{directory} holds no {', '.join(EVENT_PATTERNS)} files")
        return report
    checkpoints, kept_starts = _kept_checkpoints(directory, trust, report)
    claimed_starts: list[_Start] = []
    first_id = None
    for line in _first_and_marked_lines(files):
        if first_id is None:
            first_id = line.get("id") if isinstance(line.get("id"), int) else None
        if checkpoint_record.is_checkpoint_line(line):
            found = _claimed(line, trust, report)
            if found is not None:
                checkpoints.append(found)
                if found.compact_range is not None and found.last_id is not None:
                    claimed_starts.append(_Start(found.size, found.compact_range,
                                                 found.last_id))
    report.checkpoints_verified = len({(c.size, c.root) for c in checkpoints})
    start = _start(kept_starts, claimed_starts, first_id or 0, report)
    _walk(start, checkpoints, report, hashed_parts(file_parts(files, part_bytes), jobs))
    return report


def _walk(start: _Start, checkpoints: list[_Checkpoint], report: Report,
          parts: Iterator[tuple[FilePart, HashedPart]]) -> None:
    by_id = sorted((c for c in checkpoints if c.last_id is not None),
                   key=lambda c: (c.last_id or 0, c.size))
    by_size = {c.size: c for c in checkpoints if c.last_id is None}
    tree = CompactRange(start.size, start.hashes)
    pending = 0  # index into by_id of the next checkpoint to reach
    while pending < len(by_id) and (by_id[pending].last_id or 0) <= start.after_id:
        pending += 1
    previous_id = 0
    segment: list[int] = []  # ids since the last checkpoint that verified
    last_seen = 0
    path, first_line = None, 0  # line numbers count from each file's start

    def at(number: int) -> str:  # file:line, made only when a problem or checkpoint needs it
        return f"{part.path.name}:{first_line + number}"

    for part, hashed in parts:
        if part.path != path:
            path, first_line = part.path, 0
        for number, event_id, leaf in hashed.entries():
            if not event_id:
                report.problem("unreadable", f"{at(number)}: {hashed.unreadable[number]}",
                               where=at(number))
                continue
            if event_id <= previous_id:
                if event_id == previous_id:
                    report.problem("inserted", f"{at(number)}: event #{event_id} appears "
                                   "twice", event_id=event_id, where=at(number))
                else:
                    report.problem("reordered", f"{at(number)}: event #{event_id} comes after"
                                   f" #{previous_id}: lines were reordered", event_id=event_id,
                                   where=at(number))
                continue
            previous_id = event_id
            if event_id <= start.after_id:
                report.unplaced += 1  # before the first place hashing can start
                continue
            while pending < len(by_id) and (by_id[pending].last_id or 0) < event_id:
                _reached(by_id[pending], tree, segment, report, at(number))
                pending += 1
            tree.append(leaf)
            segment.append(event_id)
            last_seen = event_id
            while pending < len(by_id) and by_id[pending].last_id == event_id:
                _reached(by_id[pending], tree, segment, report, at(number))
                pending += 1
            if by_size:
                bare = by_size.pop(tree.size, None)
                if bare is not None:
                    _reached(bare, tree, segment, report, at(number))
        first_line += hashed.lines
    for checkpoint in by_id[pending:]:
        report.problem("truncated", f"the files end at event #{last_seen}, but {checkpoint.where}"
                       f" covers events up to #{checkpoint.last_id}: events were cut off",
                       where=checkpoint.where)
    for checkpoint in by_size.values():
        if checkpoint.size > tree.size:
            report.problem("truncated", f"the files hold {tree.size:,} events, but "
                           f"{checkpoint.where} covers {checkpoint.size:,}: events were cut off",
                           where=checkpoint.where)
    for event_id in segment:
        report.not_covered(event_id)


def _reached(checkpoint: _Checkpoint, tree: CompactRange, segment: list[int], report: Report,
             where: str) -> None:
    """Compare the hashes so far with a checkpoint whose last event was just passed."""
    first = segment[0] if segment else None
    span = f"between #{first} and #{segment[-1]}" if segment else "here"
    if tree.size != checkpoint.size:
        more = tree.size > checkpoint.size
        count = abs(tree.size - checkpoint.size)
        report.problem("inserted" if more else "deleted",
                       f"{where}: {count:,} event(s) {'more' if more else 'fewer'} than "
                       f"{checkpoint.where} covers: events {span} were "
                       f"{'inserted' if more else 'deleted'}", where=where)
    elif tree.root() != checkpoint.root:
        report.problem("edited", f"{where}: the events {span} do not hash to the root of "
                       f"{checkpoint.where}: one of them was changed", where=where)
    else:
        report.events_verified += len(segment)
        segment.clear()
        return
    # Start again from what was signed, so the rest is checked on its own.
    if checkpoint.compact_range is not None:
        tree.size, tree.hashes = checkpoint.size, list(checkpoint.compact_range)
    segment.clear()


def _start(kept: list[_Start], claimed: list[_Start], first_id: int, report: Report
           ) -> _Start:
    """Where hashing starts: at a range kept beside the files that ends before their first
    event (an export made after it); at the log's beginning when the files start with its
    first event; else at the first checkpoint event in the files (they were rotated: the
    events before it cannot be checked)."""
    before = [s for s in kept if s.after_id < first_id]
    if before:
        return max(before, key=lambda s: s.after_id)
    if first_id <= 1:
        return _Start(0, (), 0)
    later = [s for s in claimed if s.after_id >= first_id]
    if later:
        chosen = min(later, key=lambda s: s.after_id)
        report.notes.append(
            f"the files start at event #{first_id}, after the log's beginning, with no "
            f"checkpoint before it; events up to #{chosen.after_id} cannot be checked (add "
            "the range of GET /api/v1/integrity/range?before_id=… to the directory)")
        return chosen
    report.notes.append(f"the files start at event #{first_id} and hold no checkpoint with a"
                        " compact range; hashing from the log's beginning")
    return _Start(0, (), 0)


def _claimed(line: dict[str, Any], trust: Trust, report: Report) -> _Checkpoint | None:
    where = f"checkpoint event #{line.get('id')}"
    try:
        claim = checkpoint_record.claim_of(line.get("extraAttributes") or [])
        body = verify_checkpoint(claim.note, trust.verifiers)
    except (ValueError, NoteError) as exc:
        report.problem("checkpoint", f"{where} does not verify: {exc}",
                       event_id=line.get("id") if isinstance(line.get("id"), int) else None,
                       where=where)
        return None
    if CompactRange(claim.size, claim.compact_range).root() != body.root:
        report.problem("checkpoint", f"{where}: its compact range does not fold to its root",
                       where=where)
        return None
    return _Checkpoint(body.size, body.root, claim.last_id, claim.compact_range,
                       f"the checkpoint of {body.size:,} events ({where})")


def _kept_checkpoints(directory: Path, trust: Trust, report: Report
                      ) -> tuple[list[_Checkpoint], list[_Start]]:
    """Checkpoints and ranges in files of their own (and those the caller brought)."""
    found: list[_Checkpoint] = []
    starts: list[_Start] = []
    notes = [(note, "a checkpoint you brought", None) for note in trust.checkpoints]
    for path in sorted({p for pattern in CHECKPOINT_PATTERNS for p in directory.glob(pattern)}):
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            report.problem("unreadable", f"{path.name}: {exc}", where=path.name)
            continue
        data: Any = None
        if path.suffix == ".json":
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                report.problem("unreadable", f"{path.name}: not JSON: {exc}", where=path.name)
                continue
        if isinstance(data, dict) and "note" not in data and "compact_range" in data:
            start = _range_of(data, path.name, report)  # a range: trusted only through a
            if start is not None:                       # checkpoint reached later
                starts.append(start)
            continue
        notes.append((data["note"] if isinstance(data, dict) else text, path.name, data))
    for note, where, data in notes:
        try:
            body = verify_checkpoint(note, trust.verifiers)
        except NoteError as exc:
            report.problem("checkpoint", f"{where} does not verify: {exc}", where=where)
            continue
        last_id = data.get("last_event_id") if isinstance(data, dict) else None
        hashes = _range_of(data, where, report) if isinstance(data, dict) else None
        if isinstance(data, dict) and not _agrees(data, body, hashes):
            report.problem("checkpoint", f"{where}: its size, root, origin or compact range "
                           "differs from its signed note", where=where)
            continue
        found.append(_Checkpoint(body.size, body.root, last_id if isinstance(last_id, int)
                                 else None, hashes.hashes if hashes else None,
                                 f"the checkpoint of {body.size:,} events ({where})"))
        if hashes is not None and isinstance(last_id, int):
            starts.append(_Start(body.size, hashes.hashes, last_id))
    return found, starts


def _agrees(data: dict[str, Any], body: Checkpoint, hashes: _Start | None) -> bool:
    """Whether the fields of a checkpoint's JSON say what its signed note says (those
    present: the note is what counts, but a file that contradicts it was changed)."""
    claimed = {"size": body.size, "root": base64.b64encode(body.root).decode("ascii"),
               "origin": body.origin}
    if any(name in data and data[name] != value for name, value in claimed.items()):
        return False
    return hashes is None or CompactRange(hashes.size, hashes.hashes).root() == body.root


def _range_of(data: dict[str, Any], where: str, report: Report) -> _Start | None:
    try:
        size, last_id = data["size"], data["last_event_id"]
        hashes = tuple(base64.b64decode(h, validate=True) for h in data["compact_range"])
        CompactRange(size, hashes)
        if not isinstance(last_id, int) or any(len(h) != 32 for h in hashes):
            raise ValueError("bad last_event_id or hash")
    except (KeyError, TypeError, ValueError) as exc:
        report.problem("unreadable", f"{where}: not a checkpoint or range: {exc}", where=where)
        return None
    return _Start(size, hashes, last_id)


def _first_and_marked_lines(files: list[Path]) -> Iterator[dict[str, Any]]:
    """The first line of each file and every line naming a checkpoint (the only ones the
    first reading needs), as JSON objects; found by searching the mapped files for the
    checkpoint action rather than parsing every line."""
    for path in files:
        if path.stat().st_size == 0:
            continue  # (an empty file cannot be mapped)
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0,
                                                  access=mmap.ACCESS_READ) as data:
            end = _line_end(data, 0)
            found = [data[:end]]
            at = data.find(_MARK, end)  # after the first line: it is in already
            while at >= 0:
                end = _line_end(data, at)
                found.append(data[data.rfind(b"\n", 0, at) + 1:end])
                at = data.find(_MARK, end)
        for raw in found:
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # reported by the second reading
            if isinstance(line, dict):
                yield line


def _line_end(data: mmap.mmap, at: int) -> int:
    """Where the line holding byte ``at`` ends: its newline, or the end of the file."""
    end = data.find(b"\n", at)
    return len(data) if end < 0 else end
