"""API tokens over real HTTP on both stores: Bearer and Basic, scopes, expiry, IP allowlists
(IPv4 and IPv6), rate limits, revocation, storage of the hash only, and the log lines."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from tests.conftest import ADMIN_PASSWORD, LiveServer, add_user, free_port
from trailkeeper.api.app import build_app
from trailkeeper.applog import TextFormatter
from trailkeeper.auth import tokens
from trailkeeper.auth.principals import Role, Scope
from trailkeeper.config import Settings
from trailkeeper.errors import PermissionDeniedError
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.timestamps import now_ms
from trailkeeper.storage.base import Storage

EVENT = {"auditType": {"category": "Tests", "action": "Token used", "area": "SECURITY"}}


def make_token(storage: Storage, user: str = "admin", scopes: str = "read", *,
               allow_ips: tuple[str, ...] = (), rate: str | None = None,
               expires: str = "never", description: str = "test token") -> str:
    spec = tokens.TokenSpec(user, tokens.parse_scopes([scopes]),
                            tokens.parse_duration(expires), tokens.parse_networks(allow_ips),
                            tokens.parse_rate(rate) if rate else None, description)
    text, _ = tokens.issue(storage, spec, created_by="test", now_ms=now_ms())
    return text


def bearer(text: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {text}"}


def get_events(server: LiveServer, text: str) -> httpx.Response:
    with server.client(auth=None) as c:
        return c.get("/api/v1/events", headers=bearer(text))


def test_a_bearer_token_reads_and_an_ingest_token_writes(server: LiveServer) -> None:
    """A read token searches, an ingest token sends events, each as the token's user."""
    read = make_token(server.service.storage, scopes="read")
    ingest = make_token(server.service.storage, scopes="ingest")
    with server.client(auth=None) as c:
        assert c.post("/api/v1/events", json=EVENT, headers=bearer(ingest)).status_code == 201
        found = c.get("/api/v1/events", headers=bearer(read))
    assert found.status_code == 200
    assert found.json()["events"][0]["author"]["name"] == "admin"


def test_a_token_is_accepted_as_the_password_of_http_basic(server: LiveServer) -> None:
    """Atlassian tools send user:token as HTTP Basic; only the token's owner may."""
    text = make_token(server.service.storage)
    add_user(server.service.storage, "mallory", "pw", Role.USER)
    with server.client(auth=("admin", text)) as c:
        assert c.get("/api/v1/events").status_code == 200
    with server.client(auth=("mallory", text)) as c:
        assert c.get("/api/v1/events").status_code == 401


def test_read_only_scope_is_refused_on_write_and_ingest_on_read(server: LiveServer) -> None:
    """403 both ways, and neither token reaches the administration API."""
    read = make_token(server.service.storage, scopes="read")
    ingest = make_token(server.service.storage, scopes="ingest")
    with server.client(auth=None) as c:
        assert c.post("/api/v1/events", json=EVENT, headers=bearer(read)).status_code == 403
        assert c.get("/api/v1/events", headers=bearer(ingest)).status_code == 403
        assert c.get("/api/v1/admin/tokens", headers=bearer(read)).status_code == 403
        assert c.post("/api/v1/admin/tokens", json={"scopes": ["admin"]},
                      headers=bearer(ingest)).status_code == 403


def test_unknown_malformed_and_forged_tokens_are_refused(server: LiveServer) -> None:
    text = make_token(server.service.storage)
    forged = text[:-4] + ("AAAA" if not text.endswith("AAAA") else "BBBB")
    for value in (forged, "tkn_0000000000000000_" + "A" * 43, "tkn_nonsense", "abc"):
        refused = get_events(server, value)
        assert refused.status_code == 401
        # RFC 6750: a Bearer attempt is challenged for a Bearer token, not a password.
        assert refused.headers["www-authenticate"].startswith("Bearer ")
    with server.client(auth=None) as c:
        assert c.get("/api/v1/events").headers["www-authenticate"].startswith("Basic ")


def test_revocation_takes_effect_at_once(server: LiveServer) -> None:
    """The request right after DELETE is refused; the token stays listed as revoked."""
    text = make_token(server.service.storage)
    token_id = tokens.parse(text)[0]  # type: ignore[index]
    assert get_events(server, text).status_code == 200
    with server.client() as admin:
        assert admin.delete(f"/api/v1/admin/tokens/{token_id}").status_code == 200
        listed = admin.get("/api/v1/admin/tokens").json()["tokens"]
    assert get_events(server, text).status_code == 401
    assert [t["status"] for t in listed if t["id"] == token_id] == ["revoked"]


def test_an_expired_token_is_refused(server: LiveServer) -> None:
    storage = server.service.storage
    text = make_token(storage)
    token_id = tokens.parse(text)[0]  # type: ignore[index]
    record = storage.get_token(token_id)
    assert record is not None
    soon = tokens.generate()
    from dataclasses import replace
    storage.put_token(replace(record, id=soon[0], secret_sha256=tokens.secret_hash(soon[1]),
                              expires_ms=now_ms() + 1500))
    assert get_events(server, soon[2]).status_code == 200
    time.sleep(1.6)
    assert get_events(server, soon[2]).status_code == 401
    assert get_events(server, text).status_code == 200


