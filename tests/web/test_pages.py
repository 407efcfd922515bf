"""The web UI over HTTP, without a browser: sign-in and sessions, CSRF, security headers,
escaping, bad input, permissions, settings, alerts and exports."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.routing import Route

from tests.conftest import LiveServer, start_server, without_search_records
from tests.factories import event
from tests.web.conftest import PASSWORD, add_users, csrf_token, login_token, signed_in
from tests.web.data import IMG, JS_URI, RLO, SCRIPT, hostile, many, raise_alert, sample, store
from trailkeeper.auth.passwords import hash_password
from trailkeeper.config import Settings
from trailkeeper.governance.config import coverage_setting, dumps
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.areas import CoverageArea
from trailkeeper.model.event import AuditAuthor
from trailkeeper.query.ast import In
from trailkeeper.storage.base import UserRecord
from trailkeeper.web import build_web, log
from trailkeeper.web.render import CSP
from trailkeeper.web.sessions import IDLE_MS, LIFETIME_MS, Sessions, session_id


def _records(server: LiveServer, action: str) -> list[dict[str, object]]:
    """The stored events of an action (after the queue is written)."""
    server.service.flush(10)
    page = server.service.storage.search(In("action", (action,)), limit=100)
    return [orjson.loads(e.doc) for e in page.events]


def _attributes(doc: dict[str, object]) -> dict[str, str]:
    return {a["name"]: a["value"] for a in doc.get("extraAttributes", [])}  # type: ignore[union-attr]


def _record_security(server: LiveServer) -> None:
    server.service.governance.change({coverage_setting(CoverageArea.SECURITY): dumps("full")})


# -- signing in ------------------------------------------------------------------------------


def test_every_page_sends_an_anonymous_visitor_to_sign_in(web: LiveServer) -> None:
    """GET pages redirect to the sign-in form (coming back afterwards); state-changing
    POSTs are refused without changing anything."""
    with httpx.Client(base_url=web.base_url) as c:
        for path in ("/audit/", "/audit/?category=Repositories", "/audit/settings",
                     "/audit/alerts", "/audit/resource/PROJECT,1", "/audit/export?format=csv",
                     "/audit/lookup/authors"):
            answer = c.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/audit/login"), path
        assert c.get("/audit/settings").headers["location"] == \
            "/audit/login?next=%2Faudit%2Fsettings"
        for path in ("/audit/settings/coverage", "/audit/alerts/acknowledge", "/audit/logout"):
            answer = c.post(path, data={"csrf": "x"})
            assert answer.status_code == 403, path
            assert "nothing was changed" in answer.text


def test_every_web_route_is_listed_in_the_tests(web: LiveServer) -> None:
    """The route table of the web app is what these tests cover (a new route fails here
    until it is added, with its sign-in rule)."""
    app: Any = build_web(web.service, Settings(home=Path("unused"), db_url="unused"))
    while not hasattr(app, "routes"):  # inside the header middlewares
        app = app.app
    routes = {(r.path, tuple(sorted(r.methods or ())))
              for r in app.routes if isinstance(r, Route)}
    assert routes == {
        ("/", ("GET", "HEAD")), ("/resource/{spec}", ("GET", "HEAD")),
        ("/export", ("GET", "HEAD")), ("/resource/{spec}/export", ("GET", "HEAD")),
        ("/lookup/{kind}", ("GET", "HEAD")), ("/login", ("GET", "HEAD")), ("/login", ("POST",)),
        ("/logout", ("POST",)), ("/settings", ("GET", "HEAD")), ("/settings/{section}", ("POST",)),
        ("/alerts", ("GET", "HEAD")), ("/alerts/acknowledge", ("POST",)),
    }


def test_http_credentials_do_not_open_the_web_ui(web: LiveServer) -> None:
    """Only a session opens the pages: HTTP Basic (which the API takes) is ignored."""
    with web.client() as c:
        assert c.get("/audit/").status_code == 303


def test_sign_in_starts_a_secure_session_and_records_it(web: LiveServer) -> None:
    _record_security(web)
    with httpx.Client(base_url=web.base_url) as c:
        form = c.get("/audit/login")
        assert form.status_code == 200
        assert "tk_login=" in form.headers["set-cookie"]
        answer = c.post("/audit/login", data={"user": "ada", "password": PASSWORD,
                                              "login_token": login_token(form.text),
                                              "next": "/audit/alerts"})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/audit/alerts"
        cookie = next(v for k, v in answer.headers.multi_items()
                      if k == "set-cookie" and v.startswith("tk_session="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/audit" in cookie
        assert "Max-Age" not in cookie  # ends with the browser too
        assert c.get("/audit/alerts").status_code == 200
    records = _records(web, "User authenticated")
    assert [r["method"] for r in records] == ["Browser"]
    assert records[0]["author"]["name"] == "ada"  # type: ignore[index]
    # Only the SHA-256 of the cookie's secret is stored.
    secret = cookie.split(";")[0].split("=", 1)[1]
    assert web.service.storage.get_session(secret) is None


def test_a_wrong_password_is_refused_recorded_and_logged(web: LiveServer,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    _record_security(web)
    with httpx.Client(base_url=web.base_url) as c:
        form = c.get("/audit/login")
        answer = c.post("/audit/login", data={"user": "ada", "password": "wrong",
                                              "login_token": login_token(form.text)})
        assert answer.status_code == 401
        assert "Invalid user name or password" in answer.text
        assert "tk_session" not in answer.headers.get("set-cookie", "")
        unknown = c.post("/audit/login", data={"user": "nobody", "password": "x",
                                               "login_token": login_token(answer.text)})
        assert unknown.status_code == 401
    failures = _records(web, "User login failed")
    reasons = sorted(_attributes(r)["Reason"] for r in failures)
    assert reasons == ["unknown user", "wrong password"]
    assert {r["method"] for r in failures} == {"Browser"}
    assert "web sign-in of 'ada' from 127.0.0.1 failed: wrong password" in caplog.text


def test_failed_sign_ins_are_limited(web: LiveServer) -> None:
    """After ten failures for one user from one address, even the right password waits
    (429 with Retry-After) and the refusal is recorded; other users are not affected."""
    _record_security(web)
    with httpx.Client(base_url=web.base_url) as c:
        token = login_token(c.get("/audit/login").text)
        for _ in range(10):
            answer = c.post("/audit/login", data={"user": "ada", "password": "nope",
                                                  "login_token": token})
            token = login_token(answer.text)
            assert answer.status_code == 401
        blocked = c.post("/audit/login", data={"user": "ada", "password": PASSWORD,
                                               "login_token": token})
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0
        assert "Too many failed attempts" in blocked.text
        other = c.post("/audit/login", data={"user": "aud", "password": PASSWORD,
                                             "login_token": login_token(blocked.text)})
        assert other.status_code == 303
    reasons = [_attributes(r)["Reason"] for r in _records(web, "User login failed")]
    assert reasons.count("rate limited") == 1


def test_the_sign_in_form_needs_its_own_token(web: LiveServer) -> None:
    """A sign-in posted from elsewhere (login CSRF) has no token cookie: nothing happens."""
    with httpx.Client(base_url=web.base_url) as c:
        answer = c.post("/audit/login", data={"user": "ada", "password": PASSWORD,
                                              "login_token": "forged"})
        assert answer.status_code == 400
        assert "tk_session" not in answer.headers.get("set-cookie", "")
        cross = c.post("/audit/login", data={"user": "ada", "password": PASSWORD},
                       headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403


def test_next_never_leads_to_another_site(web: LiveServer) -> None:
    with httpx.Client(base_url=web.base_url) as c:
        for target in ("https://evil.example/", "//evil.example/", "/audit/\\evil", "/other"):
            form = c.get("/audit/login", params={"next": target})
            assert 'name="next" value="/audit/"' in form.text, target


def test_sign_out_ends_the_session_on_the_server(web: LiveServer) -> None:
    """A copy of the cookie is worthless after signing out."""
    with signed_in(web, "ada") as c:
        cookie = c.cookies["tk_session"]
        token = csrf_token(c.get("/audit/").text)
        answer = c.post("/audit/logout", data={"csrf": token})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/audit/login?done=out"
    with httpx.Client(base_url=web.base_url, cookies={"tk_session": cookie}) as replay:
        assert replay.get("/audit/").status_code == 303


def test_a_new_password_or_a_disabled_user_ends_sessions(web: LiveServer) -> None:
    storage = web.service.storage
    with signed_in(web, "ada") as first, signed_in(web, "aud") as second:
        storage.put_user(UserRecord("ada", hash_password("another password 43"), "admin"))
        assert first.get("/audit/").status_code == 303
        storage.put_user(UserRecord("aud", hash_password(PASSWORD), "auditor", disabled=True))
        assert second.get("/audit/").status_code == 303


def test_sessions_expire_when_idle_and_at_their_end(web: LiveServer) -> None:
    storage = web.service.storage
    now = [1_000_000]
    sessions = Sessions(storage, clock=lambda: now[0])
    user = storage.get_user("ada")
    assert user is not None
    idle = sessions.start(user, "127.0.0.1")
    for _ in range(3):  # each request keeps it alive
        now[0] += IDLE_MS - 1
        assert sessions.resume(idle) is not None
    now[0] += IDLE_MS
    assert sessions.resume(idle) is None
    started = now[0]
    busy = sessions.start(user, None)
    while now[0] + IDLE_MS // 2 < started + LIFETIME_MS:
        now[0] += IDLE_MS // 2
        assert sessions.resume(busy) is not None
    now[0] = started + LIFETIME_MS
    assert sessions.resume(busy) is None
    assert storage.get_session(session_id(busy)) is not None  # deleted at the next sign-in
    sessions.start(user, None)
    assert storage.get_session(session_id(busy)) is None
    assert storage.get_session(session_id(idle)) is None


# -- CSRF and headers ------------------------------------------------------------------------


def test_a_forged_post_changes_nothing(web: LiveServer) -> None:
    """With the session cookie but without the page's token, or from another site, a
    state-changing request is refused (403) and the setting stays as it was."""
    with signed_in(web) as c:
        token = csrf_token(c.get("/audit/settings").text)
        body = {"level.security": "off", "confirm": "yes"}
        for data, headers in (
            (body, {}),
            ({**body, "csrf": "A" * 43}, {}),
            ({**body, "csrf": token}, {"Origin": "http://evil.example"}),
            ({**body, "csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
        ):
            answer = c.post("/audit/settings/coverage", data=data, headers=headers)
            assert answer.status_code == 403, (data, headers)
            assert "nothing was changed" in answer.text
        assert web.service.governance.reload().coverage[CoverageArea.SECURITY].value == "BASE"
        good = c.post("/audit/settings/coverage", data={**body, "csrf": token},
                      headers={"Origin": web.base_url})
        assert good.status_code == 303
        assert web.service.governance.reload().coverage[CoverageArea.SECURITY].value == "OFF"


def test_every_response_carries_the_security_headers(web: LiveServer) -> None:
    with signed_in(web) as c:
        pages = [c.get(p) for p in ("/audit/", "/audit/settings", "/audit/alerts", "/audit/nope",
                                    "/audit/login", "/audit/export?format=csv")]
        static = c.get(re.search(r'href="(/audit/static/app\.css\?v=\w+)"',
                                 pages[0].text).group(1))  # type: ignore[union-attr]
    for answer in [*pages, static]:
        assert answer.headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
        assert "unsafe" not in CSP
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
    assert [p.headers["cache-control"] for p in pages] == ["no-store"] * len(pages)
    assert static.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert pages[3].status_code == 404


def test_pages_hold_no_inline_script_or_style(web: LiveServer) -> None:
    sample(web.service)
    with signed_in(web) as c:
        for path in ("/audit/", "/audit/settings", "/audit/alerts", "/audit/login"):
            html = c.get(path).text
            assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], path
            assert " style=" not in html and "<style" not in html, path
            assert re.findall(r"\son[a-z]+=", html) == [], path


# -- the log page ----------------------------------------------------------------------------


def test_a_hostile_event_is_shown_as_text(web: LiveServer) -> None:
    without_search_records(web.service)
    hostile(web.service)
    with signed_in(web) as c:
        html = c.get("/audit/").text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;pwned-1&#39;)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=&#34;alert(&#39;pwned-2&#39;)&#34;&gt;" in html
    assert 'href="javascript' not in html and "href='javascript" not in html
    assert "javascript:alert(&#39;pwned-3&#39;)" in html  # shown, as text
    assert RLO not in html and "U+202E" in html and "U+2028" in html
    assert SCRIPT not in html and IMG not in html and JS_URI not in html


def test_the_log_shows_newest_first_with_a_chart_and_records_the_search(web: LiveServer
                                                                        ) -> None:
    ids = sample(web.service)
    with signed_in(web) as c:
        html = c.get("/audit/?category=Repositories").text
    shown = [int(i) for i in re.findall(r'<details class="event" id="event-(\d+)"', html)]
    assert shown == sorted(ids["recent"] + ids["prj"] + ids["ops"] + ids["rich"],
                           key=lambda i: -_timestamp(web, i))
    assert re.search(r"<span data-total>13</span> events", html)
    assert html.count('class="bar"') >= 2
    searches = _records(web, "Audit Log search performed")
    query = [_attributes(r)["Query"] for r in searches]
    assert "category=Repositories" in query
    assert all(r["method"] == "Browser" for r in searches)


def test_a_chart_over_its_time_budget_is_offered_instead(
        web: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the page's budget the page comes without its chart and with a link that draws
    it without the budget."""
    sample(web.service)
    monkeypatch.setattr(log, "PAGE_BUDGET_MS", 0)
    with signed_in(web) as c:
        html = c.get("/audit/?category=Repositories").text
        assert 'class="bar"' not in html and "The chart was not drawn" in html
        anyway = re.search(r'<a href="([^"]+)">draw it anyway</a>', html)
        assert anyway is not None
        assert anyway.group(1) == "/audit/?category=Repositories&amp;chart=full"
        drawn = c.get(anyway.group(1).replace("&amp;", "&")).text
    assert re.search(r"<span data-total>13</span> events", drawn)


