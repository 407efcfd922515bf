"""The fast decoder agrees with the reference parser on every input."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.model.test_event import FILE_LINE, REST_ENTITY
from tests.model.test_fuzz import json_values
from trailkeeper.demo import demo_events
from trailkeeper.errors import InvalidEventError
from trailkeeper.model.parse import event_from_any
from trailkeeper.model.wire import decode_event, decode_events


def reference(raw: bytes) -> Any:
    try:
        return event_from_any(orjson.loads(raw))
    except InvalidEventError as exc:
        return sorted((p.field, p.message) for p in exc.problems)


def fast(raw: bytes) -> Any:
    try:
        return decode_event(raw)
    except InvalidEventError as exc:
        return sorted((p.field, p.message) for p in exc.problems)


def test_real_atlassian_shapes_decode_identically() -> None:
    for raw in (FILE_LINE.encode(), orjson.dumps(REST_ENTITY)):
        assert fast(raw) == reference(raw)


def test_demo_events_round_trip_through_both_shapes() -> None:
    for event in demo_events(300, end_ms=1_700_000_000_000):
        for raw in (orjson.dumps(event.to_rest()), event.file_line().encode()):
            assert decode_event(raw) == event


event_like = st.fixed_dictionaries(
    {"type": st.fixed_dictionaries({"category": st.text(max_size=8),
                                    "action": st.text(max_size=8)},
                                   optional={"area": st.sampled_from(
                                       ["AUDIT_LOG", "audit-log", "x", "ECOSYSTEM"]),
                                       "level": st.sampled_from(["BASE", "full", "OFF"])})},
    optional={
        "uid": st.one_of(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1)),
        "timestamp": st.one_of(st.integers(-5, 2**41), st.text(max_size=5),
                               st.just("2024-01-01T00:00:00.5Z"),
                               st.fixed_dictionaries({"epochSecond": st.integers(0, 2**31),
                                                      "nano": st.integers(-1, 10**9)})),
        "author": st.one_of(st.none(), st.fixed_dictionaries(
            {"id": st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=4))},
            optional={"name": st.text(max_size=4), "avatarUri": st.text(max_size=3)})),
        "affectedObjects": st.lists(st.fixed_dictionaries(
            {"type": st.text(max_size=4), "name": st.text(max_size=4)},
            optional={"id": st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=3))}),
            max_size=3),
        "changedValues": st.lists(st.fixed_dictionaries(
            {"key": st.text(max_size=4)}, optional={"to": st.text(max_size=4)}), max_size=2),
        "source": st.one_of(st.none(), st.text(max_size=6)),
        "id": json_values,
    },
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(event_like, json_values))
def test_fast_and_reference_decoders_agree(value: Any) -> None:
    raw = orjson.dumps(value)
    assert fast(raw) == reference(raw)


@settings(max_examples=200)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_are_an_invalid_event_not_a_crash(raw: bytes) -> None:
    try:
        decode_event(raw)
    except InvalidEventError as exc:
        assert exc.problems


def test_decode_events_reports_problems_of_every_item_with_its_index() -> None:
    good = orjson.dumps(REST_ENTITY)
    with pytest.raises(InvalidEventError) as info:
        decode_events([good, b"{bad", good, b'{"type":{"category":"c"}}'])
    assert {(p.index, p.field) for p in info.value.problems} == {(1, "(event)"),
                                                                 (3, "type.action")}
