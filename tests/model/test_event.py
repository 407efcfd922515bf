"""The event model: both Atlassian shapes, exactly; validation that reports everything."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from trailkeeper.errors import InvalidEventError
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import AuditAuthor, AuditEvent, AuditResource, AuditType
from trailkeeper.model.parse import event_from_any, event_from_file, event_from_rest, parse_batch

# A real Bitbucket 7.18 audit log line (atlassian-audit.md §2.2).
FILE_LINE = (
    '{"affectedObjects":[{"id":"3","name":"AT","type":"PROJECT"}],"auditType":{"action":'
    '"Project deleted","actionI18nKey":"bitbucket.service.project.audit.action.projectdeleted",'
    '"area":"LOCAL_CONFIG_AND_ADMINISTRATION","category":"Projects","categoryI18nKey":'
    '"bitbucket.service.audit.category.projects","level":"BASE"},"author":{"id":"2","name":'
    '"admin","type":"NORMAL"},"changedValues":[],"extraAttributes":[{"name":"target",'
    '"nameI18nKey":"bitbucket.audit.attribute.legacy.target","value":"AT"}],"method":"Browser",'
    '"node":"8767044c-1b98-4d64-82db-ef29af8c3792","source":"10.100.100.2","system":'
    '"http://bitbucket.internal:7990","timestamp":{"epochSecond":1638036799,"nano":960000000},'
    '"version":"1.0"}'
)

# A real Bitbucket REST entity (atlassian-audit.md §2.1).
REST_ENTITY = {
    "timestamp": "2021-11-27T17:38:53.360Z",
    "author": {"name": "admin", "type": "NORMAL", "id": "2",
               "uri": "http://bitbucket.internal:7990/users/admin", "avatarUri": ""},
    "type": {"categoryI18nKey": "bitbucket.service.audit.category.usersandgroups",
             "category": "Users and groups",
             "actionI18nKey": "bitbucket.service.user.audit.action.userrenamed",
             "action": "Username changed"},
    "affectedObjects": [{"name": "test.user", "type": "USER", "id": "3"}],
    "changedValues": [{"key": "Username",
                       "i18nKey": "bitbucket.service.user.audit.attribute.user.name",
                       "from": "test", "to": "test.user"}],
    "source": "10.50.73.5", "system": "http://bitbucket.internal:7990",
    "node": "8767044c-1b98-4d64-82db-ef29af8c3792", "method": "Browser",
    "extraAttributes": [
        {"nameI18nKey": "bitbucket.audit.attribute.legacy.details", "name": "details",
         "value": '{"oldUsername":"test"}'},
        {"nameI18nKey": "bitbucket.audit.attribute.legacy.target", "name": "target",
         "value": "test.user"},
    ],
}


def test_file_line_round_trips_byte_for_byte() -> None:
    """Parsing a real Atlassian log line and writing it again gives the same bytes."""
    event = event_from_file(json.loads(FILE_LINE))
    assert event.file_line() == FILE_LINE


def test_rest_entity_round_trips_in_atlassian_key_order() -> None:
    """The REST shape keeps Atlassian's fields and order, adding only area and level."""
    rendered = event_from_rest(REST_ENTITY).to_rest()
    assert list(rendered) == list(REST_ENTITY)
    expected_type = {**REST_ENTITY["type"], "area": "ECOSYSTEM", "level": "BASE"}  # type: ignore[dict-item]
    assert rendered == {**REST_ENTITY, "type": expected_type}


def test_file_shape_and_rest_shape_describe_the_same_event() -> None:
    from_file = event_from_file(json.loads(FILE_LINE))
    again = event_from_rest(from_file.to_rest())
    assert again == from_file
    assert event_from_any(json.loads(FILE_LINE)) == from_file
    assert from_file.type.area is CoverageArea.LOCAL_CONFIG_AND_ADMINISTRATION


def test_file_shape_sorts_keys_and_omits_nulls() -> None:
    event = AuditEvent(type=AuditType("Projects", "Project created"),
                       author=AuditAuthor("1", "admin", "NORMAL"),
                       timestamp=datetime(2024, 1, 1, tzinfo=UTC),
                       affected_objects=[AuditResource("PROJECT", "P")])
    line = event.file_line()
    body = json.loads(line)
    assert line == json.dumps(body, sort_keys=True, separators=(",", ":"))
    assert "node" not in body and "id" not in body["affectedObjects"][0]
    assert body["timestamp"] == {"epochSecond": 1704067200, "nano": 0}
    assert body["version"] == "1.0"


def test_rest_timestamp_drops_the_fraction_at_whole_seconds() -> None:
    """Like Java's ISO_INSTANT, which Atlassian uses."""
    whole = dict(REST_ENTITY, timestamp="2021-11-27T17:38:53Z")
    assert event_from_rest(whole).to_rest()["timestamp"] == "2021-11-27T17:38:53Z"
    assert event_from_rest(REST_ENTITY).to_rest()["timestamp"] == "2021-11-27T17:38:53.360Z"


def test_changed_values_and_attributes_are_sorted_in_rest_output() -> None:
    body = dict(REST_ENTITY, changedValues=[{"key": "b"}, {"key": "a"}],
                extraAttributes=[{"name": "z", "value": "1"}, {"name": "m", "value": "2"}])
    rendered = event_from_rest(body).to_rest()
    assert [c["key"] for c in rendered["changedValues"]] == ["a", "b"]
    assert [a["name"] for a in rendered["extraAttributes"]] == ["m", "z"]


