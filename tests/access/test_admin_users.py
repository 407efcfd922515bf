"""``/api/v1/admin/users|groups|grants``: sysadmins change, admins view, others are refused."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import LiveServer, add_user
from trailkeeper.auth.principals import Role


def _not_her_searches(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Leave out the records of the user's own searches (everyone sees their own events)."""
    return [e for e in events if e["type"]["area"] != "AUDIT_LOG"]


def test_sysadmin_creates_a_delegated_admin_who_then_sees_their_project(
        server: LiveServer, client: httpx.Client) -> None:
    """A grant made over the API applies to the next request of that user."""
    assert client.post("/api/v1/admin/users", json={"name": "dana", "password": "dana-pass-1",
                                                    "role": "user"}).status_code == 201
    assert client.post("/api/v1/admin/groups", json={"name": "web"}).status_code == 201
    assert client.put("/api/v1/admin/groups/web/members/dana").status_code == 204
    made = client.post("/api/v1/admin/grants", json={"grantee": "@web", "grant": "PROJECT,5"})
    assert made.status_code == 201 and made.json() == {"grantee": "@web", "grant": "PROJECT,5"}
    event = {"type": {"category": "Projects", "action": "Project modified"},
             "timestamp": "2024-03-01T12:00:00.000Z",
             "author": {"id": "9", "name": "zed", "type": "NORMAL"},
             "affectedObjects": [{"type": "PROJECT", "id": "5", "name": "WEB"}]}
    other = {**event, "affectedObjects": [{"type": "PROJECT", "id": "6", "name": "OPS"}]}
    client.post("/api/v1/events", json=[event, other])
    with server.client(auth=("dana", "dana-pass-1")) as dana:
        seen = _not_her_searches(dana.get("/api/v1/events").json()["events"])
        # PROJECT 5's event (not PROJECT 6's), and the record of the grant that made her its
        # administrator, which names the project too.
        assert sorted(e["type"]["action"] for e in seen) == ["Permission granted",
                                                             "Project modified"]
        assert dana.get("/api/v1/admin/users").status_code == 403
    assert client.delete("/api/v1/admin/grants",
                         params={"grantee": "@web", "grant": "PROJECT,5"}).status_code == 204
    with server.client(auth=("dana", "dana-pass-1")) as dana:
        assert _not_her_searches(dana.get("/api/v1/events").json()["events"]) == []
    assert client.patch("/api/v1/admin/users/dana", json={"disabled": True}).status_code == 204
    with server.client(auth=("dana", "dana-pass-1")) as dana:
        assert dana.get("/api/v1/events").status_code == 401


def test_admins_view_but_only_sysadmins_change(server: LiveServer, client: httpx.Client) -> None:
    """An admin lists users, groups and grants; changing them needs a sysadmin."""
    add_user(server.service.storage, "ann", "ann-pass-1", Role.ADMIN)
    with server.client(auth=("ann", "ann-pass-1")) as ann:
        users = ann.get("/api/v1/admin/users").json()["users"]
        assert {"name": "ann", "role": "admin", "disabled": False} in users
        assert ann.get("/api/v1/admin/groups").json() == {"groups": []}
        assert ann.get("/api/v1/admin/grants").json() == {"grants": []}
        refused = ann.post("/api/v1/admin/groups", json={"name": "x"})
        assert refused.status_code == 403


def test_bad_requests_name_the_problem(client: httpx.Client) -> None:
    """Duplicates are 409, unknown names 404, bad grants 400."""
    body = {"name": "eve", "password": "eve-pass-1"}
    assert client.post("/api/v1/admin/users", json=body).status_code == 201
    assert client.post("/api/v1/admin/users", json=body).status_code == 409
    assert client.patch("/api/v1/admin/users/nobody", json={"role": "admin"}).status_code == 404
    bad = client.post("/api/v1/admin/grants", json={"grantee": "eve", "grant": "root"})
    assert bad.status_code == 400 and "role" in bad.json()["message"]