def _timestamp(server: LiveServer, event_id: int) -> int:
    found = server.service.storage.get(event_id)
    assert found is not None
    return found.timestamp_ms * 1_000_000 + event_id


@pytest.mark.parametrize(("query", "column"), [
    ('action:"Repository created" AND', 32), ("author:(alice", 14), ("actoin:x", 1)])
def test_a_bad_query_is_an_inline_error_with_its_column(web: LiveServer, query: str,
                                                        column: int) -> None:
    sample(web.service)
    with signed_in(web) as c:
        answer = c.get("/audit/", params={"q": query})
    assert answer.status_code == 400
    assert f"Query error at column {column}:" in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert '<details class="event"' not in answer.text


def test_bad_times_and_values_get_a_message_beside_their_field(web: LiveServer) -> None:
    with signed_in(web) as c:
        answer = c.get("/audit/", params={"range": "custom", "from": "yesterday-ish",
                                          "to": "2024-01-01", "limit": "7", "area": "MOON",
                                          "older": "not-a-cursor"})
    assert answer.status_code == 400
    for text in ('id="f-from-error"', "Page size must be one of 25, 50, 100, 200",
                 "Unknown area &#39;MOON&#39;", "This page link is damaged"):
        assert text in answer.text


def test_delegated_admins_see_their_objects_only(web: LiveServer) -> None:
    ids = sample(web.service)
    without_search_records(web.service)
    with signed_in(web, "pat") as c:
        html = c.get("/audit/").text
        shown = {int(i) for i in re.findall(r'id="event-(\d+)"', html)}
        assert shown == set(ids["ops"] + ids["permission"])
        assert 'href="/audit/alerts"' not in html and 'href="/audit/settings"' not in html
        assert c.get("/audit/resource/PROJECT,2").status_code == 200
        refused = c.get("/audit/resource/PROJECT,1")
        assert refused.status_code == 403
        assert "You do not administer PROJECT 1" in refused.text
        assert c.get("/audit/resource/PROJECT,1/export?format=csv").status_code == 403
        assert c.get("/audit/alerts").status_code == 403
        assert c.get("/audit/settings").status_code == 403
        assert c.get("/audit/lookup/authors?search=a").json() == {"suggestions": []}
        assert c.get("/audit/lookup/objects?type=PROJECT").json() == {
            "suggestions": [{"value": "PROJECT,2", "label": "OPS"}]}
        # An object filter cannot widen the scope.
        widened = c.get("/audit/", params={"object": "PROJECT,1"}).text
        assert re.findall(r'id="event-(\d+)"', widened) == []


