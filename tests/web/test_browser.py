"""The web UI in a real browser: Debian's Chromium driven by Playwright, against the real
app served by uvicorn on loopback, on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import http.server
import re
import subprocess
import threading
from collections.abc import Iterator
from datetime import datetime

import orjson
import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from tests.conftest import LiveServer, free_port, without_search_records
from tests.web.conftest import CHROMIUM, PASSWORD, sign_in
from tests.web.data import hostile, many, raise_alert, sample
from trailkeeper.model.areas import CoverageArea
from trailkeeper.model.timestamps import parse_iso
from trailkeeper.query.ast import In

ROWS = "details.event"


def _ids(page: Page) -> list[int]:
    return [int(i.removeprefix("event-"))
            for i in page.locator(ROWS).evaluate_all("rows => rows.map(r => r.id)")]


def _apply(page: Page) -> None:
    if page.locator("details.picker[open]").count():
        page.keyboard.press("Escape")  # an open picker's list covers the button
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()


def _open(page: Page, picker: str) -> None:
    page.locator(".picker > summary").filter(has_text=re.compile(f"^{picker}")).click()


def _clear(page: Page) -> None:
    page.get_by_role("link", name="Clear filters").click()
    page.wait_for_load_state()


def test_the_browser_is_debians_chromium(browser: Browser) -> None:
    """The browser driven is the one of Debian's package (its version is the package's),
    not one Playwright downloaded."""
    assert CHROMIUM == "/usr/bin/chromium"
    package = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "chromium"],
                             capture_output=True, text=True, check=True).stdout
    assert package.startswith(browser.version + "-"), (package, browser.version)


def test_sign_in_with_a_wrong_then_the_right_password_and_sign_out(web: LiveServer,
                                                                  page: Page) -> None:
    page.goto(web.base_url + "/audit/?category=Repositories")
    expect(page).to_have_url(re.compile(r"/audit/login\?next="))
    page.get_by_label("User name").fill("ada")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid user name or password.")
    expect(page.get_by_label("User name")).to_have_value("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/audit/\?category=Repositories$"))
    expect(page.get_by_role("heading", name="Audit log", exact=True)).to_be_visible()
    expect(page.locator(".who")).to_contain_text("ada")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    page.goto(web.base_url + "/audit/")
    expect(page).to_have_url(re.compile(r"/audit/login$"))


def test_filters_narrow_the_log(web: LiveServer, page: Page) -> None:
    """Time preset, category, action, author and object pickers (fed by the lookup
    catalogues), free text, and the query language with its inline error."""
    ids = sample(web.service)
    without_search_records(web.service)
    sign_in(page, web)
    rows = page.locator(ROWS)
    expect(rows).to_have_count(14)

    page.get_by_label("Time", exact=True).select_option("24h")
    _apply(page)
    expect(page).to_have_url(re.compile(r"range=24h"))
    assert sorted(_ids(page)) == sorted(ids["recent"])
    _clear(page)

    _open(page, "Categories")
    page.get_by_role("checkbox", name="Permissions", exact=True).check()
    _apply(page)
    assert _ids(page) == ids["permission"]
    expect(page.get_by_text("Categories 1")).to_be_visible()
    _clear(page)

    _open(page, "Actions")
    page.get_by_label("Find an action", exact=True).fill("deleted")
    expect(page.get_by_role("checkbox", name="Repository created")).to_be_hidden()
    page.get_by_role("checkbox", name="Repository deleted").check()
    _apply(page)
    assert sorted(_ids(page)) == sorted(ids["ops"])
    _clear(page)

    page.get_by_label("Authors", exact=True).fill("bo")
    expect(page.locator("#f-author-list option[value='12']")).to_have_count(1)
    page.get_by_label("Authors", exact=True).fill("12")
    _apply(page)
    expect(page.locator(".chip")).to_have_text(re.compile(r"bob \(12\)"))
    assert sorted(_ids(page)) == sorted(ids["ops"] + ids["permission"])
    _clear(page)

    page.get_by_label("Type of the object to add").select_option("REPOSITORY")
    page.get_by_label("Affected objects", exact=True).fill("rep_1")
    expect(page.locator("#f-object-list option[value='REPOSITORY,7']")).to_have_count(1)
    page.get_by_label("Affected objects", exact=True).fill("REPOSITORY,7")
    _apply(page)
    expect(page.locator(".chip")).to_have_text(re.compile(r"rep_1 \(REPOSITORY 7\)"))
    assert sorted(_ids(page)) == sorted(ids["prj"] + ids["rich"])
    page.get_by_role("link", name=re.compile("Remove object")).click()
    expect(rows).to_have_count(14)

    page.get_by_label("Words", exact=True).fill("rep_2")
    _apply(page)
    assert sorted(_ids(page)) == sorted(ids["ops"] + ids["permission"])
    _clear(page)

    query = page.get_by_label("Query", exact=True)
    query.fill('action:"Repository created" AND')
    _apply(page)
    expect(page.locator("#q-error")).to_contain_text("Query error at column 32")
    expect(query).to_have_attribute("aria-invalid", "true")
    expect(rows).to_have_count(0)
    query.fill('author:alice AND action:"Repository created"')
    _apply(page)
    assert sorted(_ids(page)) == sorted(ids["prj"] + ids["rich"] + ids["recent"])


def test_a_row_expands_from_the_keyboard_showing_every_field(web: LiveServer,
                                                             page: Page) -> None:
    ids = sample(web.service)
    without_search_records(web.service)
    sign_in(page, web)
    rich = ids["rich"][0]
    position = _ids(page).index(rich)
    summaries = page.locator(f"{ROWS} > summary")
    summaries.nth(position - 1).focus()
    page.keyboard.press("Tab")
    target = page.locator(f"#event-{rich}")
    expect(target.locator("> summary")).to_be_focused()
    assert target.locator("> summary").evaluate(
        "s => getComputedStyle(s).outlineStyle") == "solid"  # a visible focus ring
    page.keyboard.press("Enter")
    expect(target).to_have_attribute("open", "")
    detail = target.locator(".detail")
    changes = detail.get_by_role("table", name="Changed values")
    expect(changes.locator("tbody tr")).to_have_text(
        re.compile(r"Description\s*bitbucket\.audit\.description\s*old text\s*→\s*new text"))
    expect(detail.get_by_role("table", name="Extra attributes")).to_contain_text("target")
    expect(detail.get_by_role("table", name="Affected objects")).to_contain_text("rep_1")
    for text in ("10.50.73.5", "8767044c-1b98-4d64-82db-ef29af8c3792", "alice",
                 "LOCAL_CONFIG_AND_ADMINISTRATION / BASE"):
        expect(detail).to_contain_text(text)
    expect(detail.get_by_role("link", name="http://bitbucket.internal:7990")).to_have_attribute(
        "href", "http://bitbucket.internal:7990")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1280
    page.keyboard.press("Enter")
    expect(target).not_to_have_attribute("open", "")


def test_paging_deep_with_older_and_newer(web: LiveServer, page: Page) -> None:
    ids = many(web.service, 130)
    without_search_records(web.service)
    sign_in(page, web, path="/audit/?limit=25")
    pages = [_ids(page)]
    while page.get_by_role("link", name="Older →").count():
        page.get_by_role("link", name="Older →").click()
        page.wait_for_load_state()
        pages.append(_ids(page))
    assert [len(p) for p in pages] == [25, 25, 25, 25, 25, 5]
    assert [i for p in pages for i in p] == sorted(ids, reverse=True)
    expect(page).to_have_url(re.compile(r"older=\d+%2C\d+"))
    for expected in reversed(pages[:-1]):
        page.get_by_role("link", name="← Newer").click()
        page.wait_for_load_state()
        assert _ids(page) == expected
    expect(page.get_by_role("link", name="← Newer")).to_have_count(0)


def test_a_chart_bar_zooms_into_its_range(web: LiveServer, page: Page) -> None:
    many(web.service, 300)
    without_search_records(web.service)
    sign_in(page, web)
    heading = page.locator("#chart-title")
    expect(heading).to_contain_text("300 events")
    expect(heading).to_contain_text("one bar per 5 minutes")
    bars = page.locator("[data-bars] a")
    last = bars.nth(bars.count() - 1)
    expect(last).to_have_attribute("tabindex", "0")  # one tab stop; arrows move
    last.focus()
    page.keyboard.press("ArrowLeft")
    bar = bars.nth(bars.count() - 2)
    expect(bar).to_be_focused()
    label = bar.get_attribute("aria-label") or ""
    expected = int(re.search(r": (\d+) events?", label).group(1))  # type: ignore[union-attr]
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"range=custom&from=[^&]+&to="))
    expect(page.get_by_label("From", exact=True)).to_be_visible()
    times = [parse_iso(t) for t in page.locator(f"{ROWS} > summary time").evaluate_all(
        "ts => ts.map(t => t.getAttribute('datetime'))")]
    start, end = (parse_iso(page.get_by_label(n, exact=True).input_value())
                  for n in ("From", "To (inclusive)"))
    assert len(times) == expected and all(start <= t <= end for t in times)
    expect(heading).to_contain_text(f"{expected} events")
    expect(heading).to_contain_text("one bar per 1 minute")


def test_exports_of_the_current_view(web: LiveServer, page: Page) -> None:
    ids = sample(web.service)
    sign_in(page, web, path="/audit/?author=12")
    with page.expect_download() as csv_download:
        page.get_by_role("link", name="CSV").click()
    with page.expect_download() as ndjson_download:
        page.get_by_role("link", name="NDJSON").click()
    assert csv_download.value.suggested_filename.endswith(".csv")
    with open(csv_download.value.path(), encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Timestamp", "Author", "Author ID", "Category", "Summary", "System",
                       "Affected objects", "Changed values", "Source", "Method", "Node",
                       "Attributes"]
    assert {r[1] for r in rows[1:]} == {"bob"} and len(rows) == 6
    lines = [orjson.loads(line) for line in
             ndjson_download.value.path().read_text(encoding="utf-8").splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(ids["ops"] + ids["permission"])
    web.service.flush(10)
    exported = web.service.storage.search(In("action", ("Audit Log exported",)), limit=10)
    assert len(exported.events) == 2


def test_a_bookmarked_view_restores_its_filter(web: LiveServer, page: Page,
                                               browser: Browser) -> None:
    ids = sample(web.service)
    without_search_records(web.service)
    sign_in(page, web)
    _open(page, "Categories")
    page.get_by_role("checkbox", name="Repositories", exact=True).check()
    page.get_by_label("Authors", exact=True).fill("alice")
    page.get_by_label("Words", exact=True).fill("rep")
    page.get_by_label("Query", exact=True).fill("NOT object.name:fresh-repo")
    page.get_by_label("Per page", exact=True).select_option("25")
    _apply(page)
    shown = _ids(page)
    assert sorted(shown) == sorted(ids["prj"] + ids["rich"])
    link = page.url
    other = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        shared = other.new_page()
        shared.goto(link)
        shared.get_by_label("User name").fill("aud")
        shared.get_by_label("Password").fill(PASSWORD)
        shared.get_by_role("button", name="Sign in").click()
        shared.wait_for_url(link)
        assert _ids(shared) == shown
        expect(shared.locator("input[name=category][value=Repositories]")).to_be_checked()
        expect(shared.get_by_text("Categories 1")).to_be_visible()
        expect(shared.locator(".chip")).to_contain_text("alice")
        expect(shared.get_by_label("Words", exact=True)).to_have_value("rep")
        expect(shared.get_by_label("Query", exact=True)).to_have_value("NOT object.name:fresh-repo")
        expect(shared.get_by_label("Per page", exact=True)).to_have_value("25")
    finally:
        other.close()


def test_a_sysadmin_changes_a_setting_and_an_admin_sees_it_read_only(web: LiveServer,
                                                                     page: Page) -> None:
    sign_in(page, web, path="/audit/settings")
    page.get_by_label("security", exact=True).select_option("full")
    page.locator("#coverage").get_by_role("button", name="Review change…").click()
    expect(page.get_by_role("heading")).to_have_text(re.compile("Confirm the change: Coverage"))
    expect(page.get_by_role("row", name=re.compile("Coverage level"))).to_have_text(
        re.compile(r"security : base\s*→\s*security : full"))
    assert web.service.governance.reload().coverage[CoverageArea.SECURITY].value == "BASE"
    page.get_by_role("button", name="Apply the change").click()
    expect(page.get_by_role("status")).to_have_text(
        "Coverage saved, and recorded in the audit log.")
    expect(page.get_by_label("security", exact=True)).to_have_value("full")
    page.get_by_role("link", name="Audit Log configuration updated").click()
    record = page.locator(ROWS).first
    record.locator("> summary").click()
    expect(record.get_by_role("table", name="Changed values")).to_contain_text("security : full")
    expect(record).to_contain_text("Browser")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, web, "ada", path="/audit/settings")
    expect(page.get_by_role("note")).to_contain_text("only system administrators can change")
    expect(page.get_by_role("button", name="Review change…")).to_have_count(0)
    expect(page.locator("#level-security")).to_have_text("full")


def test_an_alert_is_acknowledged_and_opens_its_events(web: LiveServer, page: Page) -> None:
    ids = sample(web.service)
    matched = ids["ops"][:2]
    alert = raise_alert(web.service, matched, title="Repositories deleted in a row")
    sign_in(page, web, "ada", path="/audit/alerts")
    row = page.locator(f"#alert-{alert}")
    expect(row).to_contain_text("Repositories deleted in a row")
    expect(row).to_contain_text("open")
    row.get_by_role("button", name=f"Acknowledge alert {alert}").click()
    expect(page.get_by_role("status")).to_contain_text("1 alert acknowledged")
    expect(row).to_contain_text("acknowledged by ada")
    row.get_by_role("link", name="Events (2)").click()
    expect(page.locator(".banner")).to_contain_text(f"Events matched by alert #{alert}")
    assert sorted(_ids(page)) == sorted(matched)


def test_a_delegated_admin_sees_only_their_objects(web: LiveServer, page: Page) -> None:
    ids = sample(web.service)
    without_search_records(web.service)
    sign_in(page, web, "pat")
    assert sorted(_ids(page)) == sorted(ids["ops"] + ids["permission"])
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(["Audit log"])
    page.get_by_role("navigation", name="Objects you administer").get_by_role(
        "link", name="PROJECT OPS").click()
    expect(page).to_have_url(re.compile(r"/audit/resource/PROJECT,2$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        re.compile(r"Audit log of PROJECT\s+OPS"))
    assert sorted(_ids(page)) == sorted(ids["ops"] + ids["permission"])
    page.get_by_label("Words", exact=True).fill("granted")
    _apply(page)
    expect(page).to_have_url(re.compile(r"/audit/resource/PROJECT,2\?search=granted"))
    assert _ids(page) == ids["permission"]
    page.goto(web.base_url + "/audit/resource/PROJECT,1")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    expect(page.get_by_role("alert")).to_contain_text("You do not administer PROJECT 1")


@pytest.fixture
def attacker() -> Iterator[dict[str, str]]:
    """A page on another origin (same host, another port) whose form posts to us."""
    pages: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    pages["base"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield pages
    finally:
        server.shutdown()
        server.server_close()


def test_a_forged_post_is_refused(web: LiveServer, page: Page,
                                  attacker: dict[str, str]) -> None:
    """A signed-in sysadmin visits another site whose page posts a settings change to us
    (the browser sends the cookie: same host, another port); then a request with the
    cookie but without the page's token. Both are refused and nothing changes."""
    sign_in(page, web, path="/audit/settings")
    attacker["/"] = f"""<form id="f" method="post"
        action="{web.base_url}/audit/settings/coverage">
      <input name="level.security" value="off"><input name="confirm" value="yes">
      <input name="csrf" value="guessed"></form>
      <script>document.getElementById("f").submit()</script>"""
    page.goto(attacker["base"] + "/")
    page.wait_for_url(re.compile(r"/audit/settings/coverage$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Form rejected")
    expect(page.get_by_role("alert")).to_contain_text("nothing was changed")
    answer = page.request.post(web.base_url + "/audit/settings/coverage",
                               form={"level.security": "off", "confirm": "yes"})
    assert answer.status == 403
    assert web.service.governance.reload().coverage[CoverageArea.SECURITY].value == "BASE"


def test_a_hostile_event_renders_inertly(web: LiveServer, page: Page) -> None:
    """Markup, script, event handlers, javascript: URIs, a line separator and a bidi
    override in every field: no dialog opens, no script runs, no console error (a CSP
    violation would be one), and the text is visible as text."""
    without_search_records(web.service)
    hostile(web.service)
    dialogs: list[str] = []
    errors: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, web)
    row = page.locator(ROWS).first
    summary = row.locator("> summary")
    expect(summary.locator(".c-category")).to_have_text(
        "Category: Cat <script>alert('pwned-1')</script>")
    expect(summary.locator(".c-action")).to_have_text(
        "Action: Act \"><img src=x onerror=\"alert('pwned-2')\">")
    summary.click()
    detail = row.locator(".detail")
    expect(detail).to_contain_text("mallory <script>alert('pwned-1')</script>")
    expect(detail).to_contain_text("javascript:alert('pwned-3')")
    expect(detail.locator(".ctl", has_text="U+202E").first).to_be_visible()
    expect(detail.locator(".ctl", has_text="U+2028").first).to_be_visible()
    assert page.locator("a[href^='javascript'], img, [onerror]").count() == 0
    for link in detail.locator("a").all():
        assert not (link.get_attribute("href") or "").lower().startswith("javascript")
    detail.get_by_text("javascript:alert('pwned-3')").first.click()  # a text, not a link
    page.get_by_role("button", name="Expand all").click()
    # Let every task already queued run (an image error, a timer) before looking.
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
    assert dialogs == [] and errors == []
    assert page.evaluate("() => document.querySelectorAll('script:not([src])').length") == 0


