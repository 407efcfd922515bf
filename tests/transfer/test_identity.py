"""Imported events get uids from their content, and are encoded exactly as the store would."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.model.test_wire import event_like
from tests.transfer.helpers import sample_events
from trailkeeper.errors import InvalidEventError
from trailkeeper.model.event import AuditAuthor, AuditEvent, AuditType
from trailkeeper.model.parse import event_from_any
from trailkeeper.model.wire import decode_event
from trailkeeper.storage.rows import encode
from trailkeeper.transfer.identity import (
    Occurrences,
    assign_uid,
    content,
    encode_imported,
    imported_uid,
)


def uid_of(event: AuditEvent, occurrence: int = 0) -> str:
    return imported_uid(event, content(event)[1], occurrence)


def test_an_event_gets_the_same_uid_from_a_log_line_and_from_a_rest_export() -> None:
    for event in sample_events(20):
        from_file = decode_event(event.file_line().encode())
        from_rest = decode_event(orjson.dumps(event.to_rest()))
        atlassian_rest = event.to_rest()
        del atlassian_rest["type"]["area"], atlassian_rest["type"]["level"]
        from_atlassian_rest = decode_event(orjson.dumps(atlassian_rest))
        assert uid_of(from_file) == uid_of(from_rest) == uid_of(from_atlassian_rest)


def test_uids_differ_with_content_and_sort_by_time() -> None:
    events = sample_events(50)
    uids = [uid_of(e) for e in events]
    assert len(set(uids)) == len(uids)
    assert uids == sorted(uids)  # the demo events are in time order
    assert all(uid.startswith("imp-") and len(uid) <= 128 for uid in uids)
    untimed = dataclasses.replace(events[0], timestamp=None)
    assert uid_of(untimed).startswith("imp-none-")


def test_identical_records_of_one_source_are_numbered_so_each_is_kept() -> None:
    first, second = (content(e)[1] for e in sample_events(2))
    occurrences = Occurrences()
    assert occurrences.repeats(first + second + first + first) == {2: 1, 3: 2}
    assert occurrences.count(second) == 1
    event = sample_events(1)[0]
    assert uid_of(event, 2) == uid_of(event) + "-2"


def test_encoding_an_imported_event_is_byte_for_byte_what_the_store_encodes() -> None:
    events = sample_events(200)
    events.append(dataclasses.replace(events[0], timestamp=None))
    events.append(dataclasses.replace(events[1], author=None))
    events.append(AuditEvent(type=AuditType("Apps", "App enabled")))
    for event in events:
        document, content_digest = content(event)
        uid = imported_uid(event, content_digest, 0)
        assign_uid(event, uid)
        ours = encode_imported(event, document, received_ms=1_700_000_000_000)
        theirs = encode(event, 1_700_000_000_000, AuditAuthor.UNKNOWN)
        assert ours == theirs


def outcome(decode: Any, raw: bytes) -> Any:
    try:
        return decode(raw)
    except InvalidEventError as exc:
        return sorted((p.field, p.message) for p in exc.problems)


def file_shaped(value: dict[str, Any]) -> dict[str, Any]:
    """A REST-shaped dictionary as a log line would hold it."""
    shaped = {("auditType" if key == "type" else key): item for key, item in value.items()}
    shaped["version"] = "1.0"
    return shaped


def _reference(raw: bytes) -> Any:
    return event_from_any(orjson.loads(raw))


def test_the_caching_decoder_reads_real_lines_as_the_reference_does() -> None:
    """decode_event reuses the parts of earlier lines (model.wire's cache): a long run of
    real lines must still decode exactly as the reference parser reads them."""
    for _ in range(2):  # the second pass is served from the cache
        for event in sample_events(500):
            raw = event.file_line().encode()
            assert decode_event(raw) == _reference(raw) == event


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event_like, min_size=1, max_size=6))
def test_the_caching_decoder_agrees_with_the_reference_on_any_line(
        values: list[dict[str, Any]]) -> None:
    for value in values:
        for raw in (orjson.dumps(file_shaped(value)), orjson.dumps(value)):
            assert outcome(decode_event, raw) == outcome(_reference, raw)
