"""The file sink's fast rendering is byte for byte what the model's `to_file()` gives."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from hypothesis import HealthCheck, given, settings

from tests.export.strategies import events, raw_docs, raw_row, row_of
from tests.factories import batch, event, rich_event
from trailkeeper.consumers.fileline import file_line
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import (
    AuditAttribute,
    AuditAuthor,
    AuditEvent,
    AuditResource,
    AuditType,
    ChangedValue,
)
from trailkeeper.storage.base import Storage, StoredEvent

# A real Bitbucket 7.18 line (atlassian-audit.md §2.2).
BITBUCKET_LINE = (
    b'{"affectedObjects":[{"id":"3","name":"AT","type":"PROJECT"}],"auditType":{"action":'
    b'"Project deleted","actionI18nKey":"bitbucket.service.project.audit.action.projectdeleted",'
    b'"area":"LOCAL_CONFIG_AND_ADMINISTRATION","category":"Projects","categoryI18nKey":'
    b'"bitbucket.service.audit.category.projects","level":"BASE"},"author":{"id":"2","name":'
    b'"admin","type":"NORMAL"},"changedValues":[],"extraAttributes":[{"name":"target",'
    b'"nameI18nKey":"bitbucket.audit.attribute.legacy.target","value":"AT"}],"method":'
    b'"Browser","node":"8767044c-1b98-4d64-82db-ef29af8c3792","source":"10.100.100.2",'
    b'"system":"http://bitbucket.internal:7990","timestamp":{"epochSecond":1638036799,'
    b'"nano":960000000},"version":"1.0"}'
)


def model_line(row: StoredEvent) -> bytes:
    """The reference: the stored event as the model renders the file shape."""
    return orjson.dumps(row.to_event().to_file(), option=orjson.OPT_SORT_KEYS) + b"\n"


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


HAND_PICKED = [
    event(),
    rich_event(),
    rich_event(uid="order-42", author=AuditAuthor("7", "Zoë Ångström", "NORMAL",
                                                  "http://bb/users/zoe")),
    # Unicode everywhere: accents, CJK, emoji with joiners, right-to-left override.
    AuditEvent(
        type=AuditType("Dépôts 日本", "Créé 👩‍👩‍👧", CoverageArea.SECURITY, CoverageLevel.FULL,
                       "cat.key", "act.key"),
        author=AuditAuthor("-1", "System", "system"),
        timestamp=at(1_700_000_000_001),
        affected_objects=[AuditResource("REPOSITORY", "répo \u202eevil", "9", "http://x/é"),
                          AuditResource("PROJECT", "PRJ"),
                          AuditResource("USER", "bob", uri="")],
        changed_values=[ChangedValue("zeta", "a\nb", "c\td", "k.z"), ChangedValue("alpha"),
                        ChangedValue("beta", to_value=""), ChangedValue("gamma", "", None)],
        extra_attributes=[AuditAttribute("z", "\u2028x\u2029"), AuditAttribute("a", ""),
                          AuditAttribute("m", '{"json": "inside"}', "attr.key")],
        source="2001:db8::1", method="REST", system="http://bitbucket:7990", node="n-1",
        uid="ü-1",
    ),
    # An author with an empty uri (the model reads it as none), whole-second and
    # last-millisecond timestamps, nothing optional.
    AuditEvent(type=AuditType("C", "A"), author=AuditAuthor("5", "x", "T", ""),
               timestamp=at(1_638_036_799_000)),
    AuditEvent(type=AuditType("C", "A", CoverageArea.AUDIT_LOG, CoverageLevel.ADVANCED),
               author=AuditAuthor("5", "x", "T"), timestamp=at(253402300799999)),
    AuditEvent(type=AuditType("C", "A"), author=AuditAuthor("5", "x", "T"), timestamp=at(0)),
    AuditEvent.from_file(orjson.loads(BITBUCKET_LINE)),
]


def test_hand_picked_events_render_as_the_model_renders_them() -> None:
    """Unicode, objects, changed values, attributes, odd timestamps: identical bytes."""
    for n, e in enumerate(HAND_PICKED, 1):
        row = row_of(e, n)
        assert file_line(row) == model_line(row), e


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_any_valid_event_renders_as_the_model_renders_it(e: AuditEvent) -> None:
    """For every event the model accepts, the fast path's line is the model's line."""
    row = row_of(e, 12345)
    assert file_line(row) == model_line(row)


def test_a_real_bitbucket_line_comes_back_with_only_id_added() -> None:
    """The line is Atlassian's file shape: sorted keys, nulls omitted, version 1.0, compact."""
    row = row_of(AuditEvent.from_file(orjson.loads(BITBUCKET_LINE)), 77)
    line = file_line(row)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    expected = BITBUCKET_LINE.replace(b',"method"', b',"id":77,"method"') + b"\n"
    assert line == expected


def test_stored_rows_render_as_the_model_renders_them(storage: Storage) -> None:
    """Rows read back from either store (their documents as the store keeps them)."""
    storage.append([batch(storage, *HAND_PICKED)])
    rows = storage.events_after(0, 100)
    assert [r.id for r in rows] == list(range(1, len(HAND_PICKED) + 1))
    assert [file_line(r) for r in rows] == [model_line(r) for r in rows]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(raw_docs())
def test_a_damaged_document_renders_as_the_model_or_raises(doc: bytes) -> None:
    """Documents no producer of ours writes: never a line the model would not write."""
    row = raw_row(doc)
    try:
        reference = model_line(row)
    except Exception:
        return  # the sink logs and skips such a row; whatever file_line does is not written
    assert file_line(row) == reference


def test_documents_of_other_forms_render_as_the_model_renders_them() -> None:
    """Integer ids, nulls, lower-case areas, a time unlike the row's: the model's line."""
    base = orjson.loads(row_of(rich_event(uid="u-1")).doc)
    changes = [
        lambda d: d["affectedObjects"][0].update(id=5),
        lambda d: d["author"].update(id=5),
        lambda d: d["author"].update(uri=None),
        lambda d: d["author"].pop("avatarUri"),
        lambda d: d["type"].update(area="security", level="full"),
        lambda d: d["type"].update(categoryI18nKey=None),
        lambda d: d["affectedObjects"][0].update(uri=None),
        lambda d: d["changedValues"][0].update({"from": None, "i18nKey": None}),
        lambda d: d["extraAttributes"][0].update(nameI18nKey=None),
        lambda d: d.update(source=None, uid=None, changedValues=None),
        lambda d: d.update(timestamp=1_709_294_400_000),
        lambda d: d.update(timestamp="2024-03-01T12:00:00.999Z"),
        lambda d: d.update(timestamp="2024-03-01T12:00:00.1234Z"),
        lambda d: d.update(id=999),
    ]
    for n, change in enumerate(changes):
        doc = orjson.loads(orjson.dumps(base))
        change(doc)
        row = StoredEvent(n + 1, 1_709_294_400_123, orjson.dumps(doc))
        assert file_line(row) == model_line(row), doc
