"""Atlassian's 12-column CSV export, safe to open in a spreadsheet.

Cells that a spreadsheet would evaluate (starting with = + - @ tab CR LF NUL) get a leading
apostrophe, as OWASP and ASVS 1.2.10 advise; plain numbers such as the author id ``-1`` are
left alone. Quoting follows RFC 4180 (Excel dialect).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator

from trailkeeper.model.event import AuditEvent
from trailkeeper.model.timestamps import format_iso

ATLASSIAN_COLUMNS = (
    "Timestamp", "Author", "Author ID", "Category", "Summary", "System", "Affected objects",
    "Changed values", "Source", "Method", "Node", "Attributes",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def safe_cell(value: str | None) -> str:
    """A cell value no spreadsheet will run as a formula."""
    if not value:
        return ""
    if value.lstrip(" ").startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def atlassian_row(event: AuditEvent) -> list[str]:
    author = event.author
    t = event.type
    ms = event.timestamp_ms
    return [
        f"{format_iso(ms)}[UTC]" if ms is not None else "",
        author.name if author else "",
        author.id if author else "",
        t.category,
        t.action,
        event.system or "",
        ", ".join(
            f"{o.name} ({o.type}{', id ' + o.id if o.id else ''})" for o in event.affected_objects
        ),
        ", ".join(
            f"{c.key}: {c.from_value or ''} -> {c.to_value or ''}" for c in event.changed_values
        ),
        event.source or "",
        event.method or "",
        event.node or "",
        ", ".join(f"{a.name}: {a.value}"
                  for a in sorted(event.extra_attributes, key=lambda a: a.name)),
    ]


def atlassian_csv(events: Iterable[AuditEvent], *, header: bool = True) -> Iterator[bytes]:
    """UTF-8 CSV chunks: the header, then one chunk per ~200 rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, dialect="excel")
    if header:
        writer.writerow(ATLASSIAN_COLUMNS)
    for rows, event in enumerate(events, start=1):
        writer.writerow([safe_cell(cell) for cell in atlassian_row(event)])
        if rows % 200 == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")
