"""Reading input files into events, each with its line number, or the reason it is bad.

A source is cut into `Work` pieces (line-based files at line boundaries, documents and CSV
whole) so that pieces can be parsed in other processes; `parse` turns one piece into events
and problems, numbering lines from the piece's start. Nothing is skipped silently: a line that
is not an event, a truncated last line, a document that breaks off, a damaged gzip stream are
all problems with the line where they occur. Blank lines are not records.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson

from trailkeeper.errors import InvalidEventError
from trailkeeper.model.event import AuditEvent
from trailkeeper.model.parse import event_from_any
from trailkeeper.model.wire import decode_event
from trailkeeper.transfer import csvrows
from trailkeeper.transfer.formats import DOCUMENT_KEYS, DamagedError, Format, Source, detect

CHUNK_BYTES = 4 * 1024 * 1024  # about 5,000 Atlassian lines: one transaction each
_BOM = b"\xef\xbb\xbf"
_SCAN_BYTES = 64 * 1024
_TRUNCATED = "truncated: the file ends inside this record (no newline after it)"
_DOCUMENT = msgspec.json.Decoder(list[msgspec.Raw] | dict[str, msgspec.Raw])
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
Decode = Callable[[bytes], AuditEvent]  # one JSON event; InvalidEventError when it is bad
_ARRAY_START = re.compile('"(?:' + "|".join(DOCUMENT_KEYS) + r')"\s*:\s*\[')


@dataclass(frozen=True, slots=True)
class Work:
    """A piece of one source: a byte range of a plain file, or bytes already read.

    ``last``: the piece ends the source, so an unterminated last line is the file's end, not
    a line cut in two. ``problem``: reading stopped early here (damaged gzip data).
    """

    source: int
    seq: int
    format: Format
    path: str
    start: int = 0
    end: int = 0
    data: bytes | None = None
    last: bool = True
    problem: str | None = None

    @property
    def size(self) -> int:
        return self.end - self.start

    def load(self) -> bytes:
        if self.data is not None:
            return self.data
        with open(self.path, "rb") as file:
            file.seek(self.start)
            return file.read(self.end - self.start)


@dataclass(slots=True)
class Parsed:
    """A parsed piece; line indexes count from 0 at the piece's first line."""

    events: list[AuditEvent] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)
    newlines: int = 0  # line breaks in the piece: where the next piece's numbering starts

    @property
    def records(self) -> int:
        return len(self.events) + len(self.bad)


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a file: an event, or why the record is not one."""

    source: str
    line: int
    event: AuditEvent | None = None
    error: str | None = None


def read_records(path: Path, *, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Record]:
    """Every record of one file, in order (the simple, single-process way to read a file)."""
    source = detect(path)
    first_line = 1
    for work in pieces(source, 0, chunk_bytes):
        parsed = parse(work)
        found = [(line, Record(source.name, first_line + line, event=event))
                 for line, event in zip(parsed.lines, parsed.events, strict=True)]
        found += [(line, Record(source.name, first_line + line, error=message))
                  for line, message in parsed.bad]
        found.sort(key=lambda item: item[0])
        yield from (record for _, record in found)
        first_line += parsed.newlines


# -- cutting sources into pieces (in the importing process) -----------------------------------


def pieces(source: Source, index: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Work]:
    """The pieces of a source, in order; plain line files are cut without being read."""
    if source.format is Format.LINES and not source.compressed:
        ranges = list(_line_ranges(source.path, source.size, chunk_bytes)) or [(0, 0)]
        for seq, (start, end) in enumerate(ranges):
            yield Work(index, seq, source.format, source.name, start, end,
                       last=seq == len(ranges) - 1)
    elif source.format is Format.LINES:
        yield from _stream_pieces(source, index, chunk_bytes)
    else:
        data, problem = _read_all(source)
        yield Work(index, 0, source.format, source.name, 0, len(data), data, True, problem)


def _line_ranges(path: Path, size: int, chunk_bytes: int) -> Iterator[tuple[int, int]]:
    """Byte ranges of about ``chunk_bytes``, each ending just after a line break."""
    with path.open("rb") as file:
        start = 0
        while start < size:
            end = size
            if start + chunk_bytes < size:
                file.seek(start + chunk_bytes - 1)
                while (block := file.read(_SCAN_BYTES)) and (cut := block.find(b"\n")) < 0:
                    pass
                if block:
                    end = min(size, file.tell() - len(block) + cut + 1)
            yield start, end
            start = end


def _stream_pieces(source: Source, index: int, chunk_bytes: int) -> Iterator[Work]:
    """Pieces of a compressed line file, decompressed here."""
    carry, seq, offset, problem = b"", 0, 0, None
    blocks = source.blocks(chunk_bytes)
    while True:
        try:
            block = next(blocks, b"")
        except DamagedError as exc:
            block, problem = b"", str(exc)
        if not block:
            yield Work(index, seq, source.format, source.name, offset, offset + len(carry),
                       carry, True, problem)
            return
        data = carry + block
        cut = data.rfind(b"\n") + 1
        data, carry = data[:cut], data[cut:]
        if data:
            yield Work(index, seq, source.format, source.name, offset, offset + len(data),
                       data, False)
            seq += 1
            offset += len(data)


def _read_all(source: Source) -> tuple[bytes, str | None]:
    chunks: list[bytes] = []
    try:
        for block in source.blocks(CHUNK_BYTES):
            chunks.append(block)
    except DamagedError as exc:
        return b"".join(chunks), str(exc)
    return b"".join(chunks), None


# -- parsing a piece (in a worker process, or inline) -----------------------------------------


def parse(work: Work, decode: Decode = decode_event) -> Parsed:
    """Events and problems of one piece; ``decode`` turns one JSON event into an event."""
    data = work.load()
    if work.start == 0:
        data = data.removeprefix(_BOM)
    if work.format is Format.LINES:
        parsed = _parse_lines(data, work.last, decode)
    elif work.format is Format.DOCUMENT:
        parsed = _parse_document(data, decode)
    else:
        parsed = _parse_csv(data)
    if work.problem is not None:
        parsed.bad.append((data.count(b"\n"), work.problem))
    return parsed


def describe(error: InvalidEventError) -> str:
    """Every problem of a record, on one line."""
    return "; ".join(p.message if p.field == "(event)" else f"{p.field}: {p.message}"
                     for p in error.problems)


def _parse_lines(data: bytes, last: bool, decode: Decode) -> Parsed:
    # Split on b"\n" only: splitlines() would also split inside a line at U+2028 and friends.
    parts = data.split(b"\n")
    tail = parts.pop()  # b"" when the data ends with a line break
    parsed = Parsed(newlines=len(parts))
    events, lines, bad = parsed.events, parsed.lines, parsed.bad
    for index, raw in enumerate(parts):
        try:
            events.append(decode(raw))
            lines.append(index)
        except InvalidEventError as exc:
            if raw.strip():
                bad.append((index, describe(exc)))
    if tail.strip():
        index = len(parts)
        try:
            event = decode(tail)
        except InvalidEventError as exc:
            # Only the last piece may end without a line break; in any other piece this
            # cannot happen, as pieces are cut after line breaks.
            bad.append((index, f"{_TRUNCATED}: {describe(exc)}" if last else describe(exc)))
        else:
            events.append(event)
            lines.append(index)
    return parsed


def _parse_document(data: bytes, decode: Decode) -> Parsed:
    """A JSON document: a REST page or export, an array of events, or one event."""
    parsed = Parsed(newlines=data.count(b"\n"))
    if not data.strip():
        return parsed
    try:
        top = _DOCUMENT.decode(data)
    except msgspec.DecodeError:
        _salvage(data, parsed)
        return parsed
    if isinstance(top, dict):
        key = next((k for k in DOCUMENT_KEYS if k in top), None)
        try:
            items = [msgspec.Raw(data)] if key is None else _ITEMS.decode(top[key])
        except msgspec.ValidationError:
            parsed.bad.append((0, f"'{key}' must be an array of events"))
            return parsed
    else:
        items = top
    position = line = 0
    for item in items:
        raw = bytes(item)
        found = max(data.find(raw, position), position)
        line += data.count(b"\n", position, found)
        position = found
        try:
            parsed.events.append(decode(raw))
            parsed.lines.append(line)
        except InvalidEventError as exc:
            parsed.bad.append((line, describe(exc)))
    return parsed


def _salvage(data: bytes, parsed: Parsed) -> None:
    """A document that does not parse: keep every whole event before the damage, then say
    where and why it breaks off."""
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        cause = exc
    else:
        parsed.bad.append((0, "the JSON document is neither an object nor an array of events"))
        return
    text = data.decode("utf-8", "replace")
    start = 1 if text.lstrip().startswith("[") else None
    if start is not None:
        start = text.index("[") + 1
    elif (match := _ARRAY_START.search(text)) is not None:
        start = match.end()
    if start is None:
        parsed.bad.append((cause.lineno - 1, f"malformed JSON document: {cause.msg}"))
        return
    decoder = json.JSONDecoder()
    position = _skip_space(text, start)
    while position < len(text) and text[position] != "]":
        line = text.count("\n", 0, position)
        try:
            item, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            parsed.bad.append((line, f"the document breaks off inside this event "
                                     f"(truncated or malformed): {exc.msg}"))
            return
        _add_object(item, line, parsed)
        position = _skip_space(text, position)
        if text[position:position + 1] == ",":
            position = _skip_space(text, position + 1)
        elif text[position:position + 1] != "]":
            parsed.bad.append((text.count("\n", 0, position),
                               "the document breaks off after this event (truncated?)"))
            return
    parsed.bad.append((cause.lineno - 1, f"malformed JSON document: {cause.msg}"))


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _add_object(item: Any, line: int, parsed: Parsed) -> None:
    try:
        parsed.events.append(event_from_any(item))
        parsed.lines.append(line)
    except InvalidEventError as exc:
        parsed.bad.append((line, describe(exc)))


def _parse_csv(data: bytes) -> Parsed:
    parsed = Parsed(newlines=data.count(b"\n"))
    try:
        text = data.decode("utf-8")
        damaged = False
    except UnicodeDecodeError:
        text, damaged = data.decode("utf-8", "replace"), True
    reader = csv.reader(io.StringIO(text, newline=""), dialect="excel", strict=True)
    first = True
    while True:
        line = reader.line_num  # lines consumed so far: this row starts on the next one
        try:
            row = next(reader)
        except StopIteration:
            return parsed
        except csv.Error as exc:
            parsed.bad.append((line, f"malformed CSV: {exc}"))
            if reader.line_num == line:
                return parsed  # the reader cannot move past it
            continue
        if not row or (first and csvrows.is_header(row)) or csvrows.is_footer(row):
            first = False
            continue
        first = False
        if damaged and any("\ufffd" in cell for cell in row):
            parsed.bad.append((line, "the row holds bytes that are not UTF-8"))
            continue
        try:
            parsed.events.append(csvrows.event_from_row(row))
            parsed.lines.append(line)
        except InvalidEventError as exc:
            parsed.bad.append((line, describe(exc)))


__all__ = ["CHUNK_BYTES", "Parsed", "Record", "Work", "parse", "pieces",
           "read_records"]
