"""NDJSON: exactly one line per event whatever it holds, each the file shape of the event."""

from __future__ import annotations

import json
import re

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailkeeper.export.formats import ExportOptions, export
from trailkeeper.model.event import AuditEvent
from trailkeeper.storage.base import StoredEvent

from .strategies import events, raw_docs, raw_row, row_of
from .test_formats import fields

# Characters some reader splits lines on, or that are raw controls.
LINE_BREAKING = re.compile(rb"[\x00-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def ndjson(rows: list[StoredEvent], options: ExportOptions | None = None) -> bytes:
    return b"".join(export(rows, "ndjson", options or ExportOptions()))


def assert_one_line_each(out: bytes, rows: list[StoredEvent]) -> list[bytes]:
    lines = out.split(b"\n")
    assert lines.pop() == b""
    assert len(lines) == len(rows)
    assert len(out.decode().splitlines()) == len(rows)  # splits on U+2028, NEL, ... too
    for line in lines:
        assert LINE_BREAKING.search(line) is None
    return lines


@SETTINGS
@given(st.lists(events, min_size=1, max_size=4))
def test_each_line_is_the_events_file_line(batch: list[AuditEvent]) -> None:
    """A line parses back to exactly what AuditEvent.file_line() holds, with our id."""
    rows = [row_of(e, n) for n, e in enumerate(batch, start=1)]
    for line, row in zip(assert_one_line_each(ndjson(rows), rows), rows, strict=True):
        assert json.loads(line) == json.loads(row.to_event().file_line())


@SETTINGS
@given(st.lists(events, min_size=1, max_size=4))
def test_lines_of_chosen_fields(batch: list[AuditEvent]) -> None:
    """With fields, each line holds those fields as the catalogue extracts them."""
    rows = [row_of(e, n) for n, e in enumerate(batch, start=1)]
    chosen = fields("id", "author", "object", "changed.key", "attr.name", "timestamp")
    lines = assert_one_line_each(ndjson(rows, ExportOptions(fields=chosen)), rows)
    for line, row in zip(lines, rows, strict=True):
        doc = {**orjson.loads(row.doc), "id": row.id}
        assert json.loads(line) == {f.name: f.extract(doc) for f in chosen}


@SETTINGS
@given(st.lists(raw_docs(), min_size=1, max_size=4))
def test_any_stored_document_still_gives_one_valid_line(docs: list[bytes]) -> None:
    """Broken documents (lone surrogates, bad UTF-8, wrong types, not JSON) yield a line
    that a strict parser accepts, with the row's id and timestamp."""
    rows = [raw_row(doc, n) for n, doc in enumerate(docs, start=1)]
    for options in (ExportOptions(), ExportOptions(fields=fields("author", "object", "id"))):
        lines = assert_one_line_each(ndjson(rows, options), rows)
        for line, row in zip(lines, rows, strict=True):
            parsed = orjson.loads(line)
            if options.fields is None:
                assert parsed["id"] == row.id
                assert parsed["version"] == "1.0"
                assert parsed["timestamp"] == {"epochSecond": row.timestamp_ms // 1000,
                                               "nano": row.timestamp_ms % 1000 * 1_000_000}
            else:
                assert parsed["id"] == str(row.id)


def test_line_breaking_characters_are_escaped() -> None:
    """CR, LF, NUL, NEL, U+2028 and U+2029 in a value are escapes, not raw characters."""
    value = "a\rb\nc\x00d\x85e\u2028f\u2029g\x7fh\x9bi"
    doc = orjson.dumps({"type": {"category": "c", "action": value}})
    out = ndjson([raw_row(doc)])
    assert out.count(b"\n") == 1
    assert b'"action":"a\\rb\\nc\\u0000d\\u0085e\\u2028f\\u2029g\\u007fh\\u009bi"' in out
    assert json.loads(out)["auditType"]["action"] == value


def test_lone_surrogates_become_replacement_characters() -> None:
    """A lone surrogate escape (written by another tool) is read as U+FFFD."""
    doc = b'{"type":{"category":"c\\ud800","action":"a"},"source":"\\udfff\\ud83d\\ude00"}'
    line = orjson.loads(ndjson([raw_row(doc)]))
    assert line["auditType"]["category"] == "c\ufffd"
    assert line["source"] == "\ufffd\U0001f600"