def test_a_token_of_a_disabled_user_is_refused(server: LiveServer) -> None:
    storage = server.service.storage
    add_user(storage, "bot", "pw", Role.USER)
    text = make_token(storage, "bot")
    assert get_events(server, text).status_code == 200
    user = storage.get_user("bot")
    assert user is not None
    from dataclasses import replace
    storage.put_user(replace(user, disabled=True))
    assert get_events(server, text).status_code == 401


def test_the_ipv4_allowlist_admits_the_loopback_and_refuses_others(server: LiveServer) -> None:
    inside = make_token(server.service.storage, allow_ips=("127.0.0.0/8",))
    outside = make_token(server.service.storage, allow_ips=("10.0.0.0/8", "2001:db8::/32"))
    assert get_events(server, inside).status_code == 200
    assert get_events(server, outside).status_code == 403


@pytest.fixture
def ipv6_server(service: AuditService, tmp_path: Path) -> Iterator[str]:
    """The app on [::1] (skipped where the host has no IPv6 loopback)."""
    import socket
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    if service.storage.get_user("admin") is None:
        add_user(service.storage, "admin", ADMIN_PASSWORD, Role.SYSADMIN)
    port = free_port()
    config = uvicorn.Config(build_app(service, Settings(home=tmp_path, db_url="unused")),
                            host="::1", port=port, log_config=None, access_log=False,
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.01)
    try:
        yield f"http://[::1]:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_ipv6_allowlist_admits_and_refuses(service: AuditService,
                                              ipv6_server: str) -> None:
    """From ::1: ::1/128 is admitted; 2001:db8::/32 and 127.0.0.0/8 are not."""
    storage = service.storage
    cases = {make_token(storage, allow_ips=("::1/128",)): 200,
             make_token(storage, allow_ips=("2001:db8::/32",)): 403,
             make_token(storage, allow_ips=("127.0.0.0/8",)): 403}
    with httpx.Client(base_url=ipv6_server, timeout=30) as c:
        for text, status in cases.items():
            assert c.get("/api/v1/events", headers=bearer(text)).status_code == status


def test_the_rate_limit_answers_429_with_retry_after(server: LiveServer) -> None:
    """3 requests within 1 minute pass, the 4th waits for the first to leave the window."""
    text = make_token(server.service.storage, rate="3/1m")
    other = make_token(server.service.storage, rate="3/1m")
    statuses = [get_events(server, text) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert 55 <= int(statuses[3].headers["Retry-After"]) <= 60
    assert get_events(server, other).status_code == 200  # limits are per token


def test_the_secret_is_stored_only_as_its_sha256(server: LiveServer, db_url: str) -> None:
    """The admin API shows the token once; the database holds its hash, never its text."""
    with server.client() as admin:
        created = admin.post("/api/v1/admin/tokens",
                             json={"scopes": ["read"], "description": "once"}).json()
        listed = admin.get("/api/v1/admin/tokens").text
    text = created["token"]
    token_id, secret = tokens.parse(text)  # type: ignore[misc]
    assert text.startswith("tkn_") and token_id not in secret
    assert secret not in listed and "sha256" not in listed
    if db_url.startswith("sqlite"):
        import sqlite3

        from trailkeeper.storage.sqlite import sqlite_path
        with sqlite3.connect(sqlite_path(db_url)) as con:
            rows = con.execute("SELECT * FROM api_tokens").fetchall()
    else:
        with psycopg.connect(db_url) as con:
            rows = con.execute("SELECT * FROM api_tokens").fetchall()
    dump = repr(rows)
    assert secret not in dump and text not in dump
    assert hashlib.sha256(secret.encode()).hexdigest() in dump


def test_users_manage_only_their_own_tokens_within_their_role(server: LiveServer) -> None:
    """A plain user gets read/ingest tokens for themselves, not admin scope, not for others;
    a sysadmin creates tokens for anyone; nobody lists or revokes another's unless sysadmin."""
    storage = server.service.storage
    add_user(storage, "alice", "pw-a", Role.USER)
    add_user(storage, "bob", "pw-b", Role.USER)
    with server.client(auth=("alice", "pw-a")) as alice:
        own = alice.post("/api/v1/admin/tokens", json={"scopes": ["read", "ingest"]})
        assert own.status_code == 201 and own.json()["user"] == "alice"
        assert alice.post("/api/v1/admin/tokens", json={"scopes": ["admin"]}).status_code == 403
        assert alice.post("/api/v1/admin/tokens",
                          json={"user": "bob", "scopes": ["read"]}).status_code == 403
    with server.client() as admin:
        bobs = admin.post("/api/v1/admin/tokens", json={"user": "bob", "scopes": ["read"]})
        assert bobs.status_code == 201
        assert {t["user"] for t in admin.get("/api/v1/admin/tokens").json()["tokens"]} == {
            "alice", "bob"}
    with server.client(auth=("alice", "pw-a")) as alice:
        assert [t["user"] for t in alice.get("/api/v1/admin/tokens").json()["tokens"]] == [
            "alice"]
        assert alice.get("/api/v1/admin/tokens", params={"user": "bob"}).status_code == 403
        assert alice.delete(f"/api/v1/admin/tokens/{bobs.json()['id']}").status_code == 404
    with pytest.raises(PermissionDeniedError):
        make_token(storage, "alice", "admin")


@pytest.mark.parametrize("body", [
    {"scopes": ["write"]}, {"scopes": []}, {"scopes": ["read"], "expires": "soon"},
    {"scopes": ["read"], "allow_ips": ["10.0.0.0/33"]}, {"scopes": ["read"], "rate": "5"},
    {"scopes": ["read"], "description": "two\nlines"},
])
def test_bad_token_requests_are_refused_with_400(server: LiveServer, body: Any) -> None:
    with server.client() as admin:
        assert admin.post("/api/v1/admin/tokens", json=body).status_code == 400


_LINE = re.compile(
    r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO \[[^\]]+\] @[0-9A-F]{10} 127\.0\.0\.1 '
    r'"(GET|POST) (/\S*) HTTP/1\.1" trailkeeper\.auth\.(tokens|ratelimit) (.*)$')


