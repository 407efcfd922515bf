"""Export formats: one entry point, `export`, for the HTTP API and ``trailkeeper search``.

Each format is a writer from stored rows to chunks of bytes, streamed in constant memory
(a chunk holds at most `CHUNK_ROWS` rows; TEXT also holds its first `text.SAMPLE_ROWS`
rows to size its columns). The writers are pure: no I/O, no clock. Exactly what each
writes is in its module's docstring:

- ``json``: `trailkeeper.export.json` — ``{"total", "events", "next_cursor"}``, or a bare array;
- ``ndjson``: `trailkeeper.export.ndjson` — the Atlassian file shape plus ``id``, a line each;
- ``csv``: `trailkeeper.export.csv` — Atlassian's 12 columns or the chosen fields;
- ``xml``: `trailkeeper.export.xml` — ``<auditLog>`` of ``<event>`` elements;
- ``text``: `trailkeeper.export.text` — an aligned table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Literal, get_args

from trailkeeper.export.csv import write_csv
from trailkeeper.export.json import write_json
from trailkeeper.export.ndjson import write_ndjson
from trailkeeper.export.options import CHUNK_ROWS, ExportOptions
from trailkeeper.export.text import write_text
from trailkeeper.export.xml import write_xml
from trailkeeper.storage.base import StoredEvent

Format = Literal["json", "ndjson", "csv", "xml", "text"]
FORMATS: tuple[str, ...] = get_args(Format)

MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "xml": "application/xml",
    "text": "text/plain; charset=utf-8",
}
EXTENSIONS: dict[str, str] = {
    "json": "json",
    "ndjson": "ndjson",
    "csv": "csv",
    "xml": "xml",
    "text": "txt",
}

Writer = Callable[[Iterable[StoredEvent], ExportOptions], Iterator[bytes]]
WRITERS: dict[str, Writer] = {
    "json": write_json,
    "ndjson": write_ndjson,
    "csv": write_csv,
    "xml": write_xml,
    "text": write_text,
}


def format_named(name: str) -> Format:
    """The format a name stands for, in any case (``CSV``, ``csv``); ValueError if none."""
    lowered = name.lower()
    if lowered not in FORMATS:
        raise ValueError(f"unknown format {name!r}; use one of {', '.join(FORMATS)}")
    return lowered  # type: ignore[return-value]


def export(rows: Iterable[StoredEvent], fmt: Format,
           options: ExportOptions = ExportOptions()) -> Iterator[bytes]:  # noqa: B008 - frozen
    """Chunks of the output (each chunk a few hundred rows at most), constant memory.

    ``fmt`` may be given in any case. The rows are read lazily, as the chunks are consumed.
    """
    return WRITERS[format_named(fmt)](rows, options)


__all__ = ["CHUNK_ROWS", "EXTENSIONS", "FORMATS", "MEDIA_TYPES", "WRITERS", "ExportOptions",
           "Format", "Writer", "export", "format_named"]
