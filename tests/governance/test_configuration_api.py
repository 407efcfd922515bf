"""Atlassian's configuration API over real HTTP, on both stores: bodies, permissions, bad
input, change records, and the policy taking effect on ingest (on every node)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, add_user
from tests.factories import event
from trailkeeper.api import configuration
from trailkeeper.auth.principals import Role
from trailkeeper.governance import manage
from trailkeeper.governance.changes import CONFIG_UPDATED
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import AuditAuthor
from trailkeeper.query.ast import In

BASE = "/rest/auditing/1.0"
DEFAULT_COVERAGE = {"audit-log": "base", "global-config-and-administration": "base",
                    "user-management": "base", "permissions": "base",
                    "local-config-and-administration": "base", "security": "base",
                    "end-user-activity": "base", "ecosystem": "base"}


@pytest.fixture
def users(service: AuditService, server: LiveServer) -> Iterator[dict[str, httpx.Client]]:
    add_user(service.storage, "ada", "ada-pw", Role.ADMIN)
    add_user(service.storage, "aud", "aud-pw", Role.AUDITOR)
    add_user(service.storage, "joe", "joe-pw", Role.USER)
    clients = {"sysadmin": server.client(), "admin": server.client(("ada", "ada-pw")),
               "auditor": server.client(("aud", "aud-pw")),
               "user": server.client(("joe", "joe-pw")), "anonymous": server.client(None)}
    yield clients
    for c in clients.values():
        c.close()


def _records(service: AuditService) -> list[dict[str, Any]]:
    rows = service.search_rows(In("action", (CONFIG_UPDATED,)), limit=100).events
    return [row.to_event().to_rest() for row in rows]


def test_coverage_get_and_partial_put(client: httpx.Client, service: AuditService) -> None:
    assert client.get(f"{BASE}/configuration/coverage").json() == {
        "levelByArea": DEFAULT_COVERAGE}
    answer = client.put(f"{BASE}/configuration/coverage",
                        json={"levelByArea": {"security": "full", "end-user-activity": "off"}})
    assert answer.status_code == 200
    expected = DEFAULT_COVERAGE | {"security": "full", "end-user-activity": "off"}
    assert answer.json() == {"levelByArea": expected}
    assert client.get(f"{BASE}/configuration/coverage").json() == {"levelByArea": expected}
    [record] = _records(service)
    assert record["author"]["name"] == "admin"
    assert record["type"]["area"] == "AUDIT_LOG" and record["type"]["level"] == "BASE"
    changes = {(c["from"], c["to"]) for c in record["changedValues"]}
    assert changes == {("security : base", "security : full"),
                       ("end_user_activity : base", "end_user_activity : off")}
    assert {c["i18nKey"] for c in record["changedValues"]} == {
        "atlassian.audit.event.change.coverage.level"}


def test_coverage_applies_to_ingest_at_once(client: httpx.Client) -> None:
    body = [{"type": {"category": "Login", "action": "User login failed", "area": "SECURITY",
                      "level": "ADVANCED"}},
            {"type": {"category": "Login", "action": "User logged in", "area": "SECURITY",
                      "level": "BASE"}}]
    first = client.post("/api/v1/events", json=body)
    assert first.status_code == 201
    assert first.json()["ids"][0] is None and isinstance(first.json()["ids"][1], int)
    assert first.json()["not_recorded"] == [{"index": 0, "reason": "coverage"}]
    client.put(f"{BASE}/configuration/coverage",
               json={"levelByArea": {"security": "advanced"}})
    second = client.post("/api/v1/events", json=body).json()
    assert all(isinstance(i, int) for i in second["ids"]) and "not_recorded" not in second
    metrics = client.get("/metrics").text
    assert 'trailkeeper_events_not_recorded_total{reason="coverage"} 1.0' in metrics


@pytest.mark.parametrize("body", [
    {"levelByArea": {"nowhere": "base"}},
    {"levelByArea": {"security": "loud"}},
    {"levelByArea": {"security": 3}},
    {"levelByArea": {"security": None}},
    {"levelByArea": ["security"]},
    {"levels": {}},
    {"levelByArea": {"security": "full"}, "extra": 1},
    ["security"],
    "full",
])
def test_bad_coverage_bodies_are_400_and_change_nothing(
        client: httpx.Client, service: AuditService, body: Any) -> None:
    answer = client.put(f"{BASE}/configuration/coverage", json=body)
    assert answer.status_code == 400
    error = answer.json()
    assert error["status"] == 400 and error["message"] and error["errors"] == []
    assert "timestamp" in error
    # A valid area alongside a bad one is not applied either.
    mixed = client.put(f"{BASE}/configuration/coverage",
                       json={"levelByArea": {"security": "full", "bogus": "off"}})
    assert mixed.status_code == 400 and "bogus" in mixed.json()["message"]
    assert client.get(f"{BASE}/configuration/coverage").json() == {
        "levelByArea": DEFAULT_COVERAGE}
    assert _records(service) == []


def test_malformed_json_is_a_400(client: httpx.Client) -> None:
    answer = client.put(f"{BASE}/configuration/coverage", content=b"{not json",
                        headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["message"]


def test_denylist_put_post_get(client: httpx.Client, service: AuditService) -> None:
    assert client.get(f"{BASE}/configuration/denylist").json() == {"actions": []}
    put = client.put(f"{BASE}/configuration/denylist",
                     json={"actions": ["User logged in", "Repository created"]})
    assert put.json() == {"actions": ["Repository created", "User logged in"]}
    post = client.post(f"{BASE}/configuration/denylist",
                       json={"add": ["Branch deleted", "User logged in"],
                             "delete": ["Repository created"]})
    assert post.json() == {"actions": ["Branch deleted", "User logged in"]}
    stored = client.post("/api/v1/events", json=[
        {"type": {"category": "Branches", "action": "Branch deleted"}},
        {"type": {"category": "Branches", "action": "Branch created"}}]).json()
    assert stored["ids"][0] is None
    assert stored["not_recorded"] == [{"index": 0, "reason": "denylist"}]
    records = _records(service)
    assert len(records) == 2
    lists = [(c["from"], c["to"]) for r in records for c in r["changedValues"]]
    assert ("[]", "[Repository created, User logged in]") in lists
    assert ("[Repository created, User logged in]", "[Branch deleted, User logged in]") in lists


@pytest.mark.parametrize(("method", "body", "words"), [
    ("put", {"actions": [f"action {i}" for i in range(10_000)]}, "at most 1,000"),
    ("put", {"actions": "User logged in"}, "list"),
    ("put", {"actions": [1, 2]}, "actions[0] must be a string"),
    ("put", {"actions": ["ok", ""]}, "actions[1] must not be empty"),
    ("put", {"actions": ["x" * 300]}, "at most 255"),
    ("post", {"add": "x"}, "add must be a list"),
    ("post", {"add": [None]}, "add[0] must be a string"),
    ("post", {}, "add"),
])
def test_bad_denylist_bodies_are_400_and_change_nothing(
        client: httpx.Client, method: str, body: Any, words: str) -> None:
    client.put(f"{BASE}/configuration/denylist", json={"actions": ["Kept"]})
    answer = client.request(method.upper(), f"{BASE}/configuration/denylist", json=body)
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["message"]
    assert client.get(f"{BASE}/configuration/denylist").json() == {"actions": ["Kept"]}


def test_retention_and_file_retention(client: httpx.Client, service: AuditService) -> None:
    assert client.get(f"{BASE}/configuration/retention").json() == {
        "period": {"years": 3, "months": 0, "days": 0}, "maxRows": 10_000_000}
    answer = client.put(f"{BASE}/configuration/retention",
                        json={"period": {"years": 1, "months": 6, "days": 0}})
    assert answer.json()["period"] == {"years": 1, "months": 6, "days": 0}
    assert client.get(f"{BASE}/configuration/retention/file").json() == {"maxFileCount": 100}
    assert client.put(f"{BASE}/configuration/retention/file",
                      json={"maxFileCount": 7}).json() == {"maxFileCount": 7}
    changes = {(c["key"], c["from"], c["to"]) for r in _records(service)
               for c in r["changedValues"]}
    assert ("Retention period", "3 Years", "1 Year 6 Months") in changes
    assert ("Retention file count", "100", "7") in changes


@pytest.mark.parametrize(("path", "body"), [
    ("retention", {"period": {"years": -1}}),
    ("retention", {"period": {"years": 10**9}}),
    ("retention", {"period": {"days": "30"}}),
    ("retention", {"period": {"weeks": 2}}),
    ("retention", {"period": {"years": 0, "months": 0, "days": 0}}),
    ("retention", {"period": 3}),
    ("retention", {}),
    ("retention", {"maxRows": 5}),
    ("retention/file", {"maxFileCount": 0}),
    ("retention/file", {"maxFileCount": "100"}),
    ("retention/file", {"maxFileCount": 1.5}),
    ("retention/file", {"maxFileCount": True}),
    ("retention/file", {}),
])
def test_bad_retention_bodies_are_400_and_change_nothing(
        client: httpx.Client, service: AuditService, path: str, body: Any) -> None:
    before = client.get(f"{BASE}/configuration/{path}").json()
    answer = client.put(f"{BASE}/configuration/{path}", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"]
    assert client.get(f"{BASE}/configuration/{path}").json() == before
    assert _records(service) == []


@pytest.mark.parametrize("path", ["coverage", "retention", "retention/file", "denylist"])
def test_view_is_for_admins_and_change_for_sysadmins(
        users: dict[str, httpx.Client], path: str) -> None:
    url = f"{BASE}/configuration/{path}"
    assert users["sysadmin"].get(url).status_code == 200
    assert users["admin"].get(url).status_code == 200
    for who in ("auditor", "user"):
        denied = users[who].get(url)
        assert denied.status_code == 403
        assert denied.json()["status-code"] == 403
        assert "not allowed to view" in denied.json()["message"]
    assert users["anonymous"].get(url).status_code == 401
    body = users["sysadmin"].get(url).json()
    for who in ("admin", "auditor", "user"):
        refused = users[who].put(url, json=body)
        assert refused.status_code == 403
        assert "not allowed to update" in refused.json()["message"]
    assert users["sysadmin"].put(url, json=body).status_code == 200


def test_a_change_reaches_another_node_within_two_seconds(
        db_url: str, client: httpx.Client) -> None:
    other = AuditService.open(db_url)  # a second node on the same store
    try:
        other.submit([event("Deny me")])
        client.put(f"{BASE}/configuration/denylist", json={"actions": ["Deny me"]})
        started = time.monotonic()
        while other.governance.config.denylist != frozenset({"Deny me"}):
            assert time.monotonic() - started < 2.0, "the other node did not see the change"
            time.sleep(0.05)
        result = other.submit([event("Deny me"), event("Keep me")])
        assert len(result.ids) == 1
        assert other.count(In("action", ("Deny me",))) == 1  # only the one from before
    finally:
        other.close()


def test_in_process_events_follow_the_policy(service: AuditService, tmp_path: Path) -> None:
    manage.update(service, manage.coverage_values({"levelByArea": {"security": "off"}}),
                  AuditAuthor.SYSTEM)
    service.audit(event("Signed in", area=CoverageArea.SECURITY))
    service.audit(event("Kept", area=CoverageArea.PERMISSIONS, level=CoverageLevel.BASE))
    service.audit(event("Too detailed", area=CoverageArea.PERMISSIONS,
                        level=CoverageLevel.FULL))
    service.flush()
    actions = {row.to_event().type.action for row in service.search_rows(limit=10).events}
    assert actions == {"Kept", CONFIG_UPDATED}


def test_database_usage_is_anonymous_and_relative_to_the_row_cap(
        client: httpx.Client, server: LiveServer, service: AuditService) -> None:
    with server.client(None) as anonymous:
        assert anonymous.get(f"{BASE}/statistics/database/usage").json() == {"usage": 0.0}
    client.put(f"{BASE}/configuration/retention", json={"maxRows": 10_000})
    for start in range(0, 2_500, 500):
        service.submit([event(minutes=n) for n in range(start, start + 500)])
    configuration._usage_cache.clear()  # the answer is cached for 30 s
    with server.client(None) as anonymous:
        usage = anonymous.get(f"{BASE}/statistics/database/usage").json()["usage"]
    assert 0.24 <= usage <= 0.26  # 2,500 (+ the change record) of 10,000, estimated
