"""Tamperings of a directory of exported files (see `tests.integrity.tampering`): a line
edited, deleted, duplicated, forged, swapped or cut off, or the checkpoint kept beside them
replaced — each saying what the verifier must find."""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.integrity.tampering import NOTE_CHARACTERS, Tampering, other_byte
from trailkeeper.api.integrity import checkpoint_json
from trailkeeper.consumers.filesink import FileSink
from trailkeeper.export.formats import export
from trailkeeper.integrity.keys import generate_signer
from trailkeeper.integrity.note import signed_checkpoint
from trailkeeper.storage.base import Storage, StoredEvent

# -- exported files ---------------------------------------------------------------------------


@dataclass(slots=True)
class EventFiles:
    """A directory of event files and a checkpoint kept beside them, held in memory to
    tamper with and to put back.

    ``lines`` is every event line in file order, as (file name, bytes without the newline);
    the first ``covered`` of them are under a checkpoint, the others (the newest checkpoint
    event of audit log files) cannot be checked by anyone, as the newest events never can.
    ``log_files``: audit log files, which end with an event no checkpoint covers yet, so
    they are verified allowing that (exit 0 with ``allow_uncovered``).
    """

    directory: Path
    files: dict[str, bytes]  # every file as written
    lines: list[tuple[str, bytes]]
    covered: int
    gaps: list[int]  # ids inside the covered range that no line has
    checkpoint_file: str  # the checkpoint kept elsewhere, copied into the directory
    log_files: bool

    @classmethod
    def read(cls, directory: Path, checkpoint_file: str, covered_to_id: int, *,
             log_files: bool) -> EventFiles:
        files = {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}
        lines = [(name, raw) for name, data in files.items()
                 if name.endswith((".ndjson", ".jsonl", ".audit.log"))
                 for raw in data.splitlines()]
        ids = [_id(raw) for _, raw in lines]
        present = set(ids)
        return cls(directory, files, lines, sum(1 for i in ids if i <= covered_to_id),
                   [i for i in range(ids[0] + 1, covered_to_id) if i not in present],
                   checkpoint_file, log_files)

    def write_lines(self, lines: list[tuple[str, bytes]]) -> None:
        """Rewrite the event files to hold ``lines`` (a file left with none is removed)."""
        by_file: dict[str, list[bytes]] = {}
        for name, raw in lines:
            by_file.setdefault(name, []).append(raw)
        for name in {n for n, _ in self.lines}:
            path = self.directory / name
            if name in by_file:
                path.write_bytes(b"".join(raw + b"\n" for raw in by_file[name]))
            else:
                path.unlink()

    def restore(self) -> None:
        """Put every file back as it was written."""
        for path in self.directory.iterdir():
            if path.name not in self.files:
                path.unlink()
        for name, data in self.files.items():
            path = self.directory / name
            if not path.is_file() or path.read_bytes() != data:
                path.write_bytes(data)

    def ids(self) -> list[int]:
        return [_id(raw) for _, raw in self.lines]


FileTamper = Callable[[EventFiles, random.Random], Tampering | None]


def _id(raw: bytes) -> int:
    return int(orjson.loads(raw)["id"])


def _values(data: bytes) -> list[Any]:
    """The JSON values of a file's lines, read as the verifier reads them."""
    return [orjson.loads(raw) for raw in (r.rstrip(b"\r") for r in data.split(b"\n")) if raw]


def same_file_respelled(old: bytes, new: bytes) -> bool:
    """Whether an edited file holds the same JSON values line by line, only spelled
    otherwise (an escape, trailing whitespace): no change to any event, by design, since
    canonical bytes re-serialise the parsed JSON."""
    try:
        return _values(old) == _values(new)
    except orjson.JSONDecodeError:
        return False


def edit_line_byte(files: EventFiles, rng: random.Random) -> Tampering | None:
    """One byte of one covered line (its newline included) set to another value."""
    index = rng.randrange(files.covered)
    name, raw = files.lines[index]
    data = files.files[name]
    offset = sum(len(r) + 1 for n, r in files.lines[:index] if n == name)
    at = offset + rng.randrange(len(raw) + 1)
    new = data[:at] + bytes([other_byte(rng, data[at])]) + data[at + 1:]
    if same_file_respelled(data, new):
        return None
    (files.directory / name).write_bytes(new)
    return Tampering("line byte", f"{name}, line of #{_id(raw)}: byte {at - offset} "
                     f"{data[at]:#04x} -> {new[at]:#04x} ({data[max(0, at - 20):at + 20]!r})")


def delete_line(files: EventFiles, rng: random.Random) -> Tampering:
    index = rng.randrange(files.covered)
    lines = list(files.lines)
    name, raw = lines.pop(index)
    files.write_lines(lines)
    return Tampering("delete line", f"{name}: the line of #{_id(raw)} deleted")


def duplicate_line(files: EventFiles, rng: random.Random) -> Tampering:
    """A covered line written a second time: right after itself, or anywhere."""
    index = rng.randrange(files.covered)
    to = index + 1 if rng.random() < 0.5 else rng.randrange(files.covered)
    lines = list(files.lines)
    lines.insert(to, (lines[max(0, to - 1)][0], lines[index][1]))
    files.write_lines(lines)
    return Tampering("duplicate line", f"the line of #{_id(files.lines[index][1])} written "
                     f"again as line {to}")


