"""CSV: cells read back as written, none a spreadsheet would run, Atlassian's columns."""

from __future__ import annotations

import csv
import io
import itertools
import re

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailkeeper.demo import demo_events
from trailkeeper.export.csv import ATLASSIAN_COLUMNS, atlassian_csv, csv_line, safe_cell
from trailkeeper.export.formats import ExportOptions, export
from trailkeeper.model.event import AuditEvent
from trailkeeper.model.timestamps import format_iso
from trailkeeper.storage.base import StoredEvent

from .strategies import events, raw_docs, raw_row, row_of
from .test_formats import fields

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def atlassian_row_as_it_was(event: AuditEvent) -> list[str]:
    """The 12 columns as the first implementation rendered them from an AuditEvent."""
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


def csv_module(rows: list[list[str]]) -> str:
    """What Python's csv module writes for these cells (Excel dialect)."""
    buffer = io.StringIO()
    csv.writer(buffer, dialect="excel").writerows(rows)
    return buffer.getvalue()


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def export_csv(rows: list[StoredEvent], options: ExportOptions | None = None) -> str:
    return b"".join(export(rows, "csv", options or ExportOptions())).decode()


def assert_no_formula(cells: list[str]) -> None:
    for cell in cells:
        if cell.lstrip(" ").startswith(FORMULA_START):
            assert PLAIN_NUMBER.fullmatch(cell), cell


@SETTINGS
@given(st.lists(events, min_size=1, max_size=4))
def test_cells_read_back_as_atlassians_columns(batch: list[AuditEvent]) -> None:
    """Parsed back, every cell is the Atlassian column through safe_cell; quoting is exactly
    the csv module's; no cell starts a formula."""
    rows = [row_of(e, n) for n, e in enumerate(batch, start=1)]
    expected = [[safe_cell(c) for c in atlassian_row_as_it_was(row.to_event())] for row in rows]
    out = export_csv(rows)
    assert out == csv_module([list(ATLASSIAN_COLUMNS), *expected])
    parsed = parse(out)
    assert parsed == [list(ATLASSIAN_COLUMNS), *expected]
    for cells in parsed:
        assert_no_formula(cells)
    as_it_was = csv_module([list(ATLASSIAN_COLUMNS),
                            *[[safe_cell(c) for c in atlassian_row_as_it_was(e)] for e in batch]])
    assert b"".join(atlassian_csv(batch)).decode() == as_it_was


@SETTINGS
@given(st.lists(events, min_size=1, max_size=4))
def test_chosen_fields_read_back(batch: list[AuditEvent]) -> None:
    """With fields: their names as the header and the catalogue's values as cells."""
    rows = [row_of(e, n) for n, e in enumerate(batch, start=1)]
    chosen = fields("audit.stamp", "audit.user", "object", "old.Key", "attr.name", "uid")
    expected = [[safe_cell(f.extract({**orjson.loads(row.doc), "id": row.id})) for f in chosen]
                for row in rows]
    out = export_csv(rows, ExportOptions(fields=chosen))
    assert parse(out) == [[f.name for f in chosen], *expected]
    assert out == csv_module([[f.name for f in chosen], *expected])


@SETTINGS
@given(st.lists(raw_docs(), min_size=1, max_size=4))
def test_any_stored_document_gives_twelve_safe_cells(docs: list[bytes]) -> None:
    """Broken documents still give one record of 12 cells each, none a formula."""
    rows = [raw_row(doc, n) for n, doc in enumerate(docs, start=1)]
    parsed = parse(export_csv(rows, ExportOptions(bare=True)))
    assert len(parsed) == len(rows)
    for cells in parsed:
        assert len(cells) == 12
        assert_no_formula(cells)
    chosen = fields("author", "object", "changed.key", "source")
    parsed = parse(export_csv(rows, ExportOptions(bare=True, fields=chosen)))
    assert [len(cells) for cells in parsed] == [4] * len(rows)
    for cells in parsed:
        assert_no_formula(cells)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(max_size=8) | st.sampled_from(['"', ",", "\r", "\n", "=", " -1"]),
                min_size=1, max_size=5))
def test_csv_line_quotes_as_the_csv_module(cells: list[str]) -> None:
    """The hand-built record equals what csv.writer writes for the same safe cells."""
    assert csv_line(cells) + "\r\n" == csv_module([[safe_cell(c) for c in cells]])


def test_safe_cell_neutralises_formulas_but_not_numbers() -> None:
    """OWASP's characters get an apostrophe, also after spaces; plain numbers stay numbers."""
    assert safe_cell("=1+2") == "'=1+2"
    assert safe_cell("  @SUM(A1)") == "'  @SUM(A1)"
    assert safe_cell("\tx") == "'\tx"
    assert safe_cell("\x00x") == "'\x00x"
    assert safe_cell("-1") == "-1"
    assert safe_cell("-2.5") == "-2.5"
    assert safe_cell("-\u0661") == "'-\u0661"  # not a number a spreadsheet knows
    assert safe_cell("-1\n") == "'-1\n"
    assert safe_cell(None) == ""
    assert csv_line(['=1+2";=1+2']) == "\"'=1+2\"\";=1+2\""  # OWASP's own example


def test_atlassian_csv_of_events_is_unchanged() -> None:
    """atlassian_csv (used by the Atlassian API) writes what it always wrote."""
    batch = list(itertools.islice(demo_events(600, seed=3), 600))
    rows = [[safe_cell(c) for c in atlassian_row_as_it_was(e)] for e in batch]
    expected = csv_module([list(ATLASSIAN_COLUMNS), *rows])
    assert b"".join(atlassian_csv(batch)).decode() == expected
    assert b"".join(atlassian_csv(batch, header=False)).decode() == csv_module(rows)
    stored = [row_of(e, n) for n, e in enumerate(batch, start=1)]
    assert export_csv(stored) == expected


def test_a_lone_empty_cell_is_quoted() -> None:
    """A record of one empty cell is written "" so it is not an empty line."""
    row = raw_row(b'{"type":{"category":"c","action":"a"}}')
    assert export_csv([row], ExportOptions(fields=fields("source"))) == 'source\r\n""\r\n'