def test_a_plain_user_sees_their_own_events(web: LiveServer) -> None:
    mine = store(web.service, event(author=AuditAuthor("uma", "uma", "NORMAL")))
    sample(web.service)
    without_search_records(web.service)
    with signed_in(web, "uma") as c:
        shown = [int(i) for i in re.findall(r'id="event-(\d+)"', c.get("/audit/").text)]
    assert shown == mine


def test_exports_stream_the_view_and_are_recorded(web: LiveServer) -> None:
    ids = sample(web.service)
    with signed_in(web) as c:
        csv_answer = c.get("/audit/export", params={"format": "csv", "author": "12"})
        ndjson = c.get("/audit/export", params={"format": "ndjson", "object": "REPOSITORY,8"})
        unknown = c.get("/audit/export", params={"format": "exe"})
        broken = c.get("/audit/export", params={"format": "csv", "q": "a:("})
    assert csv_answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv_answer.headers["content-disposition"].startswith('attachment; filename="audit-log-')
    rows = list(csv.reader(io.StringIO(csv_answer.text)))
    assert rows[0][:3] == ["Timestamp", "Author", "Author ID"]
    assert len(rows) - 1 == len(ids["ops"] + ids["permission"])
    lines = [orjson.loads(line) for line in ndjson.text.splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(ids["ops"] + ids["permission"])
    assert unknown.status_code == 404 and broken.status_code == 400
    exports = _records(web, "Audit Log exported")
    assert sorted(_attributes(r)["Format"] for r in exports) == ["CSV", "NDJSON"]
    assert {_attributes(r)["Results returned"] for r in exports} == {"5"}


def test_pages_page_by_keyset_both_ways(web: LiveServer) -> None:
    ids = many(web.service, 120)
    without_search_records(web.service)
    seen: list[int] = []
    with signed_in(web) as c:
        html = c.get("/audit/?limit=25").text
        while True:
            seen += [int(i) for i in re.findall(r'id="event-(\d+)"', html)]
            older = re.search(r'<a rel="next" href="([^"]+)"', html)
            if older is None:
                break
            html = c.get(older.group(1).replace("&amp;", "&")).text
        assert seen == sorted(ids, reverse=True)
        back: list[int] = []
        while True:
            newer = re.search(r'<a rel="prev" href="([^"]+)"', html)
            if newer is None:
                break
            html = c.get(newer.group(1).replace("&amp;", "&")).text
            back = [int(i) for i in re.findall(r'id="event-(\d+)"', html)] + back
    assert back[:25] == sorted(ids, reverse=True)[:25]


# -- settings and alerts ---------------------------------------------------------------------


def test_a_setting_changes_only_after_confirmation_and_is_recorded(web: LiveServer) -> None:
    with signed_in(web) as c:
        token = csrf_token(c.get("/audit/settings").text)
        review = c.post("/audit/settings/retention", data={
            "csrf": token, "years": "1", "months": "6", "days": "0", "max_rows": "500000"})
        assert review.status_code == 200
        assert "3 Years" in review.text and "1 Year 6 Months" in review.text
        assert web.service.governance.reload().max_rows == 10_000_000  # not yet
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">',
                                 review.text))
        done = c.post("/audit/settings/retention", data=fields)
        assert done.status_code == 303
        assert done.headers["location"] == "/audit/settings?saved=retention#retention"
        assert "Database retention saved" in c.get(done.headers["location"]).text
    config = web.service.governance.reload()
    assert (config.retention.years, config.retention.months, config.max_rows) == (1, 6, 500000)
    record = _records(web, "Audit Log configuration updated")[0]
    assert record["method"] == "Browser" and record["author"]["name"] == "admin"  # type: ignore[index]
    assert {(v["key"], v.get("from"), v.get("to")) for v in record["changedValues"]} == {  # type: ignore[union-attr]
        ("Retention period", "3 Years", "1 Year 6 Months"),
        ("Retention row cap", "10000000", "500000")}