def test_log_lines_follow_seed_001_and_hold_no_secret(
        server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    """Success, read-only write, IP refused, passed on, invalid bearer and rate limited."""
    storage = server.service.storage
    read = make_token(storage, rate="1/5m", description="CI poller")
    fenced = make_token(storage, allow_ips=("10.0.0.0/8",))
    caplog.set_level(logging.INFO, logger="trailkeeper.auth")
    with server.client(auth=None) as c:
        c.get("/api/v1/events", headers=bearer(read))
        c.get("/api/v1/events", headers=bearer(read))
        c.post("/api/v1/events", json=EVENT, headers=bearer(read))
        c.get("/api/v1/events", headers=bearer(fenced))
        c.get("/api/v1/events", headers=bearer("tkn_0000000000000000_" + "A" * 43))
    with server.client(auth=("admin", "tkn_not_a_token")) as c:
        c.get("/api/v1/events")
    formatter = TextFormatter()
    lines = [formatter.format(r) for r in caplog.records if r.name.startswith(
        "trailkeeper.auth.")]
    messages = []
    for line in lines:
        match = _LINE.match(line)
        assert match, line
        messages.append(match.group(4))
        for text in (read, fenced):
            assert tokens.parse(text)[1] not in line  # type: ignore[index]
    created = r"Token was created on [A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d\d:\d\d [AP]M\."
    expected = [
        rf'^Found a matching token "CI poller" with Read Only scope and authenticated user '
        rf"admin\. {created} REST endpoint: /api/v1/events$",
        r"^User admin has been rate limited\. The API token allows executing 1 requests "
        r"within 5 minutes\.$",
        r"^User admin has been rate limited\.",
        r"^Token verification for user admin failed: IP address 127\.0\.0\.1 of request is not "
        r"allowed to access the REST API and basic auth with password or personal access token"
        r" is disabled\. REST endpoint: /api/v1/events$",
        r"^Token verification for user \(unknown\) failed: No valid API token was provided and "
        r"basic auth with password or personal access token is disabled\. REST endpoint: "
        r"/api/v1/events$",
        r"^User admin tried to authenticate with an invalid token or regular password\. "
        r"Passing the request further to the default authenticator\. REST endpoint: "
        r"/api/v1/events$",
    ]
    assert len(messages) == len(expected), messages
    for pattern, message in zip(expected, messages, strict=True):
        assert re.search(pattern, message), (pattern, message)


def test_a_read_only_token_used_for_a_write_logs_the_seed_line(
        server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    read = make_token(server.service.storage)
    caplog.set_level(logging.INFO, logger="trailkeeper.auth")
    with server.client(auth=None) as c:
        assert c.post("/api/v1/events", json=EVENT, headers=bearer(read)).status_code == 403
    refused = [r.getMessage() for r in caplog.records if "verification" in r.getMessage()]
    assert refused == [
        "Token verification for admin user failed: The token scope is read-only and only "
        "covers GET, HEAD and OPTIONS requests. Request method type was POST. REST endpoint: "
        "/api/v1/events"]


def test_last_used_is_recorded_but_not_on_every_request(server: LiveServer) -> None:
    storage = server.service.storage
    text = make_token(storage)
    token_id = tokens.parse(text)[0]  # type: ignore[index]
    get_events(server, text)
    first = storage.get_token(token_id)
    assert first is not None and first.last_used_ms is not None
    get_events(server, text)
    again = storage.get_token(token_id)
    assert again is not None and again.last_used_ms == first.last_used_ms


def test_a_password_login_still_works_and_allows_every_scope(server: LiveServer) -> None:
    with server.client() as admin:
        assert admin.post("/api/v1/events", json=EVENT).status_code == 201
        assert admin.get("/api/v1/events").status_code == 200
    assert Scope.ADMIN in tokens.grantable_scopes(Role.SYSADMIN)
