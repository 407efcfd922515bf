"""Fixtures of the web UI tests: a real server on loopback (SQLite and PostgreSQL, through
the parametrised ``service`` fixture), users of every role, sign-in helpers for httpx, and
Debian's Chromium driven by Playwright (one browser per session, a new context per test)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.conftest import ADMIN_PASSWORD, LiveServer, start_server
from trailkeeper.auth.passwords import hash_password
from trailkeeper.auth.principals import Role
from trailkeeper.ingest.service import AuditService
from trailkeeper.storage.base import Grant, UserRecord
from trailkeeper.web import log

CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it when missing)
# The network is closed: without these, Chromium keeps trying to reach Google's services.
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PASSWORD = "a long enough password 42"
# name -> (role, grant): sysadmin "admin" comes from start_server.
USERS = {
    "ada": (Role.ADMIN, None),
    "aud": (Role.AUDITOR, None),
    "pat": (Role.USER, ("PROJECT", "2")),  # delegated administrator of project OPS
    "uma": (Role.USER, None),
}


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)  # Argon2 takes a while: once per session


def add_users(service: AuditService) -> None:
    for name, (role, grant) in USERS.items():
        service.storage.put_user(UserRecord(name, _password_hash(), role))
        if grant is not None:
            service.storage.add_grant(Grant("user", name, *grant))


def password_of(user: str) -> str:
    return ADMIN_PASSWORD if user == "admin" else PASSWORD


@pytest.fixture
def web(service: AuditService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[LiveServer]:
    """The app on loopback with the users of `USERS`. The tests check what the chart
    shows, whatever the machine's load: its time budget is lifted (and tested apart)."""
    monkeypatch.setattr(log, "PAGE_BUDGET_MS", 60_000)
    with start_server(service, tmp_path) as live:
        add_users(service)
        yield live


def login_token(html: str) -> str:
    found = re.search(r'name="login_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


@contextmanager
def signed_in(server: LiveServer, user: str = "admin") -> Iterator[httpx.Client]:
    """An httpx client holding a session of ``user`` (no HTTP Basic credentials)."""
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        page = client.get("/audit/login")
        answer = client.post("/audit/login", data={
            "user": user, "password": password_of(user), "login_token": login_token(page.text),
            "next": "/audit/"})
        assert answer.status_code == 303, answer.text
        yield client


# -- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian's Chromium is not installed at {CHROMIUM} (.ci/run installs it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="UTC",
                              accept_downloads=True)
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, server: LiveServer, user: str = "admin", *, path: str = "/audit/"
            ) -> None:
    """Open ``path``, get sent to the sign-in form, sign in, and land back on ``path``."""
    page.goto(server.base_url + path)
    page.wait_for_url(re.compile(r".*/audit/login.*"))
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password_of(user))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(".*" + re.escape(path.split("?")[0]) + r"(\?.*)?$"))
