"""GET /rest/auditing/1.0/events: Atlassian's parameters, paging, CSV and error bodies."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, start_server, without_search_records
from tests.factories import ALICE, BOB, OTHER_PROJECT, OTHER_REPO, PROJECT, REPO, event
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.event import AuditAttribute, AuditResource, ChangedValue

URL = "/rest/auditing/1.0/events"


def entities(response: httpx.Response) -> list[dict]:  # type: ignore[type-arg]
    assert response.status_code == 200, response.text
    return response.json()["entities"]  # type: ignore[no-any-return]


def actions(response: httpx.Response) -> list[str]:
    return [e["type"]["action"] for e in entities(response)]


@pytest.fixture
def loaded(service: AuditService) -> AuditService:
    # Searches here must find exactly these events (scanLimit counts the latest rows), not
    # the records of the test's own earlier searches.
    without_search_records(service)
    service.submit([
        event("User created", category="Users and groups", author=BOB, minutes=1,
              objects=(AuditResource("USER", "carol", "13"),)),
        event("Repository created", minutes=2, objects=(PROJECT, REPO), source="10.0.0.1"),
        event("Repository deleted", minutes=3, objects=(PROJECT, OTHER_REPO)),
        event("Project created", category="Projects", minutes=4, objects=(OTHER_PROJECT,)),
        event("Repository modified", minutes=5, objects=(OTHER_PROJECT, REPO),
              changed_values=(ChangedValue("Description", "a", "b"),)),
    ])
    return service


def test_empty_store_gives_atlassians_empty_page(client: httpx.Client) -> None:
    response = client.get(URL)
    assert response.json() == {"entities": [], "pagingInfo": {"lastPage": True, "size": 0}}


def test_entities_are_newest_first_with_ids(loaded: AuditService, client: httpx.Client) -> None:
    found = entities(client.get(URL))
    assert [e["type"]["action"] for e in found] == [
        "Repository modified", "Project created", "Repository deleted", "Repository created",
        "User created"]
    assert all(isinstance(e["id"], int) for e in found)
    assert found[0]["timestamp"] == "2024-03-01T12:05:00Z"


def test_following_next_page_link_visits_every_event_once(service: AuditService,
                                                          client: httpx.Client) -> None:
    service.submit([event(f"e{i}", minutes=i // 4) for i in range(23)])
    url, seen = f"{URL}?limit=5&from=2024-03-01T00:00:00Z", []
    while True:
        body = client.get(url).json()
        seen.extend(e["id"] for e in body["entities"])
        paging = body["pagingInfo"]
        if paging["lastPage"]:
            assert set(paging) == {"lastPage", "size"}
            break
        assert paging["nextPageOffset"] == 0
        assert paging["nextPageCursor"] in paging["nextPageLink"].replace("%2C", ",")
        assert "from=2024-03-01T00" in paging["nextPageLink"]  # filters are kept
        url = paging["nextPageLink"]
    assert len(seen) == 23 and len(set(seen)) == 23


def test_page_cursor_continues_after_the_given_event(loaded: AuditService,
                                                     client: httpx.Client) -> None:
    first = client.get(URL, params={"limit": 2}).json()
    cursor = first["pagingInfo"]["nextPageCursor"]
    following = client.get(URL, params={"limit": 2, "pageCursor": cursor})
    assert actions(following) == ["Repository deleted", "Repository created"]


def test_from_and_to_are_inclusive(loaded: AuditService, client: httpx.Client) -> None:
    response = client.get(URL, params={"from": "2024-03-01T12:02:00Z",
                                       "to": "2024-03-01T12:04:00.000Z"})
    assert actions(response) == ["Project created", "Repository deleted", "Repository created"]


def test_offset_skips_rows(loaded: AuditService, client: httpx.Client) -> None:
    assert actions(client.get(URL, params={"offset": 3, "limit": 1})) == ["Repository created"]


def test_user_ids_categories_and_actions_are_comma_lists(loaded: AuditService,
                                                         client: httpx.Client) -> None:
    assert actions(client.get(URL, params={"userIds": f"{BOB.id},999"})) == ["User created"]
    assert actions(client.get(URL, params={"categories": "Projects,Users and groups"})) == [
        "Project created", "User created"]
    assert actions(client.get(URL, params={"actions": "Repository created,Project created"})) == [
        "Project created", "Repository created"]
    # Exact and case-sensitive, as in Atlassian.
    assert actions(client.get(URL, params={"actions": "repository created"})) == []


def test_affected_object_is_and_across_types_or_within_a_type(loaded: AuditService,
                                                              client: httpx.Client) -> None:
    both = client.get(URL, params={"affectedObject": "PROJECT,1;REPOSITORY,7"})
    assert actions(both) == ["Repository created"]
    spaced = "PROJECT,1; REPOSITORY,7 ;REPOSITORY,8"
    either_repo = client.get(URL, params={"affectedObject": spaced})
    assert actions(either_repo) == ["Repository deleted", "Repository created"]
    any_project = client.get(URL, params={"affectedObject": "project,1;PROJECT,2"})
    assert len(entities(any_project)) == 4


def test_search_ors_its_words_over_names_and_values(loaded: AuditService,
                                                    client: httpx.Client) -> None:
    assert actions(client.get(URL, params={"search": "carol"})) == ["User created"]
    assert actions(client.get(URL, params={"search": "CAROL 10.0.0.1"})) == [
        "Repository created", "User created"]
    assert "Repository modified" in actions(client.get(URL, params={"search": "description"}))


def test_scan_limit_looks_only_at_the_latest_rows(loaded: AuditService,
                                                  client: httpx.Client) -> None:
    assert len(entities(client.get(URL, params={"scanLimit": 1}))) == 2
    assert len(entities(client.get(URL, params={"scanLimit": 100}))) == 5


def test_every_failing_parameter_is_listed_with_atlassians_key(client: httpx.Client) -> None:
    response = client.get(URL, params={
        "from": "yesterday", "to": "2024-13-01T00:00:00Z", "offset": "-1", "limit": "lots",
        "pageCursor": "abc", "userIds": "x" * 201, "categories": "A,,B", "actions": ",",
        "affectedObject": "PROJECT", "search": "s" * 101, "outputFormat": "xml",
        "scanLimit": "0"})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400 and body["message"] == "Invalid Query"
    assert body["timestamp"].endswith("Z")
    keys = {(e["parameter"], e["key"]) for e in body["errors"]}
    assert keys == {
        ("from", "validation.error.from.invalid"), ("to", "validation.error.to.invalid"),
        ("offset", "validation.error.to.invalid"), ("limit", "validation.error.limit.not.number"),
        ("pageCursor", "validation.error.cursor.invalid"),
        ("userIds", "validation.error.user.ids.invalid"),
        ("categories", "validation.error.categories.empty"),
        ("actions", "validation.error.actions.empty"),
        ("affectedObject", "validation.error.affected.objects.invalid"),
        ("search", "validation.error.search.too.long"),
        ("outputFormat", "validation.error.format"),
        ("scanLimit", "validation.error.scan.limit.invalid"),
    }


@pytest.mark.parametrize(("limit", "key"), [("0", "validation.error.limit.small"),
                                             ("100001", "validation.error.limit.small")])
def test_limit_outside_1_to_100000_is_invalid(client: httpx.Client, limit: str, key: str) -> None:
    response = client.get(URL, params={"limit": limit})
    assert response.status_code == 400
    assert response.json()["errors"][0]["key"] == key


def test_json_pages_are_capped_at_10000(client: httpx.Client) -> None:
    response = client.get(URL, params={"limit": 10_001})
    assert response.status_code == 400
    assert response.json()["message"] == "Maximum allowed page size is 10000"
    assert client.get(URL, params={"limit": 10_000}).status_code == 200


def test_csv_export_has_atlassians_twelve_columns(loaded: AuditService,
                                                  client: httpx.Client) -> None:
    response = client.get(URL, params={"outputFormat": "csv", "limit": 20_000})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Auditing Export ')
    assert disposition.endswith('Z.csv"')
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["Timestamp", "Author", "Author ID", "Category", "Summary", "System",
                       "Affected objects", "Changed values", "Source", "Method", "Node",
                       "Attributes"]
    assert len(rows) == 6 and all(len(r) == 12 for r in rows)
    newest = rows[1]
    assert newest[0] == "2024-03-01T12:05:00Z[UTC]"
    assert newest[1:5] == ["alice", ALICE.id, "Repositories", "Repository modified"]
    assert newest[6] == "OPS (PROJECT, id 2), rep_1 (REPOSITORY, id 7)"
    assert newest[7] == "Description: a -> b"


def test_csv_cells_cannot_run_as_spreadsheet_formulas(service: AuditService,
                                                      client: httpx.Client) -> None:
    service.submit([event("=HYPERLINK(\"http://evil\")", category="+cmd|' /C calc'!A0",
                          extra_attributes=(AuditAttribute("@x", "-2+3"),),
                          author=ALICE)])
    rows = list(csv.reader(io.StringIO(client.get(URL, params={"outputFormat": "csv"}).text)))
    cells = rows[1]
    assert cells[4].startswith("'=") and cells[3].startswith("'+")
    for cell in cells:
        assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell


def test_csv_uses_offset_and_limit_and_ignores_the_cursor(loaded: AuditService,
                                                          client: httpx.Client) -> None:
    response = client.get(URL, params={"outputFormat": "csv", "offset": 1, "limit": 2,
                                       "pageCursor": "1,1"})
    rows = list(csv.reader(io.StringIO(response.text)))
    assert [r[4] for r in rows[1:]] == ["Project created", "Repository deleted"]


def test_plain_users_may_not_read_the_global_log(server: LiveServer) -> None:
    from tests.conftest import add_user
    from trailkeeper.auth.principals import Role

    add_user(server.service.storage, "pat", "pat-password", Role.USER)
    with server.client(auth=("pat", "pat-password")) as pat:
        response = pat.get(URL)
    assert response.status_code == 403
    assert response.json()["message"] == "The user is not allowed to view audit events"


def test_lookups_list_authors_and_resources(loaded: AuditService, client: httpx.Client) -> None:
    authors = client.get("/rest/auditing/1.0/lookup/author").json()["entities"]
    assert {a["name"] for a in authors} == {"alice", "bob"}
    repos = client.get("/rest/auditing/1.0/lookup/resource/REPOSITORY",
                       params={"search": "rep"}).json()["entities"]
    assert {r["name"] for r in repos} == {"rep_1", "rep_2"}


@pytest.fixture
def bitbucket(service: AuditService, tmp_path: Path) -> Iterator[LiveServer]:
    with start_server(service, tmp_path, context_path="/bitbucket") as live:
        yield live


def test_seed_curl_commands_work_verbatim_under_the_context_path(
        bitbucket: LiveServer, service: AuditService) -> None:
    """The exact URLs of the Soteri Security for Bitbucket instructions (seed 000)."""
    hook = ("Soteri Security for Bitbucket", "Security hook skipped")
    service.submit([
        event(hook[1], category=hook[0], objects=(PROJECT, REPO)),
        event("Repository created", minutes=1, objects=(PROJECT, REPO)),
        event(hook[1], category=hook[0], minutes=2, objects=(OTHER_PROJECT, OTHER_REPO)),
    ])
    origin = f"http://127.0.0.1:{bitbucket.port}"
    with httpx.Client(auth=("admin", "correct horse battery staple")) as curl:
        url = (f"{origin}/bitbucket/rest/auditing/1.0/events?actions=Security%20hook%20skipped"
               "&categories=Soteri%20Security%20for%20Bitbucket&limit=100&outputFormat=csv")
        rows = list(csv.reader(io.StringIO(curl.get(url).text)))
        assert [r[4] for r in rows[1:]] == ["Security hook skipped"] * 2

        url = (f"{origin}/bitbucket/rest/auditing/1.0/events?affectedObject=PROJECT,1;PROJECT,2;"
               "REPOSITORY,7;REPOSITORY,8&limit=10&outputFormat=csv")
        assert len(list(csv.reader(io.StringIO(curl.get(url).text)))) == 4

        project = curl.get(f"{origin}/bitbucket/rest/api/latest/projects/PRJ").json()
        assert project == {"key": "PRJ", "id": 1, "name": "PRJ"}

        for base in (f"{origin}/bitbucket", origin):
            page = curl.get(f"{base}/rest/audit/latest/projects/PRJ/repos/rep_1/events").json()
            assert page["size"] == 2 and page["isLastPage"] is True

        json_page = curl.get(f"{origin}/bitbucket/rest/auditing/1.0/events?limit=1").json()
        assert json_page["pagingInfo"]["nextPageLink"].startswith(
            f"{origin}/bitbucket/rest/auditing/1.0/events?")