@pytest.mark.parametrize(("value", "expected_ms"), [
    ("2021-11-27T17:38:53.360Z", 1638034733360),
    ("2021-11-27T17:38:53.360+00:00", 1638034733360),
    (1638034733360, 1638034733360),
    ({"epochSecond": 1638034733, "nano": 360123456}, 1638034733360),
])
def test_timestamp_is_accepted_in_three_forms(value: object, expected_ms: int) -> None:
    event = event_from_rest({"type": {"category": "c", "action": "a"}, "timestamp": value})
    assert event.timestamp_ms == expected_ms


@pytest.mark.parametrize(("value", "message"), [
    ("2021-11-27T17:38:53+02:00", "not UTC"),
    ("2021-11-27T17:38:53", "no time zone"),
    ("yesterday", "not an ISO-8601"),
    ("2021-11-27", "no time of day"),
    (True, "must be"),
    (-5, "outside"),
    ({"epochSecond": 1, "nano": 2_000_000_000}, "nano"),
    ({"epochSecond": "1"}, "epochSecond"),
])
def test_bad_timestamps_are_refused_with_a_reason(value: object, message: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        event_from_rest({"type": {"category": "c", "action": "a"}, "timestamp": value})
    [problem] = info.value.problems
    assert problem.field == "timestamp"
    assert message in problem.message


def test_a_batch_reports_every_problem_with_its_index_and_field() -> None:
    items = [
        REST_ENTITY,
        {"type": {"area": "NOPE", "action": "a\nb"}, "affectedObjects": [{"type": "X"}],
         "bogus": 1},
        5,
        {"auditType": {"category": "c", "action": "a", "level": "OFF"}, "version": "2.0"},
    ]
    with pytest.raises(InvalidEventError) as info:
        parse_batch(items)
    found = {(p.index, p.field) for p in info.value.problems}
    assert found == {
        (1, "bogus"), (1, "type.area"), (1, "type.category"), (1, "type.action"),
        (1, "affectedObjects[0].name"), (2, "(event)"), (3, "auditType.level"),
        (3, "version"),
    }
    assert info.value.http_status == 400


@pytest.mark.parametrize("bad", ["a\x00b", "a\rb", "a\nb", "a\u2028b", "a\x1b[31mb", "a\x85b"])
def test_identifiers_with_control_characters_or_line_breaks_are_refused(bad: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        event_from_rest({"type": {"category": "c", "action": bad}})
    assert info.value.problems[0].field == "type.action"


def test_free_text_values_may_span_lines_but_hold_no_nul() -> None:
    """Changed values keep multi-line text (every renderer escapes it); NUL is refused."""
    body = {"type": {"category": "c", "action": "a"},
            "changedValues": [{"key": "Description", "from": "one\nline", "to": "two\r\nlines"}]}
    assert event_from_rest(body).changed_values[0].to_value == "two\r\nlines"
    body["changedValues"] = [{"key": "Description", "to": "nul\x00"}]
    with pytest.raises(InvalidEventError) as info:
        event_from_rest(body)
    assert info.value.problems[0].field == "changedValues[0].to"


def test_file_line_is_one_ascii_line_whatever_the_content() -> None:
    """U+2028 and friends are escaped: no reader can split a record in two."""
    event = event_from_rest({"type": {"category": "c", "action": "a"},
                             "changedValues": [{"key": "k", "to": "x\u2028y\u2029z\x85\n"}]})
    line = event.file_line()
    assert line.isascii()
    assert len(line.splitlines()) == 1
    assert event_from_file(json.loads(line)) == event


def test_display_names_come_from_the_catalogue_when_only_keys_are_given() -> None:
    event = event_from_rest({"type": {
        "categoryI18nKey": "bitbucket.service.audit.category.usersandgroups",
        "actionI18nKey": "bitbucket.service.user.audit.action.usercreated"}})
    assert (event.type.category, event.type.action) == ("Users and groups", "User created")
    with pytest.raises(InvalidEventError, match="not in the message catalogue"):
        event_from_rest({"type": {"category": "c", "actionI18nKey": "unknown.key"}})


def test_areas_and_levels_accept_atlassian_and_kebab_spellings() -> None:
    event = event_from_rest({"type": {"category": "c", "action": "a", "area": "user-management",
                                      "level": "advanced"}})
    assert event.type.area is CoverageArea.USER_MANAGEMENT
    assert event.type.level is CoverageLevel.ADVANCED


def test_numeric_ids_are_accepted_as_strings() -> None:
    event = event_from_rest({"type": {"category": "c", "action": "a"},
                             "author": {"id": 2, "name": "admin"},
                             "affectedObjects": [{"type": "PROJECT", "name": "P", "id": 3}]})
    assert event.author == AuditAuthor("2", "admin")
    assert event.affected_objects[0].id == "3"


def test_python_constructors_validate_too() -> None:
    with pytest.raises(InvalidEventError, match="action"):
        AuditType("Projects", "")
    with pytest.raises(InvalidEventError, match="timezone-aware"):
        AuditEvent(type=AuditType("c", "a"), timestamp=datetime(2024, 1, 1))
    with pytest.raises(InvalidEventError, match="uid"):
        AuditEvent(type=AuditType("c", "a"), uid="x" * 129)


def test_timestamps_are_normalised_to_utc_milliseconds() -> None:
    local = datetime(2024, 1, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    event = AuditEvent(type=AuditType("c", "a"), timestamp=local)
    assert event.timestamp == datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)


def test_lists_become_tuples_so_events_are_immutable_and_comparable() -> None:
    event = AuditEvent(type=AuditType("c", "a"), affected_objects=[AuditResource("T", "n")])
    assert isinstance(event.affected_objects, tuple)
    assert hash(event.type) == hash(AuditType("c", "a"))
