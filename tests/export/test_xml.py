"""XML: well formed whatever the events hold, and every value reads back."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailkeeper.export.formats import ExportOptions, export
from trailkeeper.model.event import AuditEvent
from trailkeeper.storage.base import StoredEvent

from .strategies import events, raw_docs, raw_row, row_of
from .test_formats import fields

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml(rows: list[StoredEvent], options: ExportOptions | None = None) -> bytes:
    return b"".join(export(rows, "xml", options or ExportOptions()))


def clean(value: str | None) -> str | None:
    """A value as XML can hold it."""
    return None if value is None else FORBIDDEN.sub("\ufffd", value)


def text(element: ET.Element | None) -> str | None:
    return None if element is None else element.text or ""


@SETTINGS
@given(st.lists(events, min_size=1, max_size=4), st.integers(0, 10**6))
def test_every_part_of_an_event_reads_back(batch: list[AuditEvent], total: int) -> None:
    """The document parses, and each value (markup, quotes, CR, tabs, ...) reads back as
    it is stored, forbidden characters as U+FFFD."""
    rows = [row_of(e, n) for n, e in enumerate(batch, start=1)]
    root = ET.fromstring(xml(rows, ExportOptions(total=total)))
    assert root.tag == "auditLog"
    assert root.get("total") == str(total)
    elements = root.findall("event")
    assert len(elements) == len(rows)
    for element, row in zip(elements, rows, strict=True):
        event = row.to_event()
        assert element.get("id") == str(row.id)
        assert element.get("uid") == clean(event.uid)
        author = element.find("author")
        assert author is not None and event.author is not None
        assert (author.get("id"), author.get("name"), author.get("type"), author.get("uri")) == (
            clean(event.author.id), clean(event.author.name), clean(event.author.type),
            clean(event.author.uri))
        kind = element.find("type")
        assert kind is not None
        assert kind.get("category") == clean(event.type.category)
        assert kind.get("action") == clean(event.type.action)
        assert kind.get("area") == event.type.area.value
        objects = element.findall("affectedObjects/object")
        assert [(o.get("type"), o.get("id"), o.get("name")) for o in objects] == [
            (clean(o.type), clean(o.id), clean(o.name)) for o in event.affected_objects]
        changes = element.findall("changedValues/change")
        assert [(c.get("key"), text(c.find("from")), text(c.find("to"))) for c in changes] == [
            (clean(c.key), clean(c.from_value), clean(c.to_value)) for c in event.changed_values]
        attributes = element.findall("extraAttributes/attribute")
        assert [(a.get("name"), a.text or "") for a in attributes] == [
            (clean(a.name), clean(a.value)) for a in event.extra_attributes]
        for name in ("source", "system", "node", "method"):
            assert text(element.find(name)) == clean(getattr(event, name))


@SETTINGS
@given(st.lists(raw_docs(), min_size=1, max_size=4))
def test_any_stored_document_gives_a_well_formed_document(docs: list[bytes]) -> None:
    """Broken documents still give a document that parses, bare or not, fields or not."""
    rows = [raw_row(doc, n) for n, doc in enumerate(docs, start=1)]
    for chosen in (None, fields("author", "object", "changed.key", "timestamp")):
        root = ET.fromstring(xml(rows, ExportOptions(fields=chosen, total=3)))
        assert [e.get("id") for e in root.findall("event")] == [str(r.id) for r in rows]
        bare = xml(rows, ExportOptions(fields=chosen, bare=True))
        assert len(ET.fromstring(b"<all>" + bare + b"</all>")) == len(rows)


@SETTINGS
@given(st.lists(events, min_size=1, max_size=3))
def test_chosen_fields_read_back(batch: list[AuditEvent]) -> None:
    """With fields, each field element holds the catalogue's value."""
    rows = [row_of(e, n) for n, e in enumerate(batch, start=1)]
    chosen = fields("audit.user", "object", "new.Key", "sxName", "source")
    root = ET.fromstring(xml(rows, ExportOptions(fields=chosen)))
    for element, row in zip(root.findall("event"), rows, strict=True):
        doc = {**orjson.loads(row.doc), "id": row.id}
        assert [(f.get("name"), f.text or "") for f in element.findall("field")] == [
            (f.name, clean(f.extract(doc))) for f in chosen]


def test_hostile_values_are_escaped_not_interpreted() -> None:
    """Markup in values stays text: no injected element, entity or comment."""
    doc = orjson.dumps({
        "author": {"id": '"><x/>', "name": "</author><evil/>", "type": "a'b\tc\nd\re"},
        "type": {"category": "<!--", "action": "&xxe;"},
        "changedValues": [{"key": "k", "from": "]]><![CDATA[", "to": "a\r\nb\tc\x01d\uffff"}],
    })
    root = ET.fromstring(xml([raw_row(doc)]))
    event = root.find("event")
    assert event is not None
    assert [child.tag for child in event] == ["timestamp", "author", "type", "changedValues"]
    author = event.find("author")
    assert author is not None and author.get("name") == "</author><evil/>"
    assert author.get("type") == "a'b\tc\nd\re"  # whitespace survives in attributes too
    assert text(event.find("changedValues/change/to")) == "a\r\nb\tc\ufffdd\ufffd"
