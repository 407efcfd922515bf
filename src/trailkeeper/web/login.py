"""Signing in and out of the web UI.

The password is checked by the API's own `Authenticator` (Argon2id; an unknown user costs
the same hashing as a wrong password), and every outcome is audited as the API's are:
"User authenticated" (SECURITY, FULL) and "User login failed" (SECURITY, ADVANCED) with
the reason, method ``Browser``, when the coverage records them; failures are also written
to the application log. Failed attempts are limited per client address and user name, and
per client address (`FAILURES`), in files shared by the node's worker processes; a
refused attempt answers 429 without checking the password.
"""

from __future__ import annotations

import hashlib
import logging
import time
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from trailkeeper.auth.audit_events import (
    AUTHENTICATED,
    BROWSER,
    LOGIN_FAILED,
    PASSWORD,
    Attempt,
    Reason,
    authenticated,
    covered,
    refused,
)
from trailkeeper.errors import AuthenticationError
from trailkeeper.web import csrf
from trailkeeper.web.render import base_path, redirect
from trailkeeper.web.requests import (
    Form,
    FormRejected,
    SignInRequired,
    checked_form,
    client,
    read_form,
    request_info,
    signed_in,
    web,
)
from trailkeeper.web.sessions import COOKIE, Sessions

log = logging.getLogger("trailkeeper.web")

# (failures, within seconds): per client and user name, and per client.
FAILURES = {"user": (10, 15 * 60), "client": (30, 15 * 60)}
_LOGIN_TOKEN_SECONDS = 3600
_MAX_NAME = 128
_MAX_PASSWORD = 1024


def safe_next(base: str, value: str | None) -> str:
    """Where to go after signing in: a path of the web UI (never another site)."""
    if not value or not value.startswith(base + "/") or value.startswith("//") \
            or "\\" in value or any(ord(ch) < 32 for ch in value) or len(value) > 4000:
        return base + "/"
    return value


def sign_in_url(request: Request) -> str:
    """The sign-in page, coming back to this request's page afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    base = base_path(request)
    target = f"{base}/login"
    return target if here in (base, base + "/") else f"{target}?{urlencode({'next': here})}"


def _cookie_options(request: Request, path: str) -> dict[str, object]:
    return {"path": path, "httponly": True, "secure": request.url.scheme == "https",
            "samesite": "lax"}


def _form_page(request: Request, *, name: str = "", problem: str | None = None,
               status: int = 200, notice: str | None = None,
               headers: dict[str, str] | None = None, form: Form | None = None) -> Response:
    """The sign-in form with a fresh double-submit token (cookie and hidden field); it
    keeps the page to come back to (from the URL, or from the form posted)."""
    base = base_path(request)
    target = form.get("next") if form is not None else request.query_params.get("next")
    token = csrf.login_token()
    response = web(request).pages.render(
        request, "login.html", status=status, headers=headers, visitor=None, name=name,
        problem=problem, notice=notice, login_token=token,
        next=safe_next(base, target))
    response.set_cookie(csrf.LOGIN_COOKIE, token, max_age=_LOGIN_TOKEN_SECONDS,
                        path=f"{base}/login", httponly=True,
                        secure=request.url.scheme == "https", samesite="strict")
    return response


async def login_page(request: Request) -> Response:
    base = base_path(request)
    try:
        await signed_in(request)
    except SignInRequired:
        notice = "You have signed out." if request.query_params.get("done") == "out" else None
        return _form_page(request, notice=notice)
    return redirect(safe_next(base, request.query_params.get("next")))


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


async def login(request: Request) -> Response:
    """Check the form's token, the throttle, then the password; start a session."""
    parts = web(request)
    if not csrf.same_site(request):
        raise FormRejected("The sign-in form was sent from another site")
    form: Form = await read_form(request)
    if not csrf.matches(request.cookies.get(csrf.LOGIN_COOKIE), form.get("login_token")):
        return _form_page(request, name=form.get("user")[:_MAX_NAME], status=400, form=form,
                          problem="The sign-in form had expired. Please sign in again.")
    name, password = form.get("user").strip(), form.get("password")
    if not name or not password:
        return _form_page(request, name=name[:_MAX_NAME], status=400, form=form,
                          problem="Enter your user name and password.")
    if len(name) > _MAX_NAME or len(password) > _MAX_PASSWORD:
        return _form_page(request, status=400, form=form,
                          problem="Invalid user name or password.")
    address = client(request) or "-"
    keys = {"user": _key(address, name.casefold()), "client": _key(address)}
    now = time.time()
    waits = [parts.login_limiter.blocked(keys[k], n, window, now)
             for k, (n, window) in FAILURES.items()]
    wait = max((w for w in waits if w is not None), default=None)
    attempt = Attempt()
    if wait is not None:
        attempt.tried(PASSWORD, name)
        attempt.refused(Reason.RATE_LIMITED)
        _audit_failure(request, attempt)
        log.warning("web sign-in of %r from %s refused: too many failed attempts", name,
                    address)
        return _form_page(request, name=name, status=429, headers={"Retry-After": str(wait)},
                          form=form,
                          problem=f"Too many failed attempts. Try again in {_minutes(wait)}.")
    try:
        principal = await run_in_threadpool(parts.authenticator.login, name, password, attempt)
    except AuthenticationError:
        for k, (n, window) in FAILURES.items():
            parts.login_limiter.acquire(keys[k], n, window, now)
        _audit_failure(request, attempt)
        log.warning("web sign-in of %r from %s failed: %s", name, address, attempt.reason)
        return _form_page(request, name=name, status=401, form=form,
                          problem="Invalid user name or password.")
    user = await run_in_threadpool(parts.service.storage.get_user, principal.name)
    if user is None:  # deleted between the check and now
        return _form_page(request, status=401, form=form,
                          problem="Invalid user name or password.")
    sessions: Sessions = parts.sessions
    await run_in_threadpool(sessions.end, request.cookies.get(COOKIE))  # no fixation
    secret = await run_in_threadpool(sessions.start, user, client(request))
    service = parts.service
    if covered(service.governance.config, AUTHENTICATED):
        service.audit(authenticated(principal, request_info(request), method=BROWSER))
    log.info("web sign-in of %s from %s", principal.name, address)
    base = base_path(request)
    response = redirect(safe_next(base, form.get("next")))
    response.set_cookie(COOKIE, secret, **_cookie_options(request, base))  # type: ignore[arg-type]
    response.delete_cookie(csrf.LOGIN_COOKIE, path=f"{base}/login")
    return response


def _audit_failure(request: Request, attempt: Attempt) -> None:
    service = web(request).service
    if covered(service.governance.config, LOGIN_FAILED):
        service.audit(refused(attempt, request_info(request), denied=False, method=BROWSER))


def _minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


async def logout(request: Request) -> Response:
    visitor = await signed_in(request)
    await checked_form(request, visitor)
    await run_in_threadpool(web(request).sessions.end, request.cookies.get(COOKIE))
    base = base_path(request)
    response = redirect(f"{base}/login?done=out")
    response.delete_cookie(COOKIE, **_cookie_options(request, base))  # type: ignore[arg-type]
    log.info("web sign-out of %s", visitor.principal.name)
    return response
