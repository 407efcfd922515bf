"""Trailkeeper audits access to itself, over real HTTP on both stores: authentication
outcomes (SECURITY, only when the coverage asks for them), searches and exports of the log,
and changes to users, groups, grants and tokens through the API and the CLI; and no
password or token text ever reaches the application log or a stored event."""

from __future__ import annotations

import getpass
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from tests.access.test_tokens import bearer, make_token
from tests.conftest import ADMIN_PASSWORD, LiveServer, add_user
from trailkeeper.applog import TextFormatter
from trailkeeper.auth import audit_events
from trailkeeper.auth.principals import Role
from trailkeeper.cli.main import cli
from trailkeeper.governance import manage
from trailkeeper.governance.config import GovernanceConfig
from trailkeeper.governance.redaction import Redactor, digest
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.event import AuditAuthor, AuditEvent
from trailkeeper.model.timestamps import now_ms
from trailkeeper.query.ast import In, MatchAll

LOGIN = "User authenticated"
FAILED = "User login failed"
DENIED = "Access denied"
SEARCHED = "Audit Log search performed"
EXPORTED = "Audit Log exported"
EVENT = {"auditType": {"category": "Projects", "action": "Project created",
                       "area": "LOCAL_CONFIG_AND_ADMINISTRATION", "level": "BASE"},
         "affectedObjects": [{"type": "PROJECT", "name": "KEY", "id": "12"}]}


def raise_security(service: AuditService, level: str = "full") -> None:
    manage.update(service, manage.coverage_values({"levelByArea": {"security": level}}),
                  AuditAuthor.SYSTEM)


def recorded(service: AuditService, action: str) -> list[dict[str, Any]]:
    """The stored events of one action, oldest first, as REST documents."""
    assert service.flush(10)
    page = service.storage.search(In("action", (action,)), limit=1000, descending=False)
    return [orjson.loads(row.rest_json()) for row in page.events]


def attributes(doc: dict[str, Any]) -> dict[str, str]:
    return {a["name"]: a.get("value", "") for a in doc["extraAttributes"]}


def objects(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(o["type"], o["name"]) for o in doc["affectedObjects"]]


@pytest.fixture
def full(server: LiveServer) -> LiveServer:
    raise_security(server.service)
    return server


def test_successful_token_and_password_requests_are_recorded_at_full(full: LiveServer) -> None:
    """Each authenticated request is "User authenticated" (SECURITY/FULL) by its user, with
    the method, the token's id and the request, from the client's address."""
    text = make_token(full.service.storage)
    token_id = text.split("_")[1]
    with full.client(auth=None) as c:
        assert c.get("/api/v1/events", headers=bearer(text)).status_code == 200
    with full.client() as c:
        assert c.get("/rest/auditing/1.0/events").status_code == 200
    token, password = recorded(full.service, LOGIN)
    for doc in (token, password):
        assert doc["type"]["area"] == "SECURITY" and doc["type"]["level"] == "FULL"
        assert doc["type"]["category"] == "Authentication"
        assert doc["author"]["name"] == "admin" and doc["source"] == "127.0.0.1"
        assert doc["method"] == "API"
    assert attributes(token) == {"Authentication method": "API token", "Token ID": token_id,
                                 "Request": "GET /api/v1/events"}
    assert attributes(password) == {"Authentication method": "password",
                                    "Request": "GET /rest/auditing/1.0/events"}


def _refusals(server: LiveServer) -> dict[str, int]:
    """Make one request refused for each reason; their status codes by case."""
    storage = server.service.storage
    add_user(storage, "pat", "pat-password", Role.USER)
    revoked = make_token(storage)
    storage.revoke_token(revoked.split("_")[1], now_ms())
    far = make_token(storage, allow_ips=("10.0.0.0/8",))
    limited = make_token(storage, rate="1/1m")
    ingest = make_token(storage, scopes="ingest")
    unknown = "tkn_0123456789abcdef_" + "A" * 43
    status: dict[str, int] = {}
    with server.client(auth=None) as c:
        status["wrong password"] = c.get("/api/v1/events",
                                         auth=("admin", "not-the-password")).status_code
        status["unknown user"] = c.get("/api/v1/events", auth=("nobody", "whatever")).status_code
        status["unknown token"] = c.get("/api/v1/events", headers=bearer(unknown)).status_code
        status["token revoked"] = c.get("/api/v1/events", headers=bearer(revoked)).status_code
        status["IP address not allowed"] = c.get("/api/v1/events",
                                                 headers=bearer(far)).status_code
        c.get("/api/v1/events", headers=bearer(limited)).raise_for_status()
        status["rate limited"] = c.get("/api/v1/events", headers=bearer(limited)).status_code
        status["token scope refused"] = c.get("/api/v1/events",
                                              headers=bearer(ingest)).status_code
        status["route"] = c.get("/rest/auditing/1.0/events",
                                auth=("pat", "pat-password")).status_code
        status["no credentials"] = c.get("/api/v1/events").status_code
    return status


