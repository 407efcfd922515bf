"""GET /api/v1/events: query language, paging, sorting, fields and every export format,
over real HTTP against both stores."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer, add_user, start_server, without_search_records
from tests.factories import ALICE, BOB, OTHER_PROJECT, PROJECT, REPO, event
from trailkeeper.auth.principals import Role
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.event import AuditAttribute, AuditAuthor, ChangedValue

URL = "/api/v1/events"


@pytest.fixture
def loaded(service: AuditService) -> AuditService:
    # Searches here must find exactly these events, not the records of earlier searches.
    without_search_records(service)
    service.submit([
        event("User created", category="Users and groups", author=BOB, minutes=1,
              objects=()),
        event("Repository created", minutes=2, objects=(PROJECT, REPO), source="10.0.0.1"),
        event("Repository deleted", minutes=3, objects=(PROJECT,), source="192.168.1.9"),
        event("Project created", category="Projects", minutes=4, objects=(OTHER_PROJECT,),
              extra_attributes=(AuditAttribute("Project Name", "=HYPERLINK(\"x\")"),)),
        event("Project permission changed", category="Projects", minutes=5, author=BOB,
              objects=(OTHER_PROJECT,),
              changed_values=(ChangedValue("Level", "5", "3"),)),
    ])
    return service


def actions(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["type"]["action"] for e in response.json()["events"]]


def test_query_language_selects_and_counts(loaded: AuditService, client: httpx.Client) -> None:
    response = client.get(URL, params={
        "q": 'action:"Repository created" AND object.type:PROJECT', "count": "true"})
    assert actions(response) == ["Repository created"]
    assert response.json()["total"] == 1
    assert actions(client.get(URL, params={"q": "source:10.0.0.0/8 OR ioLevel:[4 TO 6]"})) == [
        "Project permission changed", "Repository created"]


def test_category_and_author_parameters_combine_with_the_query(
    loaded: AuditService, client: httpx.Client
) -> None:
    response = client.get(URL, params=[("category", "Projects"), ("author", "bob")])
    assert actions(response) == ["Project permission changed"]
    response = client.get(URL, params=[("author", "alice"), ("author", BOB.id), ("q", "user")])
    assert actions(response) == ["User created"]


def test_keyset_pages_visit_every_event_once(loaded: AuditService, client: httpx.Client) -> None:
    seen: list[str] = []
    params: dict[str, str] = {"limit": "2"}
    while True:
        body = client.get(URL, params=params).json()
        seen += [e["type"]["action"] for e in body["events"]]
        if "next_cursor" not in body:
            break
        params["cursor"] = body["next_cursor"]
    assert len(seen) == 5 and len(set(seen)) == 5


def test_sort_by_another_field_pages_by_offset(loaded: AuditService,
                                                client: httpx.Client) -> None:
    first = client.get(URL, params={"sort": "action", "limit": "3"}).json()
    assert [e["type"]["action"] for e in first["events"]] == [
        "Project created", "Project permission changed", "Repository created"]
    assert first["next_offset"] == 3
    rest = client.get(URL, params={"sort": "audit.type+", "limit": "3", "offset": "3"}).json()
    assert [e["type"]["action"] for e in rest["events"]] == ["Repository deleted",
                                                             "User created"]
    assert "next_offset" not in rest
    oldest = client.get(URL, params={"sort": "timestamp+", "limit": "1"}).json()
    assert oldest["events"][0]["type"]["action"] == "User created"


def test_fields_project_each_event(loaded: AuditService, client: httpx.Client) -> None:
    body = client.get(URL, params={"fields": "audit.type,audit.user,sxProjectName",
                                   "q": "category:Projects", "sort": "id"}).json()
    assert body["events"] == [
        {"audit.type": "Project created", "audit.user": "alice",
         "sxProjectName": '=HYPERLINK("x")'},
        {"audit.type": "Project permission changed", "audit.user": "bob",
         "sxProjectName": ""},
    ]


def test_ndjson_export_is_the_file_shape_one_line_per_event(
    loaded: AuditService, client: httpx.Client
) -> None:
    response = client.get(URL, params={"format": "ndjson", "q": "category:Projects"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert 'filename="audit-log-' in response.headers["content-disposition"]
    lines = response.content.splitlines()
    assert len(lines) == 2
    first = orjson.loads(lines[0])
    assert first["auditType"]["action"] == "Project permission changed"
    assert first["version"] == "1.0" and "epochSecond" in first["timestamp"]


def test_csv_export_neutralises_formulas(loaded: AuditService, client: httpx.Client) -> None:
    response = client.get(URL, params={"format": "csv", "fields": "action,sxProjectName",
                                       "q": 'action:"Project created"'})
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["action", "sxProjectName"]
    assert rows[1] == ["Project created", "'=HYPERLINK(\"x\")"]
    default = list(csv.reader(io.StringIO(client.get(URL, params={"format": "csv"}).text)))
    assert default[0][:3] == ["Timestamp", "Author", "Author ID"] and len(default) == 6


def test_xml_and_text_exports(loaded: AuditService, client: httpx.Client) -> None:
    xml = client.get(URL, params={"format": "xml", "count": "true"})
    root = ET.fromstring(xml.content)
    assert len(root) == 5
    text = client.get(URL, params={"format": "text", "count": "true"}).text
    assert "Repository deleted" in text and "5 matching entries" in text


def test_exports_stream_every_row_without_a_limit(service: AuditService,
                                                  client: httpx.Client) -> None:
    service.submit([event(f"bulk {i}", minutes=i / 100) for i in range(2500)])
    with client.stream("GET", URL, params={"format": "ndjson"}) as response:
        lines = sum(chunk.count(b"\n") for chunk in response.iter_bytes())
    assert lines == 2500
    limited = client.get(URL, params={"format": "ndjson", "limit": "7", "offset": "1000"})
    assert len(limited.content.splitlines()) == 7


@pytest.mark.parametrize(("params", "words"), [
    ({"q": "action:x AND"}, "column 13"),
    ({"q": "nosuch:x"}, "unknown field 'nosuch'"),
    ({"sort": "changed.x"}, "cannot sort by"),
    ({"sort": "bogus"}, "unknown field 'bogus'"),
    ({"fields": "audit.type,bogus"}, "Parameter 'fields'"),
    ({"from": "yesterday"}, "Parameter 'from'"),
    ({"tz": "Mars/Base"}, "unknown time zone"),
    ({"sort": "action", "cursor": "1,1"}, "cursors page in time order"),
    ({"cursor": "garbage"}, "Parameter 'cursor'"),
    ({"format": "pdf"}, "format"),
    ({"limit": "20000"}, "at most 10000"),
])
def test_bad_parameters_are_400_naming_the_problem(
    client: httpx.Client, params: dict[str, str], words: str
) -> None:
    response = client.get(URL, params=params)
    assert response.status_code == 400, response.text
    assert words in response.text


def test_a_query_error_names_the_parameter_and_column(client: httpx.Client) -> None:
    body = client.get(URL, params={"q": "action:(a OR"}).json()
    assert body["errors"] == [{"parameter": "q", "column": 13,
                               "message": body["errors"][0]["message"]}]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from(list('ab:*?"()[]{} TO AND OR NOT-+\\/~^é10.')),
               max_size=30))
def test_generated_queries_never_cause_a_server_error(client: httpx.Client, q: str) -> None:
    response = client.get(URL, params={"q": q, "limit": "3"})
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert "column" in response.json()["errors"][0]


def test_plain_users_search_and_export_only_their_own_events(
    service: AuditService, tmp_path: Path
) -> None:
    service.submit([event("mine", author=AuditAuthor("carol", "carol", "NORMAL")),
                    event("not mine", author=ALICE)])
    add_user(service.storage, "carol", "carol-secret-1", Role.USER)
    with start_server(service, tmp_path) as live, \
            live.client(auth=("carol", "carol-secret-1")) as carol:
        assert actions(carol.get(URL, params={"q": "*", "count": "true"})) == ["mine"]
        assert service.flush(10)
        exported = carol.get(URL, params={"format": "ndjson"}).content.splitlines()
        # Her own events: "mine" and the record of her search before (alice's never).
        assert [orjson.loads(line)["auditType"]["action"] for line in exported] == [
            "Audit Log search performed", "mine"]
        classes = carol.get("/api/v1/classes").json()["classes"]
        assert classes and not any(c["readable"] for c in classes)


def test_class_listing_and_fields(loaded: AuditService, server: LiveServer,
                                  client: httpx.Client) -> None:
    classes = client.get("/api/v1/classes").json()["classes"]
    assert {c["name"] for c in classes} == {"Users and groups", "Repositories", "Projects"}
    assert all(c["readable"] for c in classes)
    fields = client.get("/api/v1/classes/fields", params={"class": "Projects"}).json()
    assert "audit.stamp" in fields["standard"]
    assert fields["classes"] == [{"name": "Projects", "fields": [
        "soLevel", "snLevel", "ioLevel", "inLevel", "sxProjectName"]}]


def test_an_export_resumes_from_a_pages_cursor(loaded: AuditService,
                                               client: httpx.Client) -> None:
    first = client.get(URL, params={"limit": "2"}).json()
    rest = client.get(URL, params={"format": "ndjson", "cursor": first["next_cursor"]})
    ids = [e["id"] for e in first["events"]] + \
        [orjson.loads(line)["id"] for line in rest.content.splitlines()]
    assert len(ids) == 5 == len(set(ids))
    assert ids == sorted(ids, reverse=True)