@pytest.mark.parametrize(("section", "fields", "message"), [
    ("coverage", {"level.security": "loud"}, "No such value found: loud"),
    ("retention", {"years": "-1"}, "period.years may not be negative"),
    ("retention", {"years": "1", "max_rows": "12"}, "the row cap must be between 10,000"),
    ("file-retention", {"max_files": "many"}, "must be a whole number"),
    ("policy", {"preset": "LOUD"}, "unknown audit policy"),
    ("denylist", {"add": "x" * 300}, "action names have at most 255"),
])
def test_bad_settings_are_refused_with_a_message(web: LiveServer, section: str,
                                                 fields: dict[str, str], message: str) -> None:
    before = web.service.governance.reload()
    with signed_in(web) as c:
        token = csrf_token(c.get("/audit/settings").text)
        answer = c.post(f"/audit/settings/{section}", data={"csrf": token, **fields})
    assert answer.status_code == 400
    assert message in answer.text.replace("&#39;", "'")
    assert web.service.governance.reload() == before


def test_admins_see_settings_read_only(web: LiveServer) -> None:
    with signed_in(web, "ada") as c:
        html = c.get("/audit/settings").text
        assert "only system administrators can change them" in html
        assert "Review change" not in html and "<select" not in html
        refused = c.post("/audit/settings/coverage", data={
            "csrf": csrf_token(html), "level.security": "off", "confirm": "yes"})
        assert refused.status_code == 403
    with signed_in(web, "aud") as c:
        assert c.get("/audit/settings").status_code == 403