def test_refusals_are_recorded_at_advanced_with_their_reason(full: LiveServer) -> None:
    """Login failures and denials are SECURITY/ADVANCED events naming the reason; the author
    is the user when they exist, else Anonymous with the name tried; a request without
    credentials is only challenged."""
    status = _refusals(full)
    assert status == {"wrong password": 401, "unknown user": 401, "unknown token": 401,
                      "token revoked": 401, "IP address not allowed": 403, "rate limited": 429,
                      "token scope refused": 403, "route": 403, "no credentials": 401}
    failed = {attributes(d)["Reason"]: d for d in recorded(full.service, FAILED)}
    denied = {attributes(d)["Reason"]: d for d in recorded(full.service, DENIED)}
    assert set(failed) == {"wrong password", "unknown user", "unknown token", "token revoked"}
    assert set(denied) == {"IP address not allowed", "rate limited", "token scope refused",
                           "The user is not allowed to view audit events"}
    for doc in [*failed.values(), *denied.values()]:
        assert doc["type"]["area"] == "SECURITY" and doc["type"]["level"] == "ADVANCED"
        assert doc["source"] == "127.0.0.1"
    assert failed["wrong password"]["author"]["name"] == "admin"
    assert attributes(failed["wrong password"])["Authentication method"] == "password"
    assert failed["unknown user"]["author"]["id"] == "-2"  # Anonymous
    assert attributes(failed["unknown user"])["User name"] == "nobody"
    assert failed["unknown token"]["author"]["name"] == "Anonymous"
    assert attributes(failed["unknown token"])["Token ID"] == "0123456789abcdef"
    assert failed["token revoked"]["author"]["name"] == "admin"
    assert attributes(denied["token scope refused"])["Required scope"] == "read"
    assert denied["The user is not allowed to view audit events"]["author"]["name"] == "pat"
    assert attributes(denied["rate limited"])["Request"] == "GET /api/v1/events"


def test_default_coverage_records_no_authentication_outcome(server: LiveServer) -> None:
    """At BASE (the default) neither successes nor refusals are stored."""
    _refusals(server)
    with server.client() as c:
        assert c.get("/api/v1/events").status_code == 200
    for action in (LOGIN, FAILED, DENIED):
        assert recorded(server.service, action) == []


def test_searches_and_exports_are_recorded_with_their_query(server: LiveServer) -> None:
    """JSON searches on each API are "Audit Log search performed" with the query and what
    they returned; CSV and NDJSON exports are "Audit Log exported" with the row count."""
    with server.client() as c:
        first = c.post("/api/v1/events", json=[EVENT, EVENT]).json()["ids"]
        assert c.get("/rest/auditing/1.0/events", params={"limit": 5, "search": "project",
                                                         "bogus": "x"}).status_code == 200
        assert c.get("/rest/auditing/1.0/events",
                     params={"outputFormat": "csv"}).status_code == 200
        assert c.get("/api/v1/events", params={"q": 'action:"Project created"'}
                     ).status_code == 200
        export = c.get("/api/v1/events", params={"q": "category:Projects",
                                                 "format": "ndjson"})
        assert export.text.count("\n") == 2
        assert c.get("/rest/audit/1.0/projects/KEY/events").status_code == 200
        assert c.get(f"/api/v1/events/{first[0]}").status_code == 200
    searches = recorded(server.service, SEARCHED)
    queries = [attributes(d)["Query"] for d in searches]
    assert queries[0] == "limit=5&search=project"  # unknown parameters are not the query
    assert queries[1:] == ['q=action:"Project created"', "project=KEY&start=0&limit=25",
                           f"id={first[0]}"]
    atlassian = attributes(searches[0])
    assert atlassian["Results returned"] == "2"
    assert atlassian["ID Range"] == f"{min(first)} - {max(first)}"
    assert " - " in atlassian["Timestamp Range"]
    for doc in searches:
        assert doc["type"] == {"categoryI18nKey": "atlassian.audit.event.category.audit",
                               "category": "Auditing",
                               "actionI18nKey": "atlassian.audit.event.action.audit.search",
                               "action": SEARCHED, "area": "AUDIT_LOG", "level": "BASE"}
        assert doc["author"]["name"] == "admin" and doc["source"] == "127.0.0.1"
    csv, ndjson = recorded(server.service, EXPORTED)
    assert csv["type"]["actionI18nKey"] == "atlassian.audit.event.action.audit.exported"
    assert attributes(csv)["Query"] == "outputFormat=csv"
    assert attributes(csv)["Format"] == "CSV"
    assert int(attributes(csv)["Results returned"]) >= 2  # the searches before it too
    assert attributes(ndjson)["Query"] == "q=category:Projects&format=ndjson"
    assert attributes(ndjson)["Format"] == "NDJSON"
    assert attributes(ndjson)["Results returned"] == "2"


