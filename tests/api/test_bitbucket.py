"""Bitbucket's per-project and per-repository views and the project-key lookup."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import OTHER_PROJECT, PROJECT, REPO, event
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.event import AuditResource

SAME_SLUG_ELSEWHERE = AuditResource("REPOSITORY", "rep_1", "70")


@pytest.fixture
def loaded(service: AuditService) -> AuditService:
    service.submit([event(f"project event {i}", minutes=i, objects=(PROJECT,))
                    for i in range(5)])
    service.submit([event(f"repo event {i}", minutes=10 + i, objects=(PROJECT, REPO))
                    for i in range(3)])
    service.submit([event("elsewhere", minutes=20, objects=(OTHER_PROJECT, SAME_SLUG_ELSEWHERE))])
    return service


def test_project_view_pages_in_bitbucket_format(loaded: AuditService,
                                                client: httpx.Client) -> None:
    first = client.get("/rest/audit/1.0/projects/PRJ/events", params={"limit": 5}).json()
    assert set(first) == {"size", "limit", "isLastPage", "values", "start", "nextPageStart"}
    assert (first["size"], first["limit"], first["start"], first["isLastPage"]) == (5, 5, 0, False)
    assert first["values"][0]["type"]["action"] == "repo event 2"
    second = client.get("/rest/audit/latest/projects/PRJ/events",
                        params={"start": first["nextPageStart"], "limit": 5}).json()
    assert second["size"] == 3 and second["isLastPage"] is True
    assert "nextPageStart" not in second


def test_repository_view_only_shows_that_repository(loaded: AuditService,
                                                    client: httpx.Client) -> None:
    page = client.get("/rest/audit/latest/projects/PRJ/repos/rep_1/events").json()
    assert [v["type"]["action"] for v in page["values"]] == [
        "repo event 2", "repo event 1", "repo event 0"]
    other = client.get("/rest/audit/latest/projects/OPS/repos/rep_1/events").json()
    assert [v["type"]["action"] for v in other["values"]] == ["elsewhere"]


def test_unknown_project_or_repository_is_404_in_bitbucket_format(
        loaded: AuditService, client: httpx.Client) -> None:
    response = client.get("/rest/audit/latest/projects/NOPE/events")
    assert response.status_code == 404
    assert response.json()["errors"][0]["message"] == "Project NOPE does not exist."
    response = client.get("/rest/audit/latest/projects/PRJ/repos/missing/events")
    assert response.status_code == 404
    assert "NoSuchRepositoryException" in response.json()["errors"][0]["exceptionName"]
    assert client.get("/rest/audit/2.0/projects/PRJ/events").status_code == 404


def test_project_lookup_gives_the_id_for_a_key(loaded: AuditService,
                                               client: httpx.Client) -> None:
    assert client.get("/rest/api/1.0/projects/PRJ").json() == {"key": "PRJ", "id": 1,
                                                               "name": "PRJ"}
    assert client.get("/rest/api/latest/projects/prj").json()["id"] == 1
    assert client.get("/rest/api/latest/projects/NOPE").status_code == 404


def test_bad_paging_parameters_are_400_naming_them(loaded: AuditService,
                                                   client: httpx.Client) -> None:
    response = client.get("/rest/audit/latest/projects/PRJ/events", params={"start": -1,
                                                                           "limit": "x"})
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"query.start", "query.limit"}
