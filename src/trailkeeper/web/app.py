"""`build_web`: the web UI, a Starlette app the API mounts at ``/audit``.

Its own app so that its errors are pages, not JSON, and every response carries the
browser security headers; it shares the API's service and password `Authenticator` (whose
cache a password change clears). Routes:

====================================  ==================================================
``GET /``                             the audit log (filters in the URL, chart, paging)
``GET /resource/{TYPE},{ID}``         one object's log (delegated administrators)
``GET /export``, ``…/{spec}/export``  the view as CSV or NDJSON
``GET /lookup/{authors|objects}``     the pickers' suggestions (JSON)
``GET|POST /login``, ``POST /logout`` signing in and out
``GET /settings``, ``POST /settings/{section}``  the audit settings
``GET /alerts``, ``POST /alerts/acknowledge``   alerts
``GET /static/…``                     the stylesheet and the script
====================================  ==================================================
"""

from __future__ import annotations

import logging
from importlib import resources

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from trailkeeper.auth.audit_events import ACCESS_DENIED, BROWSER, Attempt, covered, refused
from trailkeeper.auth.authenticate import Authenticator
from trailkeeper.auth.ratelimit import RateLimiter
from trailkeeper.config import Settings
from trailkeeper.errors import PermissionDeniedError, TrailkeeperError
from trailkeeper.ingest.service import AuditService
from trailkeeper.web import alerts, configuration, log, login
from trailkeeper.web.render import Pages, SecurityHeaders, ServerTiming, redirect
from trailkeeper.web.requests import FormRejected, SignInRequired, Web, request_info, web
from trailkeeper.web.sessions import Sessions

logger = logging.getLogger("trailkeeper.web")

_STATUS_TITLES = {400: "This request cannot be answered", 403: "Not allowed",
                  404: "Not found", 405: "Not allowed", 413: "Too large",
                  429: "Too many requests"}


def build_web(service: AuditService, settings: Settings,
              authenticator: Authenticator | None = None) -> ASGIApp:
    """The web UI over ``service``; ``authenticator`` is the API's (shared so that a
    password change clears the one cache of checked passwords)."""
    static = resources.files("trailkeeper.web").joinpath("static")
    app = Starlette(
        routes=[
            Route("/", log.log_page, name="log"),
            Route("/resource/{spec}", log.log_page, name="resource"),
            Route("/export", log.export, name="export"),
            Route("/resource/{spec}/export", log.export, name="resource_export"),
            Route("/lookup/{kind}", log.lookup, name="lookup"),
            Route("/login", login.login_page, name="login_page"),
            Route("/login", login.login, methods=["POST"], name="login"),
            Route("/logout", login.logout, methods=["POST"], name="logout"),
            Route("/settings", configuration.settings_page, name="settings"),
            Route("/settings/{section}", configuration.change, methods=["POST"],
                  name="change_settings"),
            Route("/alerts", alerts.alerts_page, name="alerts"),
            Route("/alerts/acknowledge", alerts.acknowledge, methods=["POST"],
                  name="acknowledge"),
            Mount("/static", StaticFiles(directory=str(static)), name="static"),
        ],
        exception_handlers={
            SignInRequired: _sign_in,
            TrailkeeperError: _trailkeeper_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.web = Web(
        service=service,
        authenticator=authenticator or Authenticator(service.storage),
        sessions=Sessions(service.storage),
        login_limiter=RateLimiter(settings.home / "run" / "web-login"),
        pages=Pages(),
    )
    # Outside the app, so that even its last-resort error page carries the headers.
    return ServerTiming(SecurityHeaders(app))


async def _sign_in(request: Request, exc: Exception) -> Response:
    if request.method not in ("GET", "HEAD"):
        # A form posted without a live session changes nothing; say so.
        return _error_page(request, 403, "Your session has ended",
                           "Sign in again, then repeat what you were doing; nothing was "
                           "changed.")
    return redirect(login.sign_in_url(request))


async def _trailkeeper_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TrailkeeperError)
    if isinstance(exc, PermissionDeniedError):
        _record_denial(request, exc)
    if exc.http_status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc.message)
        return _error_page(request, exc.http_status, "Something went wrong",
                           "The server could not answer; the problem is in its log.")
    title = "Form rejected" if isinstance(exc, FormRejected) else \
        _STATUS_TITLES.get(exc.http_status, "Error")
    return _error_page(request, exc.http_status, title, exc.message)


def _record_denial(request: Request, exc: PermissionDeniedError) -> None:
    """A refusal of a signed-in visitor is recorded as "Access denied" (as the API's)."""
    visitor = getattr(request.state, "visitor", None)
    service = web(request).service
    if visitor is not None and covered(service.governance.config, ACCESS_DENIED):
        service.audit(refused(Attempt.of(visitor.principal), request_info(request),
                              denied=True, reason=exc.message, method=BROWSER))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = _STATUS_TITLES.get(exc.status_code, "Error")
    message = "There is no page here." if exc.status_code == 404 else str(exc.detail)
    return _error_page(request, exc.status_code, title, message)


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("%s %s failed unexpectedly", request.method, request.url.path)
    return _error_page(request, 500, "Something went wrong",
                       "The server could not answer; the problem is in its log.")


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    return web(request).pages.render(request, "error.html", status=status, title=title,
                                     message=message)
