"""What every route of the web UI needs from its request: the signed-in visitor, a checked
form, the client's address, and the app's parts."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from trailkeeper.auth.audit_events import BROWSER, Actor
from trailkeeper.auth.authenticate import Authenticator
from trailkeeper.auth.authlog import RequestInfo
from trailkeeper.auth.ratelimit import RateLimiter
from trailkeeper.errors import BadRequestError, PayloadTooLargeError, PermissionDeniedError
from trailkeeper.ingest.service import AuditService
from trailkeeper.web import csrf
from trailkeeper.web.render import Pages
from trailkeeper.web.sessions import COOKIE, Sessions, Visitor

MAX_FORM_BYTES = 1024 * 1024  # a denylist of 1,000 long action names fits
MAX_FORM_FIELDS = 5000


@dataclass(frozen=True, slots=True)
class Web:
    """The web UI's parts, shared by its routes (``request.app.state.web``)."""

    service: AuditService
    authenticator: Authenticator
    sessions: Sessions
    login_limiter: RateLimiter
    pages: Pages


class SignInRequired(Exception):
    """No live session: the handler sends the browser to the sign-in page."""


class FormRejected(PermissionDeniedError):
    """A state-changing request without the session's CSRF token, or from another site."""


def web(request: Request) -> Web:
    parts: Web = request.app.state.web
    return parts


def client(request: Request) -> str | None:
    return request.client.host if request.client else None


def request_info(request: Request) -> RequestInfo:
    return RequestInfo(client(request), request.method, request.url.path,
                       request.scope.get("http_version", "1.1"))


def actor(request: Request, visitor: Visitor) -> Actor:
    """The visitor as the author of what their requests record (method ``Browser``)."""
    return Actor(visitor.principal.as_author(), client(request), BROWSER)


async def signed_in(request: Request) -> Visitor:
    """The visitor of the session cookie; `SignInRequired` without a live session."""
    found = await run_in_threadpool(web(request).sessions.resume, request.cookies.get(COOKIE))
    if found is None:
        raise SignInRequired
    request.state.visitor = found
    return found


class Form:
    """A parsed ``application/x-www-form-urlencoded`` body."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items

    def get(self, name: str, default: str = "") -> str:
        found = [v for k, v in self.items if k == name]
        return found[-1] if found else default

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.items if k == name]


async def read_form(request: Request) -> Form:
    """The body as a form (refused when it is something else or too large)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequestError("Send the form as application/x-www-form-urlencoded")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise PayloadTooLargeError(f"The form exceeds {MAX_FORM_BYTES:,} bytes")
        chunks.append(chunk)
    try:
        items = parse_qsl(b"".join(chunks).decode("utf-8"), keep_blank_values=True,
                          max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise BadRequestError("The form could not be read") from None
    return Form(items)


async def checked_form(request: Request, visitor: Visitor) -> Form:
    """The form of a state-changing request, once it is known to come from this session's
    own page: same site, and the session's CSRF token (`FormRejected`, 403, otherwise)."""
    if not csrf.same_site(request):
        raise FormRejected("The form was sent from another site; nothing was changed")
    form = await read_form(request)
    if not csrf.matches(visitor.csrf_token, form.get(csrf.FIELD)):
        raise FormRejected("The form has expired or did not come from this page; nothing "
                           "was changed. Reload the page and try again.")
    return form
