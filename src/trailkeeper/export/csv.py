"""CSV: Atlassian's 12 columns, or the chosen fields, safe to open in a spreadsheet.

Default columns (Atlassian's export, reference §1.5): Timestamp (``…Z[UTC]``), Author,
Author ID, Category, Summary, System, Affected objects (``name (TYPE, id ID)``, joined by
", "), Changed values (``key: from -> to``), Source, Method, Node, Attributes
(``name: value``, sorted by name). With ``fields``: one column per field, headed by its name.

Not bare: a header row first and, when ``total`` is given, a last line ``# N matching
entries`` (``# entries 101-150 of N`` after an offset). Bare: rows only.

Every cell goes through `safe_cell`: a cell a spreadsheet would evaluate (starting with
= + - @ tab CR LF NUL, also after leading spaces) gets a leading apostrophe, as OWASP and
ASVS 1.2.10 advise; plain numbers such as the author id ``-1`` are left alone. Quoting is
RFC 4180 as Python's ``csv`` module writes the Excel dialect (a cell is quoted when it holds
a comma, a quote, CR or LF; quotes are doubled), lines end in CRLF, the text is UTF-8.
The lines are built here rather than by ``csv.writer``, which costs several µs a row.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Iterator, Sequence

from trailkeeper.export.documents import (
    UNREADABLE,
    Attribute,
    Change,
    Doc,
    Resource,
    decode,
    doc_of_event,
    rescue,
    values_of,
)
from trailkeeper.export.options import CHUNK_ROWS, ExportOptions, count_line
from trailkeeper.model.event import AuditEvent
from trailkeeper.model.timestamps import format_iso
from trailkeeper.query.fields import Field
from trailkeeper.storage.base import StoredEvent

ATLASSIAN_COLUMNS = (
    "Timestamp", "Author", "Author ID", "Category", "Summary", "System", "Affected objects",
    "Changed values", "Source", "Method", "Node", "Attributes",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")  # ASCII digits: what a spreadsheet reads as one
# First characters that send a cell through safe_cell (a space: the formula may follow it).
_RISKY = frozenset([*_FORMULA_START, " "])
_BY_NAME = operator.attrgetter("name")


def safe_cell(value: str | None) -> str:
    """A cell value no spreadsheet will run as a formula."""
    if not value:
        return ""
    if value.lstrip(" ").startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def atlassian_cells(doc: Doc) -> list[str]:
    """The 12 Atlassian columns of one event, before `safe_cell`."""
    author = doc.author
    kind = doc.type
    objects = doc.affectedObjects
    changes = doc.changedValues
    attributes = doc.extraAttributes
    # Lists of none or one item are the common case, and cheaper without join and map.
    return [
        f"{doc.timestamp}[UTC]" if doc.timestamp else "",
        author.name if author else "",
        author.id if author else "",
        kind.category,
        kind.action,
        doc.system or "",
        "" if not objects else _object(objects[0]) if len(objects) == 1
        else ", ".join(map(_object, objects)),
        "" if not changes else _change(changes[0]) if len(changes) == 1
        else ", ".join(map(_change, changes)),
        doc.source or "",
        doc.method or "",
        doc.node or "",
        "" if not attributes else _attribute(attributes[0]) if len(attributes) == 1
        else ", ".join(map(_attribute, sorted(attributes, key=_BY_NAME))),
    ]


def _object(o: Resource) -> str:
    return f"{o.name} ({o.type}, id {o.id})" if o.id else f"{o.name} ({o.type})"


def _change(c: Change) -> str:
    return f"{c.key}: {c.old or ''} -> {c.new or ''}"


def _attribute(a: Attribute) -> str:
    return f"{a.name}: {a.value}"


def atlassian_row(event: AuditEvent) -> list[str]:
    """The 12 Atlassian columns of an event, before `safe_cell`."""
    return atlassian_cells(doc_of_event(event))


def csv_line(cells: Sequence[str]) -> str:
    """One CSV record (without its line end), every cell made safe and quoted if needed."""
    if len(cells) == 1 and not cells[0]:
        return '""'  # as csv.writer: a lone empty cell would be an empty line
    # Quotes and line breaks are rare: one scan of the whole record rules them out, so most
    # cells need only two inline tests, and _cell is called for the rest.
    record = ",".join(cells)
    if '"' in record or "\n" in record or "\r" in record:
        return ",".join([_cell(c) for c in cells])
    return ",".join([c if c[:1] not in _RISKY and "," not in c else _cell(c) for c in cells])


def _cell(value: str) -> str:
    value = safe_cell(value)
    if "," in value or '"' in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def write_csv(rows: Iterable[StoredEvent], options: ExportOptions) -> Iterator[bytes]:
    fields = options.fields
    lines = [] if options.bare else [csv_line(ATLASSIAN_COLUMNS if not fields
                                              else [f.name for f in fields])]
    written = 0
    for record in _records(rows, fields):
        lines.append(record)
        written += 1
        if len(lines) >= CHUNK_ROWS:
            yield _chunk(lines)
            lines.clear()
    footer = count_line(options, written)
    if footer is not None:
        lines.append("# " + footer)
    if lines:
        yield _chunk(lines)


def _records(rows: Iterable[StoredEvent], fields: Sequence[Field] | None) -> Iterator[str]:
    if fields:
        for row in rows:
            yield csv_line(values_of(row, fields))
        return
    for row in rows:  # the bulk export path: decoding inline saves a call a row
        try:
            doc = decode(row.doc)
        except UNREADABLE:
            doc = rescue(row.doc)
        if doc.timestamp is None:
            doc.timestamp = format_iso(row.timestamp_ms)
        yield csv_line(atlassian_cells(doc))


def _chunk(lines: list[str]) -> bytes:
    lines.append("")
    # "replace": an AuditEvent built in Python may hold a lone surrogate, which UTF-8 cannot.
    return "\r\n".join(lines).encode("utf-8", "replace")


def atlassian_csv(events: Iterable[AuditEvent], *, header: bool = True) -> Iterator[bytes]:
    """UTF-8 CSV chunks of events in Atlassian's 12 columns (the header unless told not)."""
    lines = [csv_line(ATLASSIAN_COLUMNS)] if header else []
    for event in events:
        lines.append(csv_line(atlassian_row(event)))
        if len(lines) >= CHUNK_ROWS:
            yield _chunk(lines)
            lines.clear()
    if lines:
        yield _chunk(lines)

