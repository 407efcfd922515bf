"""Pages: the Jinja2 environment, the static files' versions, and the security headers.

Autoescape is on for every template and nothing that comes from an event or a request is
marked safe (`trailkeeper.web.events.reveal` escapes before it adds its own markup). The
Content-Security-Policy allows scripts and styles from ``/audit/static`` only: no inline
script, no inline style, no ``eval``, no framing.
"""

from __future__ import annotations

import hashlib
import time
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trailkeeper import __version__
from trailkeeper.web.events import reveal

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
       " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]
_OWNED = {name for name, _ in _HEADERS} | {b"cache-control", b"strict-transport-security"}
STATIC_FILES = ("app.css", "app.js", "favicon.svg")


def static_versions() -> dict[str, str]:
    """A content hash per static file: its URL changes when it does, so browsers may keep
    it for a year."""
    folder = resources.files("trailkeeper.web").joinpath("static")
    return {name: hashlib.sha256(folder.joinpath(name).read_bytes()).hexdigest()[:12]
            for name in STATIC_FILES}


def number(value: int) -> str:
    return f"{value:,}"


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("trailkeeper.web", "templates"),
        autoescape=select_autoescape(("html", "svg"), default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["reveal"] = reveal
    env.filters["number"] = number
    env.globals["version"] = __version__
    return env


class Pages:
    """Renders templates with what every page needs: the app's base path, the static
    files' URLs and the visitor (with their CSRF token)."""

    def __init__(self) -> None:
        self.env = environment()
        self.versions = static_versions()

    def render(self, request: Request, template: str, *, status: int = 200,
               headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
        base = base_path(request)
        context.setdefault("visitor", getattr(request.state, "visitor", None))
        html = self.env.get_template(template).render(
            base=base, static={name: f"{base}/static/{name}?v={v}"
                               for name, v in self.versions.items()}, **context)
        return HTMLResponse(html, status_code=status, headers=headers)


def base_path(request: Request) -> str:
    """Where the web UI is mounted, e.g. ``/audit`` or ``/bitbucket/audit``."""
    return str(request.scope.get("root_path", "")).rstrip("/")


class SecurityHeaders:
    """Adds the security headers to every response of the web UI (pages, downloads,
    static files, errors); pages and downloads are never cached (they hold audit data),
    the versioned static files for a year. HSTS when served over https."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = "/static/" in scope.get("path", "")
        secure = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in _OWNED]
                headers += _HEADERS
                headers.append((b"cache-control", b"public, max-age=31536000, immutable"
                                if static and message["status"] == 200 else b"no-store"))
                if secure:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class ServerTiming:
    """``Server-Timing: app;dur=12.3`` on every response: the time from the request to its
    answer's first byte in this process (a streamed download continues after it), plus any
    parts a route measured in ``request.state.timings`` (the log page: search, chart,
    render). Browsers show it in their developer tools; the benchmark reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                parts = [f"app;dur={(time.perf_counter() - started) * 1000:.1f}"]
                measured = scope.get("state", {}).get("timings", {})
                parts += [f"{name};dur={ms:.1f}" for name, ms in measured.items()]
                message = {**message, "headers": [*message.get("headers", []),
                                                   (b"server-timing", ", ".join(parts).encode())]}
            await send(message)

        await self.app(scope, receive, timed)


def redirect(location: str, *, status: int = 303) -> Response:
    """See other: after a POST, or to the sign-in page."""
    return Response(status_code=status, headers={"Location": location})