def test_records_of_searches_follow_the_read_scope(server: LiveServer) -> None:
    """Plain users see the records of their own searches only; an auditor sees everyone's."""
    for name, role in (("pat", Role.USER), ("sam", Role.USER), ("audra", Role.AUDITOR)):
        add_user(server.service.storage, name, f"{name}-password", role)
    for name in ("pat", "sam", "audra"):
        with server.client(auth=(name, f"{name}-password")) as c:
            c.get("/api/v1/events").raise_for_status()
    assert server.service.flush(10)
    seen: dict[str, set[str]] = {}
    for name in ("pat", "audra"):
        with server.client(auth=(name, f"{name}-password")) as c:
            events = c.get("/api/v1/events", params={"q": f'action:"{SEARCHED}"'}).json()
            seen[name] = {e["author"]["name"] for e in events["events"]}
    assert seen == {"pat": {"pat"}, "audra": {"audra", "pat", "sam"}}


def test_lookups_are_not_recorded_as_searches(client: httpx.Client,
                                              service: AuditService) -> None:
    """Pickers and class lists read no events: nothing is recorded."""
    assert client.get("/rest/auditing/1.0/lookup/author").status_code == 200
    assert client.get("/api/v1/classes").status_code == 200
    assert recorded(service, SEARCHED) == []


def _manage_over_http(c: httpx.Client) -> str:
    """Every management change once; the created token's id."""
    for method, path, body in (
        ("POST", "/api/v1/admin/users", {"name": "alice", "password": "alice-password-1",
                                         "role": "user"}),
        ("PATCH", "/api/v1/admin/users/alice", {"password": "alice-password-2",
                                                "role": "auditor"}),
        ("PATCH", "/api/v1/admin/users/alice", {"disabled": True}),
        ("PATCH", "/api/v1/admin/users/alice", {"disabled": False}),
        ("POST", "/api/v1/admin/groups", {"name": "ops"}),
        ("PUT", "/api/v1/admin/groups/ops/members/alice", None),
        ("DELETE", "/api/v1/admin/groups/ops/members/alice", None),
        ("POST", "/api/v1/admin/grants", {"grantee": "@ops", "grant": "PROJECT,12"}),
        ("DELETE", "/api/v1/admin/grants?grantee=@ops&grant=PROJECT,12", None),
        ("DELETE", "/api/v1/admin/groups/ops", None),
    ):
        c.request(method, path, json=body).raise_for_status()
    created = c.post("/api/v1/admin/tokens", json={"user": "alice", "scopes": ["read"],
                                                   "expires": "30d", "rate": "10/1m",
                                                   "description": "poller"})
    token_id: str = created.json()["id"]
    c.delete(f"/api/v1/admin/tokens/{token_id}").raise_for_status()
    c.delete(f"/api/v1/admin/tokens/{token_id}").raise_for_status()  # again: no change
    return token_id