def test_alerts_are_listed_acknowledged_and_open_their_events(web: LiveServer) -> None:
    ids = sample(web.service)
    alert = raise_alert(web.service, ids["ops"][:2], title="Deleted twice <b>")
    with signed_in(web, "ada") as c:
        html = c.get("/audit/alerts?status=open").text
        assert f'id="alert-{alert}"' in html and "Deleted twice &lt;b&gt;" in html
        done = c.post("/audit/alerts/acknowledge", data={
            "csrf": csrf_token(html), "id": str(alert), "back": "?status=open"})
        assert done.status_code == 303
        assert done.headers["location"] == "/audit/alerts?status=open&done=1"
        assert "1 alert acknowledged" in c.get(done.headers["location"]).text
        events = c.get(f"/audit/?alert={alert}").text
        assert sorted(int(i) for i in re.findall(r'id="event-(\d+)"', events)) == \
            sorted(ids["ops"][:2])
        assert f"Events matched by alert <strong>#{alert}</strong>" in events
    stored = web.service.storage.get_alert(alert)
    assert stored is not None and stored.status == "acknowledged"
    assert stored.acknowledged_by == "ada"
    record = _records(web, "Alert acknowledged")[0]
    assert record["method"] == "Browser"
    with signed_in(web, "aud") as c:  # auditors see alerts, do not acknowledge them
        html = c.get("/audit/alerts").text
        assert "Acknowledge selected" not in html
        assert c.post("/audit/alerts/acknowledge", data={
            "csrf": csrf_token(html), "id": str(alert)}).status_code == 403