def test_the_page_works_at_phone_width(web: LiveServer, browser: Browser) -> None:
    ids = sample(web.service)
    without_search_records(web.service)
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                has_touch=True, timezone_id="UTC")
    try:
        page = phone.new_page()
        sign_in(page, web)
        panel = page.locator("details.filter-panel")
        expect(panel).not_to_have_attribute("open", "")
        page.get_by_text("Filters", exact=True).click()
        page.get_by_label("Words", exact=True).fill("rep_2")
        _apply(page)
        assert sorted(_ids(page)) == sorted(ids["ops"] + ids["permission"])
        row = page.locator(ROWS).first
        row.locator("> summary").tap()
        expect(row.locator(".detail")).to_be_visible()
        for path in ("/audit/", "/audit/settings", "/audit/alerts"):
            page.goto(web.base_url + path)
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, path
    finally:
        phone.close()


def test_times_show_in_the_browsers_zone(web: LiveServer, browser: Browser) -> None:
    """Rows are rendered in UTC and shown in the visitor's zone; the filter reads typed
    times in that zone too."""
    ids = sample(web.service)
    without_search_records(web.service)
    berlin = browser.new_context(viewport={"width": 1280, "height": 900},
                                 timezone_id="Europe/Berlin")
    try:
        page = berlin.new_page()
        sign_in(page, web)
        first = page.locator(f"#event-{ids['rich'][0]} > summary time")
        utc = first.get_attribute("datetime") or ""
        local = datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone(
            __import__("zoneinfo").ZoneInfo("Europe/Berlin"))
        expect(first).to_have_text(local.strftime("%Y-%m-%d %H:%M:%S"))
        expect(page.locator("[data-zone]")).to_have_text("(Europe/Berlin)")
        page.get_by_label("Time", exact=True).select_option("custom")
        page.get_by_label("From", exact=True).fill(local.strftime("%Y-%m-%dT%H:%M"))
        page.get_by_label("To (inclusive)", exact=True).fill(local.strftime("%Y-%m-%dT%H:%M"))
        _apply(page)
        expect(page).to_have_url(re.compile(r"tz=Europe%2FBerlin"))
        assert _ids(page) == ids["rich"]
    finally:
        berlin.close()