EXPECTED = [  # (action, area, affected objects) of the management events, in order
    ("User created", "USER_MANAGEMENT", [("USER", "alice")]),
    ("User password changed", "USER_MANAGEMENT", [("USER", "alice")]),
    ("User role changed", "PERMISSIONS", [("USER", "alice")]),
    ("User disabled", "USER_MANAGEMENT", [("USER", "alice")]),
    ("User enabled", "USER_MANAGEMENT", [("USER", "alice")]),
    ("User group created", "USER_MANAGEMENT", [("GROUP", "ops")]),
    ("User added to user group", "USER_MANAGEMENT", [("USER", "alice"), ("GROUP", "ops")]),
    ("User deleted from user group", "USER_MANAGEMENT", [("USER", "alice"), ("GROUP", "ops")]),
    ("Permission granted", "PERMISSIONS", [("GROUP", "ops"), ("PROJECT", "12")]),
    ("Permission revoked", "PERMISSIONS", [("GROUP", "ops"), ("PROJECT", "12")]),
    ("User group deleted", "USER_MANAGEMENT", [("GROUP", "ops")]),
    ("API token created", "SECURITY", [("USER", "alice")]),
    ("API token revoked", "SECURITY", [("USER", "alice")]),
]
MANAGEMENT = In("action", tuple(action for action, _, _ in EXPECTED))


def _management(service: AuditService) -> list[dict[str, Any]]:
    assert service.flush(10)
    page = service.storage.search(MANAGEMENT, limit=1000, descending=False)
    return [orjson.loads(row.rest_json()) for row in page.events]


def _check_management(docs: list[dict[str, Any]], token_id: str, author: str, *,
                      skip: str = "") -> None:
    assert [(d["type"]["action"], d["type"]["area"], objects(d)) for d in docs] == [
        expected for expected in EXPECTED if expected[0] != skip]
    for doc in docs:
        assert doc["type"]["level"] == "BASE"
        assert doc["author"]["name"] == author
    by_action = {d["type"]["action"]: d for d in docs}
    assert attributes(by_action["User created"]) == {"Role": "user"}
    assert attributes(by_action["User password changed"]) == {}
    if not skip:
        assert by_action["User role changed"]["changedValues"] == [
            {"key": "Role", "from": "user", "to": "auditor"}]
    assert attributes(by_action["Permission granted"]) == {"Permission": "PROJECT,12"}
    created = attributes(by_action["API token created"])
    assert created["Token ID"] == token_id
    assert created["Token scopes"] == "read"
    assert created["Token description"] == "poller"
    assert created["Rate limit"] == "10/1m"
    assert created["Expiry"].endswith("Z")
    assert attributes(by_action["API token revoked"]) == {"Token ID": token_id}


def test_management_over_the_api_is_recorded_as_the_caller(server: LiveServer) -> None:
    """Each change through the admin API is stored (before the answer) by its caller."""
    with server.client() as c:
        token_id = _manage_over_http(c)
    docs = _management(server.service)
    _check_management(docs, token_id, "admin")
    assert all(d["source"] == "127.0.0.1" and d["method"] == "API" for d in docs)