def test_lookups_feed_the_pickers(web: LiveServer) -> None:
    sample(web.service)
    with signed_in(web) as c:
        authors = c.get("/audit/lookup/authors", params={"search": "bo"}).json()
        objects = c.get("/audit/lookup/objects", params={"type": "REPOSITORY",
                                                         "search": "rep_"}).json()
    assert authors == {"suggestions": [{"value": "12", "label": "bob"}]}
    assert {s["value"] for s in objects["suggestions"]} == {"REPOSITORY,7", "REPOSITORY,8"}


def test_the_ui_works_under_a_context_path(service: AuditService, tmp_path: Path) -> None:
    """With ``--context-path /bitbucket`` every link, redirect and cookie stays under it."""
    with start_server(service, tmp_path, context_path="/bitbucket") as live:
        add_users(service)
        sample(service)
        with httpx.Client(base_url=live.base_url) as c:
            assert c.get("/audit/settings").headers["location"] == \
                "/bitbucket/audit/login?next=%2Fbitbucket%2Faudit%2Fsettings"
            form = c.get("/audit/login")
            assert 'action="/bitbucket/audit/login"' in form.text
            done = c.post("/audit/login", data={"user": "ada", "password": PASSWORD,
                                                "login_token": login_token(form.text),
                                                "next": "/bitbucket/audit/settings"})
            assert done.headers["location"] == "/bitbucket/audit/settings"
            assert "Path=/bitbucket/audit" in done.headers["set-cookie"]
            html = c.get("/audit/?category=Repositories").text
            assert 'href="/bitbucket/audit/static/app.css?v=' in html
            older_or_bar = re.findall(r'href="(/bitbucket/audit/\?[^"]*)"', html)
            assert older_or_bar and all(h.startswith("/bitbucket/audit/") for h in older_or_bar)
            assert c.get("/audit/export?format=csv").status_code == 200
