"""The leaf hash of every line of exported event files, computed in parts and in parallel.

Verifying files is mostly parsing each line, serialising it canonically and hashing it; only
appending the leaves to one compact range, in order, must be done in one place. So the files
are cut at line ends into parts of about 4 MiB (some 5,000 events), and the parts are hashed
by ``jobs - 1`` spawned worker processes and by the caller's own process, which takes a part
itself whenever no worker has begun it (so nothing waits on a late worker). Parts come back
in file order, a few at most ahead of the caller: memory stays bounded whatever the size.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from trailkeeper.integrity.canonical import CanonicalError, canonical_from_line, leaf_record
from trailkeeper.integrity.merkle import leaf_hash

PART_BYTES = 4 << 20
_PARTS_AHEAD_PER_JOB = 4
# One hashed line: its number within the part, the event id (0: see `unreadable`), the leaf.
_LEAF = struct.Struct(">IQ32s")


@dataclass(frozen=True, slots=True)
class FilePart:
    """Bytes start..end of an event file: whole lines."""

    path: Path
    start: int
    end: int


@dataclass(slots=True)
class HashedPart:
    """A part's lines: ``lines`` in all (blank ones too, to number the next part's), and for
    each event line (number in the part, id, leaf hash); a line that is not an event has id 0
    and its message in ``unreadable``. JSON that is not an object is left out, as a line
    with nothing to check."""

    lines: int
    packed: bytes
    unreadable: dict[int, str] = field(default_factory=dict)

    def entries(self) -> Iterator[tuple[int, int, bytes]]:
        return _LEAF.iter_unpack(self.packed)


def file_parts(files: list[Path], part_bytes: int = PART_BYTES) -> list[FilePart]:
    """The files cut after a line end every ``part_bytes`` or so."""
    out = []
    for path in files:
        size = path.stat().st_size
        with path.open("rb") as handle:
            start = 0
            while start < size:
                handle.seek(min(start + part_bytes, size) - 1)
                handle.readline()  # to the end of the line the cut falls in
                end = min(handle.tell(), size)
                out.append(FilePart(path, start, end))
                start = end
    return out


def hash_part(part: FilePart) -> HashedPart:
    """Each line of a part parsed, made canonical and hashed into its leaf."""
    with part.path.open("rb") as handle:
        handle.seek(part.start)
        data = handle.read(part.end - part.start)
    packed = bytearray()
    unreadable: dict[int, str] = {}
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the part ends at a line end
    for number, raw in enumerate(lines, start=1):
        raw = raw.rstrip(b"\r")
        if not raw:
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            unreadable[number] = f"not JSON: {exc}"
            packed += _LEAF.pack(number, 0, b"")
            continue
        if not isinstance(line, dict):
            continue
        try:
            event_id, ts, canonical = canonical_from_line(line)
        except CanonicalError as exc:
            unreadable[number] = str(exc)
            packed += _LEAF.pack(number, 0, b"")
            continue
        packed += _LEAF.pack(number, event_id, leaf_hash(leaf_record(event_id, ts, canonical)))
    return HashedPart(len(lines), bytes(packed), unreadable)


_Pending = concurrent.futures.Future[HashedPart] | HashedPart  # a part hashed or being hashed


def hashed_parts(parts: list[FilePart], jobs: int) -> Iterator[tuple[FilePart, HashedPart]]:
    """Each part with its hashed lines, in order (see the module's description)."""
    if jobs <= 1 or len(parts) < 2:
        for part in parts:
            yield part, hash_part(part)
        return
    spawn = multiprocessing.get_context("spawn")
    window = _PARTS_AHEAD_PER_JOB * jobs
    with concurrent.futures.ProcessPoolExecutor(jobs - 1, mp_context=spawn) as pool:
        ahead: deque[tuple[FilePart, _Pending]] = deque()
        queued = iter(parts)
        for part in queued:
            ahead.append((part, pool.submit(hash_part, part)))
            if len(ahead) == window:
                break
        while ahead:
            part, pending = ahead[0]
            if isinstance(pending, concurrent.futures.Future):
                if pending.cancel():
                    pending = hash_part(part)  # no worker had begun it
                elif not pending.done() and _hash_a_later_part(ahead):
                    continue  # while a worker hashes the next part
                else:
                    pending = pending.result()
            ahead.popleft()
            following = next(queued, None)
            if following is not None:
                ahead.append((following, pool.submit(hash_part, following)))
            yield part, pending


def _hash_a_later_part(ahead: deque[tuple[FilePart, _Pending]]) -> bool:
    """Hash here the last part of ``ahead`` that no worker has begun (so the workers keep
    the parts nearest the front); False if there is none."""
    for k in range(len(ahead) - 1, 0, -1):
        part, pending = ahead[k]
        if isinstance(pending, concurrent.futures.Future) and pending.cancel():
            ahead[k] = (part, hash_part(part))
            return True
    return False