def _cli(db_url: str, *args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(cli, [*args, "--db", db_url], input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def test_management_through_the_cli_is_recorded_as_the_os_user(db_url: str) -> None:
    """The CLI records the same events, authored by the operating-system user."""
    _cli(db_url, "user", "add", "alice", "--password-stdin", stdin="alice-password-1\n")
    _cli(db_url, "user", "passwd", "alice", "--password-stdin", stdin="alice-password-2\n")
    _cli(db_url, "user", "disable", "alice")
    _cli(db_url, "user", "disable", "alice", "--enable")
    _cli(db_url, "group", "create", "ops")
    _cli(db_url, "group", "add", "ops", "alice")
    _cli(db_url, "group", "remove", "ops", "alice")
    _cli(db_url, "grant", "@ops", "PROJECT,12")
    _cli(db_url, "revoke", "@ops", "PROJECT,12")
    _cli(db_url, "group", "delete", "ops")
    text = CliRunner().invoke(cli, ["token", "create", "--user", "alice", "--scope", "read",
                                    "--expires", "30d", "--rate", "10/1m", "--description",
                                    "poller", "--db", db_url]).stdout.strip()
    token_id = text.split("_")[1]
    _cli(db_url, "token", "revoke", token_id)
    _cli(db_url, "token", "revoke", token_id)  # already revoked: nothing more recorded
    with AuditService.open(db_url) as service:
        docs = _management(service)
    # The CLI has no command to change a user's own role (grants give roles).
    _check_management(docs, token_id, getpass.getuser(), skip="User role changed")
    for doc in docs:
        assert doc["author"]["id"] == f"os:{getpass.getuser()}"
        assert doc["author"]["type"] == "os-user"
        assert doc["method"] == "CLI"


def test_cli_searches_of_a_local_store_are_recorded(db_url: str, tmp_path: Path) -> None:
    """``trailkeeper search`` on a local store records a search (terminal) or an export
    (``-o FILE``) as the operating-system user; listing classes records nothing."""
    with AuditService.open(db_url) as service:
        service.submit([AuditEvent(type=audit_events.USER_CREATED)])
    _cli(db_url, "search", "-L")
    _cli(db_url, "search", "-t", "CSV", "-l", "5", "action:\"User created\"")
    _cli(db_url, "search", "-t", "NDJSON", "-o", str(tmp_path / "out.ndjson"))
    with AuditService.open(db_url) as service:
        (search,) = recorded(service, SEARCHED)
        (export,) = recorded(service, EXPORTED)
    user = getpass.getuser()
    assert search["author"]["id"] == export["author"]["id"] == f"os:{user}"
    assert attributes(search)["Query"] == 'query=action:"User created"&limit=5'
    assert attributes(search)["Results returned"] == "1"
    assert attributes(export)["Format"] == "NDJSON"
    assert attributes(export)["Results returned"] == "2"  # the event and the search


def test_attribute_names_are_not_taken_for_secrets() -> None:
    """Redaction would hash the values of keys that look like secrets: none of ours do, so
    token ids, scopes and reasons stay readable."""
    redactor = Redactor(1024, GovernanceConfig().sensitive_keys)
    names = [*audit_events.ATTRIBUTE_NAMES, "USER", "GROUP"]
    assert [n for n in names if redactor.is_sensitive(n)] == []


def test_the_catalogue_names_each_action_once_with_its_own_keys() -> None:
    """Every action and its i18n key is distinct, and only authentication outcomes are above
    BASE (so the default coverage records everything else)."""
    types = audit_events.CATALOGUE
    assert len({t.action for t in types}) == len({t.action_i18n_key for t in types}) == 18
    assert {t.action: t.level.value for t in types if t.level.value != "BASE"} == {
        LOGIN: "FULL", FAILED: "ADVANCED", DENIED: "ADVANCED"}


@pytest.fixture
def app_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything Trailkeeper logs, at every level, while the test runs."""
    logger = logging.getLogger("trailkeeper")
    logger.addHandler(caplog.handler)  # also when another test turned propagation off
    caplog.set_level(logging.DEBUG, logger="trailkeeper")
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def test_no_password_or_token_text_is_ever_logged_or_stored(
        full: LiveServer, app_log: pytest.LogCaptureFixture) -> None:
    """Failing and succeeding logins with passwords and tokens, token creation, password
    changes and Basic tokens leave no secret in the application log or any stored event
    (nor a digest of one)."""
    storage = full.service.storage
    secrets = ["bob-first-password", "bob-second-password", "wrong-password-123"]
    add_user(storage, "bob", secrets[0], Role.ADMIN)
    with full.client() as c:
        made = c.post("/api/v1/admin/tokens", json={"user": "bob", "scopes": ["read"]})
        token = made.json()["token"]
        c.patch("/api/v1/admin/users/bob", json={"password": secrets[1]}).raise_for_status()
        other = c.post("/api/v1/admin/tokens", json={"user": "admin", "scopes": ["read"]}
                       ).json()["token"]
    # The secret is everything after the second underscore (it may hold underscores too).
    secrets += [token, token.split("_", 2)[2], other, other.split("_", 2)[2], ADMIN_PASSWORD]
    forged = token[:-4] + "AAAA"
    secrets += [forged]
    with full.client(auth=None) as c:
        for auth in (("bob", secrets[1]), ("bob", secrets[0]), ("bob", secrets[2]),
                     ("bob", token), ("bob", other), ("bob", forged), ("nobody", token)):
            c.get("/api/v1/events", auth=auth)
        for text in (token, other, forged):
            c.get("/api/v1/events", headers=bearer(text))
        c.post("/api/v1/events", json=EVENT, headers=bearer(token))  # scope refused
    assert full.service.flush(10)
    assert len(recorded(full.service, FAILED)) >= 4
    assert len(recorded(full.service, LOGIN)) >= 3
    formatter = TextFormatter()
    log = "\n".join(formatter.format(r) for r in app_log.records)
    assert "Found a matching token" in log and "tried to authenticate" in log
    stored = b"\n".join(row.rest_json() for row in storage.stream(MatchAll()))
    for secret in secrets:
        assert secret not in log
        assert secret.encode() not in stored
        assert digest(secret).encode() not in stored
