"""``/api/v1/alerts`` over real HTTP on both backends: listing, paging, acknowledging,
permissions and token scopes, and 400s for every bad parameter."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import LiveServer, add_user
from trailkeeper.alerts.model import NewAlert
from trailkeeper.auth import accounts, tokens
from trailkeeper.auth.principals import Role
from trailkeeper.model.timestamps import now_ms
from trailkeeper.query.ast import Compare
from trailkeeper.storage.base import Storage

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
PASSWORD = "a long enough password"


def seed(storage: Storage) -> list[int]:
    """Three alerts: 1 low rule-a, 2 high rule-b (correlation group), 3 critical rule-a hunt."""
    return storage.record_alerts([
        NewAlert("rule-a", "Brute force [bold]x[/bold]", "low", T0, 11, (10, 11)),
        NewAlert("rule-b", "Many deletions", "high", T0 + 60_000, 21, (20, 21),
                 group={"user": "bob"}, tags=("attack.impact",)),
        NewAlert("rule-a", "Brute force [bold]x[/bold]", "critical", T0 + 120_000, 31, (31,),
                 origin="hunt"),
    ], throttle_ms=0, now_ms=T0 + 500)


def make_token(storage: Storage, user: str, scope: str) -> dict[str, str]:
    spec = tokens.TokenSpec(user, tokens.parse_scopes([scope]), None, (), None, "alerts")
    text, _ = tokens.issue(storage, spec, created_by="test", now_ms=now_ms())
    return {"Authorization": f"Bearer {text}"}


def test_the_list_shows_every_field_newest_first(server: LiveServer) -> None:
    """Each alert carries its rule, level, times (ISO), events, group, count and status."""
    seed(server.service.storage)
    with server.client() as c:
        answer = c.get("/api/v1/alerts")
    assert answer.status_code == 200
    body = answer.json()
    assert [a["id"] for a in body["alerts"]] == [3, 2, 1]
    assert body["nextCursor"] is None
    second = body["alerts"][1]
    assert second == {
        "id": 2, "rule_id": "rule-b", "rule_title": "Many deletions", "level": "high",
        "tags": ["attack.impact"], "timestamp": "2023-11-14T22:14:20Z",
        "last_timestamp": "2023-11-14T22:14:20Z", "created": "2023-11-14T22:13:20.500Z",
        "event_ids": [20, 21], "group": {"user": "bob"}, "count": 1, "status": "open",
        "origin": "live", "acknowledged_by": None, "acknowledged_at": None}


def test_filters_narrow_the_list(server: LiveServer) -> None:
    """status, rule (repeatable), level (minimum), from/to (ISO or epoch ms) and origin."""
    seed(server.service.storage)
    server.service.storage.acknowledge_alerts([1], "alice", T0)

    def ids(params: dict[str, str | list[str]]) -> list[int]:
        with server.client() as c:
            answer = c.get("/api/v1/alerts", params=params)
        assert answer.status_code == 200, answer.text
        return [a["id"] for a in answer.json()["alerts"]]

    assert ids({"status": "open"}) == [3, 2]
    assert ids({"status": "acknowledged"}) == [1]
    assert ids({"rule": ["rule-b", "nope"]}) == [2]
    assert ids({"level": "high"}) == [3, 2]
    assert ids({"from": "2023-11-14T22:14:20Z"}) == [3, 2]
    assert ids({"to": str(T0 + 60_000)}) == [2, 1]  # inclusive
    assert ids({"from": str(T0), "to": "2023-11-14T22:13:20Z"}) == [1]
    assert ids({"origin": "hunt"}) == [3]


def test_pages_follow_the_next_cursor(server: LiveServer) -> None:
    """limit and the opaque cursor walk every alert once, newest first."""
    seed(server.service.storage)
    seen: list[int] = []
    params: dict[str, str] = {"limit": "2"}
    with server.client() as c:
        while True:
            body = c.get("/api/v1/alerts", params=params).json()
            seen += [a["id"] for a in body["alerts"]]
            if body["nextCursor"] is None:
                break
            params["cursor"] = body["nextCursor"]
    assert seen == [3, 2, 1]


def test_one_alert_by_id_and_a_404_naming_an_unknown_one(server: LiveServer) -> None:
    """GET /alerts/{id} answers the alert; an unknown id is a JSON 404 naming it."""
    seed(server.service.storage)
    with server.client() as c:
        found = c.get("/api/v1/alerts/2")
        missing = c.get("/api/v1/alerts/99")
        huge = c.get("/api/v1/alerts/99999999999999999999")
    assert found.status_code == 200 and found.json()["rule_id"] == "rule-b"
    assert missing.status_code == 404 and "99" in missing.json()["message"]
    assert huge.status_code == 404


@pytest.mark.parametrize(("params", "named"), [
    ({"status": "closed"}, "status"), ({"level": "severe"}, "level"),
    ({"from": "yesterday-ish"}, "from"), ({"to": "2023-13-45"}, "to"),
    ({"origin": "cron"}, "origin"), ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
    ({"limit": "ten"}, "limit"), ({"cursor": "abc"}, "cursor"), ({"cursor": "-1"}, "cursor"),
    ({"cursor": "99999999999999999999999"}, "cursor"), ({"tz": "Mars/Olympus"}, "tz"),
])
def test_a_bad_parameter_is_a_400_naming_it(server: LiveServer, params: dict[str, str],
                                            named: str) -> None:
    """Never a 500: the message names the parameter."""
    with server.client() as c:
        answer = c.get("/api/v1/alerts", params=params)
    assert answer.status_code == 400, answer.text
    assert f"'{named}'" in answer.json()["message"]


def test_acknowledging_closes_alerts_and_is_recorded(server: LiveServer) -> None:
    """One and bulk: only open alerts count; the change is stored as "Alert acknowledged"
    naming the alerts and the user."""
    seed(server.service.storage)
    with server.client() as c:
        one = c.post("/api/v1/alerts/2/acknowledge")
        again = c.post("/api/v1/alerts/2/acknowledge")
        bulk = c.post("/api/v1/alerts/acknowledge", json={"ids": [1, 2, 3, 77]})
        unknown = c.post("/api/v1/alerts/77/acknowledge")
        shown = c.get("/api/v1/alerts/2").json()
    assert (one.json(), again.json(), bulk.json()) == (
        {"acknowledged": 1}, {"acknowledged": 0}, {"acknowledged": 2})
    assert unknown.status_code == 404
    assert shown["status"] == "acknowledged" and shown["acknowledged_by"] == "admin"
    assert shown["acknowledged_at"] is not None
    server.service.flush(10)
    records = [orjson.loads(e.doc) for e in server.service.storage.search(
        Compare("action", "=", "Alert acknowledged"), limit=10).events]
    assert len(records) == 2  # nothing is recorded when nothing changed
    assert {r["author"]["name"] for r in records} == {"admin"}
    named = sorted(o["id"] for r in records for o in r["affectedObjects"])
    assert named == ["1", "2", "3"]


@pytest.mark.parametrize("body", [b"", b"[1]", b'{"ids": []}', b'{"ids": ["1"]}',
                                  b'{"ids": [1.5]}', b'{"ids": 3}', b"{nope",
                                  orjson.dumps({"ids": list(range(1, 1002))})])
def test_a_bad_bulk_body_is_a_400(server: LiveServer, body: bytes) -> None:
    with server.client() as c:
        answer = c.post("/api/v1/alerts/acknowledge", content=body,
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text


def test_only_unrestricted_roles_read_and_only_admins_acknowledge(server: LiveServer) -> None:
    """auditor reads but may not acknowledge; a delegated project admin and a plain user
    get 403 on both."""
    storage = server.service.storage
    seed(storage)
    add_user(storage, "audrey", PASSWORD, Role.AUDITOR)
    add_user(storage, "dora", PASSWORD, Role.USER)
    accounts.grant(storage, "dora", "PROJECT,12")
    add_user(storage, "ulla", PASSWORD, Role.USER)
    add_user(storage, "adam", PASSWORD, Role.ADMIN)
    with server.client(auth=("audrey", PASSWORD)) as c:
        assert c.get("/api/v1/alerts").status_code == 200
        assert c.get("/api/v1/alerts/1").status_code == 200
        assert c.post("/api/v1/alerts/1/acknowledge").status_code == 403
    for name in ("dora", "ulla"):
        with server.client(auth=(name, PASSWORD)) as c:
            assert c.get("/api/v1/alerts").status_code == 403
            assert c.get("/api/v1/alerts/1").status_code == 403
            assert c.post("/api/v1/alerts/acknowledge", json={"ids": [1]}).status_code == 403
    with server.client(auth=("adam", PASSWORD)) as c:
        assert c.post("/api/v1/alerts/1/acknowledge").json() == {"acknowledged": 1}


def test_tokens_need_read_to_list_and_admin_to_acknowledge(server: LiveServer) -> None:
    """A read token lists but cannot acknowledge; an admin token does both; ingest neither."""
    storage = server.service.storage
    seed(storage)
    read, admin, ingest = (make_token(storage, "admin", s) for s in ("read", "admin", "ingest"))
    with server.client(auth=None) as c:
        assert c.get("/api/v1/alerts", headers=read).status_code == 200
        assert c.post("/api/v1/alerts/1/acknowledge", headers=read).status_code == 403
        assert c.get("/api/v1/alerts", headers=ingest).status_code == 403
        assert c.get("/api/v1/alerts", headers=admin).status_code == 200
        assert c.post("/api/v1/alerts/1/acknowledge", headers=admin).status_code == 200
        assert c.get("/api/v1/alerts").status_code == 401
