"""What an input file holds, told from its name and its first bytes.

- ``LINES``: one JSON event per line, file or REST shape: Atlassian audit log files
  (``YYYYMMDD.NNNNN.audit.log``), NDJSON (``.ndjson``, ``.jsonl``);
- ``DOCUMENT``: one JSON document: a REST response or export (``{"entities": [...]}``, also
  Bitbucket's ``values`` and our own ``events``), an array of events, or a single event;
- ``CSV``: Atlassian's 12-column CSV export, with its header.

Any of them may be gzip-compressed (told by the magic bytes, not the ``.gz`` suffix). The
content decides; the name only breaks ties, so a renamed file imports the same.
"""

from __future__ import annotations

import enum
import gzip
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from trailkeeper.export.csv import ATLASSIAN_COLUMNS

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_SNIFF_BYTES = 64 * 1024
_LINE_SUFFIXES = (".audit.log", ".ndjson", ".jsonl", ".log")
DOCUMENT_KEYS = ("entities", "values", "events")  # Atlassian, Bitbucket paged, our own
# Atlassian names its log files YYYYMMDD.NNNNN.audit.log (the docs' YYYYMMDD-NNNNN too).
ATLASSIAN_LOG_NAME = re.compile(r"^\d{8}[.-]\d{5}\.audit\.log$")


class Format(enum.Enum):
    LINES = "lines"
    DOCUMENT = "json"
    CSV = "csv"


@dataclass(frozen=True, slots=True)
class Source:
    """One input file: where it is, what it holds, and its size on disk when it was found."""

    path: Path
    format: Format
    compressed: bool
    size: int  # on disk

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def length(self) -> int:
        """Bytes of content: the size, or for gzip the size its trailer states (mod 4 GiB),
        which is what progress counts in."""
        if not self.compressed or self.size < 18:
            return self.size
        with self.path.open("rb") as file:
            file.seek(-4, os.SEEK_END)
            return int.from_bytes(file.read(4), "little") or self.size

    def blocks(self, size: int) -> Iterator[bytes]:
        """The file's content in non-empty blocks of about ``size`` bytes, decompressed.

        Damaged or cut-short gzip data raises `DamagedError` after every byte before the
        damage was yielded (`gzip.GzipFile` would drop the block it was decompressing).
        """
        with self.path.open("rb") as file:
            if not self.compressed:
                while block := file.read(size):
                    yield block
                return
            inflate, fed = zlib.decompressobj(wbits=31), False
            while chunk := file.read(size):
                while chunk:
                    try:
                        block = inflate.decompress(chunk)
                    except zlib.error as exc:
                        raise DamagedError(f"the compressed data is damaged ({exc})") from None
                    if block:  # never an empty block: readers take that for the end
                        yield block
                    fed = True
                    chunk = b""
                    if inflate.eof:  # a member ends; another may follow it
                        chunk = inflate.unused_data
                        inflate, fed = zlib.decompressobj(wbits=31), False
            if fed:
                raise DamagedError("the compressed data is cut short")


class DamagedError(ValueError):
    """Compressed data that cannot be read to its end."""


class UnknownFormatError(ValueError):
    """The file is none of the formats we read; the message says what it looks like."""


def detect(path: Path) -> Source:
    """The `Source` for ``path``; `UnknownFormatError` when it holds no audit events we know,
    `OSError` when it cannot be read."""
    size = os.stat(path).st_size
    with path.open("rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    name = path.name.lower().removesuffix(".gz")
    head = _head(path, compressed)
    return Source(path, sniff(head, name), compressed, size)


def _head(path: Path, compressed: bool) -> bytes:
    if not compressed:
        with path.open("rb") as file:
            return file.read(_SNIFF_BYTES)
    with gzip.GzipFile(path, "rb") as archive:
        try:
            return archive.read(_SNIFF_BYTES)
        except (EOFError, OSError):
            return b""  # a damaged archive: reading it reports where it breaks


def sniff(head: bytes, name: str) -> Format:
    """The format of a file starting with ``head`` and called ``name`` (lower case)."""
    text = head.removeprefix(_BOM).lstrip()
    if not text:
        if name.endswith(".csv"):
            return Format.CSV
        return Format.DOCUMENT if name.endswith(".json") else Format.LINES
    first = text[:1]
    if first == b"[":
        return Format.DOCUMENT
    if first == b"{":
        return _object_format(text, name)
    if _looks_like_csv_header(text):
        return Format.CSV
    raise UnknownFormatError(
        "not an audit file: it starts with neither a JSON object or array nor the header of "
        "Atlassian's CSV export")


def _object_format(text: bytes, name: str) -> Format:
    """JSON lines, or one document that starts with ``{``."""
    line, _, rest = text.partition(b"\n")
    try:
        first = orjson.loads(line)
    except orjson.JSONDecodeError:
        first = None
    if isinstance(first, dict):
        if any(isinstance(first.get(key), list) for key in DOCUMENT_KEYS):
            return Format.DOCUMENT  # a REST page written on one line
        return Format.LINES
    # The first line is not a whole object: a pretty-printed document, or a log whose first
    # line is damaged (the line is then reported, like any bad line).
    if name.endswith(_LINE_SUFFIXES) or ATLASSIAN_LOG_NAME.match(name):
        return Format.LINES
    if name.endswith(".json"):
        return Format.DOCUMENT
    return Format.LINES if rest.lstrip().startswith(b'{"') else Format.DOCUMENT


def _looks_like_csv_header(text: bytes) -> bool:
    line = text.split(b"\n", 1)[0].strip().decode("utf-8", "replace")
    cells = [cell.strip().strip('"').lower() for cell in line.split(",")]
    expected = [column.lower() for column in ATLASSIAN_COLUMNS]
    return cells == expected or (len(cells) == len(expected) and cells[0] == "timestamp")
