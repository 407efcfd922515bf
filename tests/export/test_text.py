"""TEXT: an aligned table with no control character, whatever the events hold."""

from __future__ import annotations

import re
import unicodedata

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.cells import cell_len

from trailkeeper.export.escaping import terminal_text
from trailkeeper.export.formats import ExportOptions, export
from trailkeeper.export.text import MAX_WIDTH, SAMPLE_ROWS
from trailkeeper.model.event import AuditEvent
from trailkeeper.storage.base import StoredEvent

from .strategies import events, raw_docs, raw_row, row_of
from .test_formats import fields

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                      "\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def text(rows: list[StoredEvent], options: ExportOptions | None = None) -> str:
    return b"".join(export(rows, "text", options or ExportOptions())).decode()


def assert_safe_table(out: str, rows: int, *, header: bool, footer: bool) -> None:
    """No control character but LF; every table line has the same display width."""
    assert CONTROLS.search(out) is None
    lines = out.split("\n")
    assert lines.pop() == ""
    if footer:
        lines.pop()
    assert len(lines) == rows + (2 if header else 0)
    if header:
        assert set(lines[1]) <= {"-", " "}
    assert len({cell_len(line) for line in lines}) <= 1


@SETTINGS
@given(st.lists(events, min_size=1, max_size=5))
def test_tables_of_any_events_are_aligned_and_safe(batch: list[AuditEvent]) -> None:
    """Default columns and chosen ones, bare or not: aligned, no controls."""
    rows = [row_of(e, n) for n, e in enumerate(batch, start=1)]
    chosen = fields("audit.user", "changed.Key", "attr.name", "object.name", "uid")
    for options in (ExportOptions(total=len(rows)), ExportOptions(bare=True),
                    ExportOptions(fields=chosen, total=9, offset=3)):
        assert_safe_table(text(rows, options), len(rows), header=not options.bare,
                          footer=options.total is not None)


@SETTINGS
@given(st.lists(raw_docs(), min_size=1, max_size=4))
def test_tables_of_any_stored_documents_are_aligned_and_safe(docs: list[bytes]) -> None:
    """Broken documents (controls, escape sequences, lone surrogates) are made safe."""
    rows = [raw_row(doc, n) for n, doc in enumerate(docs, start=1)]
    assert_safe_table(text(rows), len(rows), header=True, footer=False)
    chosen = fields("author", "source", "changed.key", "attr.name")
    assert_safe_table(text(rows, ExportOptions(fields=chosen, bare=True)), len(rows),
                      header=False, footer=False)


@settings(max_examples=500)
@given(st.text())
def test_terminal_text_leaves_no_control_characters(value: str) -> None:
    """Whatever a value holds, what reaches the terminal has no control character."""
    safe = terminal_text(value)
    assert not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in safe)
    assert CONTROLS.search(safe) is None


def test_escape_sequences_are_shown_not_run() -> None:
    """ESC, BEL and 8-bit CSI become visible escapes; tabs and line breaks become spaces."""
    assert terminal_text("\x1b[2Jgone\x07") == "\\x1b[2Jgone\\x07"
    assert terminal_text("\x9b31m") == "\\x9b31m"
    assert terminal_text("a\tb\nc\r\nd\u2028e\x85f") == "a b c  d e f"
    assert terminal_text("abc\u202egnp.exe") == "abc\\u202egnp.exe"
    assert terminal_text("\ud800") == "\ufffd"


def test_widths_come_from_the_first_rows_and_are_capped() -> None:
    """Columns are sized by the first rows (at most MAX_WIDTH); later, longer values are cut
    with an ellipsis so the table stays aligned."""
    def row(n: int, name: str) -> StoredEvent:
        doc = b'{"author":{"name":"%s","id":"1","type":"T"},"type":{"category":"c","action":"a"}}'
        return raw_row(doc % name.encode(), n)

    rows = [row(n, "ab") for n in range(SAMPLE_ROWS)]
    rows += [row(SAMPLE_ROWS, "a-much-longer-name"), row(SAMPLE_ROWS + 1, "x" * 100)]
    out = text(rows, ExportOptions(fields=fields("author"))).split("\n")
    assert out[:3] == ["author", "------", "ab    "]
    assert out[-3:] == ["a-muc…", "xxxxx…", ""]
    wide = text([row(1, "x" * 100)], ExportOptions(fields=fields("author"), bare=True))
    assert wide == "x" * (MAX_WIDTH - 1) + "…\n"


def test_wide_characters_are_counted_as_two_cells() -> None:
    """East Asian wide characters take two cells, so the columns after them line up."""
    def row(n: int, name: str) -> StoredEvent:
        author = orjson.dumps({"name": name, "id": "1", "type": "T"})
        return raw_row(b'{"author":%s,"type":{"category":"c","action":"a"}}' % author, n)

    out = text([row(1, "日本語"), row(2, "abc")], ExportOptions(fields=fields("author", "id")))
    assert out.split("\n")[2:4] == ["日本語  1 ", "abc     2 "]