def forge_line(files: EventFiles, rng: random.Random) -> Tampering | None:
    """A forged event (a copy of a line under an id no event has) where its id belongs: in
    a gap of the covered range, or, for an export, after its end."""
    source = orjson.loads(files.lines[rng.randrange(files.covered)][1])
    ids = files.ids()
    if files.gaps and (files.log_files or rng.random() < 0.8):
        new_id = rng.choice(files.gaps)
        to = next(i for i, x in enumerate(ids) if x > new_id)
    elif not files.log_files:
        # After the end of an export: not a problem (a newer event), but not covered.
        new_id, to = ids[-1] + rng.randint(1, 100), len(ids)
    else:
        # Appended to audit log files, a forged event is like the newest ones: under no
        # checkpoint yet, which the files are allowed to end with.
        return None
    source["id"] = new_id
    lines = list(files.lines)
    lines.insert(to, (lines[max(0, to - 1)][0],
                      orjson.dumps(source, option=orjson.OPT_SORT_KEYS)))
    files.write_lines(lines)
    return Tampering("forged line", f"a forged event #{new_id} inserted as line {to}")


def swap_lines(files: EventFiles, rng: random.Random) -> Tampering:
    a, b = sorted(rng.sample(range(files.covered), 2))
    lines = list(files.lines)
    (na, ra), (nb, rb) = lines[a], lines[b]
    lines[a], lines[b] = (na, rb), (nb, ra)
    files.write_lines(lines)
    return Tampering("swap lines", f"the lines of #{_id(ra)} and #{_id(rb)} swapped")


def truncate_lines(files: EventFiles, rng: random.Random) -> Tampering:
    """The last lines removed, at least one covered one among them (removing only events
    that no checkpoint covers yet cannot be told from a log that has not grown yet)."""
    k = len(files.lines) - files.covered + rng.randint(1, min(80, files.covered - 1))
    files.write_lines(files.lines[:-k])
    return Tampering("truncate lines", f"the last {k} lines removed "
                     f"(#{_id(files.lines[-k][1])} on)")


def replace_checkpoint_file(files: EventFiles, rng: random.Random) -> Tampering:
    """The checkpoint kept in the directory changed: signed again by another key (over the
    same root or another one), one character of its note, or (JSON) a field beside it."""
    name = files.checkpoint_file
    original = files.files[name].decode()
    data = orjson.loads(original) if name.endswith(".json") else None
    note = data["note"] if data is not None else original
    origin, size, root = note.split("\n")[:3]
    choices = ["other key", "other key, other root", "note character"]
    if data is not None:
        choices += ["root field", "size field", "last_event_id field", "compact_range field",
                    "origin field"]
    how = rng.choice(choices)
    if how.startswith("other key"):
        new_root = base64.b64decode(root)
        if how.endswith("other root"):
            new_root = hashlib.sha256(new_root).digest()
        note = signed_checkpoint(origin, int(size), new_root, generate_signer(origin))
    elif how == "note character":
        at = rng.randrange(len(note))
        note = note[:at] + rng.choice([x for x in NOTE_CHARACTERS if x != note[at]]) \
            + note[at + 1:]
        how += f" {at}"
    elif data is not None:
        field_name = how.removesuffix(" field")
        data[field_name] = _changed_field(field_name, data[field_name], rng)
    path = files.directory / name
    if data is None:
        path.write_text(note, "utf-8")
    else:
        if "field" not in how:
            data["note"] = note
        path.write_bytes(orjson.dumps(data))
    return Tampering("replace checkpoint", f"{name}: {how}")


def _changed_field(name: str, value: Any, rng: random.Random) -> Any:
    if name in ("size", "last_event_id"):
        return value + rng.choice([-3, -1, 1, 2, 5])
    if name == "root":
        return base64.b64encode(hashlib.sha256(value.encode()).digest()).decode()
    if name == "origin":
        return value + ".evil"
    hashes = list(value)  # compact_range
    at = rng.randrange(len(hashes))
    hashes[at] = base64.b64encode(hashlib.sha256(hashes[at].encode()).digest()).decode()
    return hashes


FILE_TAMPERINGS: list[tuple[FileTamper, int]] = [
    (edit_line_byte, 10),
    (delete_line, 6),
    (duplicate_line, 4),
    (forge_line, 4),
    (swap_lines, 6),
    (truncate_lines, 4),
    (replace_checkpoint_file, 5),
]


def draw_file_tampering(files: EventFiles, rng: random.Random) -> Tampering:
    """Apply one random tampering (see `FILE_TAMPERINGS`)."""
    functions, weights = zip(*FILE_TAMPERINGS, strict=True)
    while True:
        done = rng.choices(functions, weights)[0](files, rng)
        if done is not None:
            return done


def all_events(storage: Storage) -> Iterator[StoredEvent]:
    last = 0
    while rows := storage.events_after(last, 1000):
        yield from rows
        last = rows[-1].id


def export_directory(storage: Storage, directory: Path, *, files: int = 3) -> None:
    """The store exported as NDJSON (in id order, over ``files`` files, ``.ndjson`` and
    ``.jsonl``) beside the JSON of its latest checkpoint, as an auditor would keep them."""
    rows = list(all_events(storage))
    for n in range(files):
        part = rows[len(rows) * n // files:len(rows) * (n + 1) // files]
        name = f"events-{n + 1}.{'jsonl' if n % 2 else 'ndjson'}"
        (directory / name).write_bytes(b"".join(export(part, "ndjson")))
    latest = storage.checkpoint()
    assert latest is not None
    (directory / "latest.json").write_bytes(orjson.dumps(checkpoint_json(latest)))


def sink_directory(storage: Storage, directory: Path) -> None:
    """The audit log files the file sink writes of the store (over several files), and the
    latest checkpoint's signed note kept beside them."""
    sink = FileSink(storage, directory, "node-1", max_file_bytes=60_000, batch_size=50)
    try:
        sink.drain()
    finally:
        sink.close()
    (directory / ".sink.lock").unlink(missing_ok=True)
    latest = storage.checkpoint()
    assert latest is not None
    (directory / "kept.checkpoint").write_text(latest.note, "utf-8")
