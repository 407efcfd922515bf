"""Property tests: no input makes the parsers fail any way but with a clear validation error."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailkeeper.api.atlassian_query import parse_events_request
from trailkeeper.errors import (
    BadRequestError,
    InvalidEventError,
    InvalidQueryError,
    PayloadTooLargeError,
)
from trailkeeper.ingest.body import split_items
from trailkeeper.model.parse import parse_batch
from trailkeeper.model.wire import decode_events

KEYS = ["type", "auditType", "timestamp", "author", "affectedObjects", "changedValues",
        "extraAttributes", "source", "uid", "category", "action", "area", "level", "id",
        "name", "key", "from", "to", "value", "epochSecond", "nano", "version", "x"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=20), st.sampled_from(["BASE", "AUDIT_LOG", "1.0",
                                                           "2024-01-01T00:00:00Z"]))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(KEYS), children, max_size=6)),
    max_leaves=25,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(json_values, min_size=1, max_size=5))
def test_any_json_either_parses_or_names_the_problem(items: list[Any]) -> None:
    try:
        events = parse_batch(items)
    except InvalidEventError as exc:
        assert exc.problems
        assert all(p.index is not None and p.field and p.message for p in exc.problems)
    else:
        for event in events:  # whatever parses can be rendered in both shapes
            json.dumps(event.to_rest())
            assert "\n" not in event.file_line()


@settings(max_examples=300)
@given(st.binary(max_size=300), st.sampled_from(["application/json", "application/x-ndjson",
                                                 "text/plain", "application/xml", None]))
def test_any_body_decodes_or_is_a_4xx(body: bytes, content_type: str | None) -> None:
    try:
        decode_events(split_items(body, content_type, max_events=100))
    except (BadRequestError, InvalidEventError, PayloadTooLargeError) as exc:
        assert 400 <= exc.http_status < 500


params = st.dictionaries(
    st.sampled_from(["from", "to", "offset", "limit", "pageCursor", "userIds", "categories",
                     "actions", "affectedObject", "search", "outputFormat", "scanLimit", "x"]),
    st.text(max_size=30), max_size=8)


@settings(max_examples=400)
@given(params)
def test_any_query_parameters_parse_or_list_their_problems(values: dict[str, str]) -> None:
    try:
        parse_events_request(values, now_ms=1_700_000_000_000)
    except InvalidQueryError as exc:
        assert exc.problems and all(p.key.startswith("validation.error.") for p in exc.problems)
