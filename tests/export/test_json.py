"""JSON: one document that parses, with the stored entities as they are."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailkeeper.export.formats import ExportOptions, export
from trailkeeper.model.event import AuditEvent
from trailkeeper.storage.base import StoredEvent

from .strategies import events, raw_docs, raw_row, row_of
from .test_formats import ROW, fields
from .test_ndjson import LINE_BREAKING

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def export_json(rows: Iterable[StoredEvent], options: ExportOptions | None = None) -> bytes:
    return b"".join(export(rows, "json", options or ExportOptions()))


@SETTINGS
@given(st.lists(events, max_size=4), st.none() | st.integers(0, 10**9))
def test_events_are_the_stored_entities_with_their_ids(batch: list[AuditEvent],
                                                      total: int | None) -> None:
    """The document parses to the REST entities (id first) and the total."""
    rows = [row_of(e, n) for n, e in enumerate(batch, start=1)]
    out = export_json(rows, ExportOptions(total=total))
    body = orjson.loads(out)
    assert body == {**({} if total is None else {"total": total}),
                    "events": [orjson.loads(row.rest_json()) for row in rows]}
    assert [next(iter(e)) for e in body["events"]] == ["id"] * len(rows)
    assert LINE_BREAKING.search(out[:-1]) is None
    assert orjson.loads(export_json(rows, ExportOptions(bare=True))) == body["events"]


@SETTINGS
@given(st.lists(raw_docs(), min_size=1, max_size=4))
def test_any_stored_document_gives_valid_json(docs: list[bytes]) -> None:
    """Lone surrogate escapes, bytes that are not UTF-8, raw controls or not JSON at all:
    the output still parses with a strict parser, one entity per row, each with its id."""
    rows = [raw_row(doc, n) for n, doc in enumerate(docs, start=1)]
    body = orjson.loads(export_json(rows, ExportOptions(total=1)))
    assert [e["id"] for e in body["events"]] == [row.id for row in rows]
    chosen = fields("id", "author", "object")
    body = orjson.loads(export_json(rows, ExportOptions(fields=chosen, bare=True)))
    assert [e["id"] for e in body] == [str(row.id) for row in rows]


def test_sound_documents_are_passed_through_unchanged() -> None:
    """A document from our encoder is spliced as it is stored, byte for byte."""
    out = export_json([ROW], ExportOptions(bare=True))
    assert out == b"[" + ROW.rest_json() + b"]\n"


def test_a_lone_surrogate_escape_is_replaced() -> None:
    """A document with a lone surrogate escape is encoded again, without it."""
    row = raw_row(b'{"type":{"category":"\\ud800x","action":"a"}}', 5)
    body = json.loads(export_json([row], ExportOptions(bare=True)))
    assert body == [{"id": 5, "type": {"category": "\ufffdx", "action": "a"},
                     "timestamp": "2020-09-13T12:26:40.123Z"}]


def test_the_next_cursor_is_asked_for_after_the_last_row() -> None:
    """A cursor given as a function is called once the rows are exhausted."""
    seen: list[str] = []

    def rows() -> Iterator[StoredEvent]:
        yield ROW
        seen.append("rows done")

    def cursor() -> str:
        seen.append("cursor")
        return "1637539714166,47"

    body = orjson.loads(export_json(rows(), ExportOptions(next_cursor=cursor)))
    assert seen == ["rows done", "cursor"]
    assert body["next_cursor"] == "1637539714166,47"
    assert "next_cursor" not in orjson.loads(export_json([ROW], ExportOptions(
        next_cursor=lambda: None)))
