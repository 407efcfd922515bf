"""Hashing the lines of event files in parts (`trailkeeper.integrity.file_leaves`): however
the files are cut, and whether a worker process hashes some parts, every line gets the leaf
and the line number it gets when the file is read whole."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.integrity.canonical import canonical_from_line, leaf_record
from trailkeeper.integrity.file_leaves import (
    FilePart,
    HashedPart,
    file_parts,
    hash_part,
    hashed_parts,
)
from trailkeeper.integrity.merkle import leaf_hash


def event_line(event_id: int, text: str) -> bytes:
    return orjson.dumps({"id": event_id, "timestamp": {"epochSecond": 1_780_000_000 + event_id,
                                                       "nano": 0},
                         "auditType": {"action": text}, "version": "1.0"})


def expected(lines: list[bytes]) -> list[tuple[int, int, bytes | str]]:
    """(line number, id, leaf) of each event line, or (number, 0, why) for a line that is
    not one; blank lines and JSON that is not an object count for the numbering only."""
    out: list[tuple[int, int, bytes | str]] = []
    for number, raw in enumerate(lines, start=1):
        raw = raw.rstrip(b"\r")
        if not raw:
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out.append((number, 0, "not JSON"))
            continue
        if isinstance(line, dict):
            event_id, ts, canonical = canonical_from_line(line)
            out.append((number, event_id, leaf_hash(leaf_record(event_id, ts, canonical))))
    return out


def entries(results: list[tuple[FilePart, HashedPart]]) -> list[tuple[int, int, bytes | str]]:
    """What the parts say, numbered from the start of the file."""
    out: list[tuple[int, int, bytes | str]] = []
    first_line = 0
    for _, hashed in results:
        for number, event_id, leaf in hashed.entries():
            why = hashed.unreadable.get(number, "")
            out.append((first_line + number, event_id,
                        leaf if event_id else why.split(":")[0]))
        first_line += hashed.lines
    return out


LINE = st.one_of(
    st.builds(event_line, st.integers(1, 10**6), st.text(max_size=40)),
    st.sampled_from([b"", b"\r", b"not json", b"[1, 2]", b'"text"']),
)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(LINE, min_size=1, max_size=25), crlf=st.booleans(),
       trailing_newline=st.booleans(), part_bytes=st.integers(1, 400))
def test_parts_cut_anywhere_hash_every_line_as_the_whole_file(
        tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], crlf: bool,
        trailing_newline: bool, part_bytes: int) -> None:
    """Lines with CRLF or LF ends, blank lines, lines that are not JSON or not objects, a
    last line with or without its newline: cut into parts of any size, each line keeps its
    number and leaf."""
    end = b"\r\n" if crlf else b"\n"
    data = end.join(lines) + (end if trailing_newline else b"")
    path = tmp_path_factory.mktemp("parts") / "events.ndjson"
    path.write_bytes(data)
    parts = file_parts([path], part_bytes)
    assert b"".join(data[p.start:p.end] for p in parts) == data
    assert all(data[p.end - 1:p.end] == b"\n" for p in parts[:-1])
    assert entries([(p, hash_part(p)) for p in parts]) == expected(data.split(b"\n"))


def test_a_worker_process_hashes_what_this_process_would(tmp_path: Path) -> None:
    """Parts shared with a worker come back in order, each as this process hashes it."""
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"".join(event_line(n, f"event {n}") + b"\n" for n in range(1, 3001)))
    parts = file_parts([path], 4096)
    assert len(parts) > 20
    shared = list(hashed_parts(parts, jobs=2))
    assert [p for p, _ in shared] == parts
    assert entries(shared) == entries([(p, hash_part(p)) for p in parts])
    assert [event_id for _, event_id, _ in entries(shared)] == list(range(1, 3001))


def test_an_empty_file_has_no_parts(tmp_path: Path) -> None:
    (tmp_path / "empty.ndjson").write_bytes(b"")
    assert file_parts([tmp_path / "empty.ndjson"]) == []
