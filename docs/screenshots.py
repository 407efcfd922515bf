"""Take the README's screenshots of the web UI: ``docs/screenshots/*.png``.

    .venv/bin/python docs/screenshots.py

Starts ``trailkeeper serve --demo`` on a scratch home and a free port, waits until the
detection rules have raised the demo's alerts, then drives Debian's Chromium
(``/usr/bin/chromium``) with Playwright: the audit log, an expanded row, the query
language's inline error, the settings, the alerts, a delegated administrator's view and the
log at a phone's width.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

DOCS = Path(__file__).resolve().parent
OUT = DOCS / "screenshots"
PASSWORD = "screenshot-password-1"  # noqa: S105 - a throwaway demo store
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TRAILKEEPER_ADMIN_PASSWORD": PASSWORD,
           "TRAILKEEPER_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "trailkeeper", "serve", "--demo",  # noqa: S603
                             "--home", str(home), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(base: str) -> None:
    """Healthy, and the demo's alerts raised (detection runs on the committed events)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            found = httpx.get(base + "/api/v1/alerts", auth=("admin", PASSWORD), timeout=5)
            if found.status_code == 200 and len(found.json()["alerts"]) >= 4:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the demo server did not become ready")


def add_delegate(base: str) -> None:
    """A delegated administrator of the demo's project 3 (DATA)."""
    with httpx.Client(base_url=base, auth=("admin", PASSWORD)) as c:
        c.post("/api/v1/admin/users", json={"name": "dana", "password": PASSWORD,
                                            "role": "user"}).raise_for_status()
        c.post("/api/v1/admin/grants", json={"grantee": "dana", "grant": "PROJECT,4"}
               ).raise_for_status()


def sign_in(page: Page, base: str, user: str) -> None:
    page.goto(base + "/audit/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/audit/")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trailkeeper-screenshots-") as scratch:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = serve(Path(scratch), port)
        try:
            wait_ready(base)
            add_delegate(base)
            shoot(base)
        finally:
            server.terminate()
            server.wait(60)
    print("\n".join(sorted(str(p.relative_to(DOCS.parent)) for p in OUT.glob("*.png"))))


def shoot(base: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=CHROMIUM_ARGS)
        desktop = browser.new_context(viewport={"width": 1280, "height": 860},
                                      timezone_id="Europe/Berlin")
        page = desktop.new_page()
        sign_in(page, base, "admin")
        page.goto(base + "/audit/?category=Repositories&category=Permissions&tz=Europe%2FBerlin")
        page.screenshot(path=OUT / "log.png")

        page.goto(base + "/audit/?action=Audit+Log+configuration+updated&tz=Europe%2FBerlin")
        row = page.locator("details.event").first
        row.locator("> summary").click()
        row.scroll_into_view_if_needed()
        row.screenshot(path=OUT / "expanded-row.png")

        page.goto(base + "/audit/?q=" + 'action:"User login failed" AND (author:erin'
                  .replace(" ", "+").replace('"', "%22"))
        page.locator(".filter-panel").screenshot(path=OUT / "query-error.png")

        page.goto(base + "/audit/settings")
        page.screenshot(path=OUT / "settings.png", full_page=True)

        page.goto(base + "/audit/alerts")
        page.screenshot(path=OUT / "alerts.png")

        delegate = browser.new_context(viewport={"width": 1280, "height": 860})
        dana = delegate.new_page()
        sign_in(dana, base, "dana")
        dana.screenshot(path=OUT / "delegated.png")

        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                    has_touch=True, device_scale_factor=2,
                                    storage_state=desktop.storage_state())
        small = phone.new_page()
        small.goto(base + "/audit/")
        small.locator("details.event").nth(2).locator("> summary").tap()
        small.screenshot(path=OUT / "phone.png")
        browser.close()


if __name__ == "__main__":
    main()
