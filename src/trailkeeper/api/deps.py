"""Request dependencies: the service, the settings, and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from trailkeeper.auth.audit_events import (
    ACCESS_DENIED,
    AUTHENTICATED,
    LOGIN_FAILED,
    Actor,
    Attempt,
    Reason,
    Trail,
    authenticated,
    covered,
    refused,
)
from trailkeeper.auth.authenticate import Authenticator
from trailkeeper.auth.authlog import RequestInfo
from trailkeeper.auth.principals import Principal
from trailkeeper.auth.tokenauth import TokenAuthenticator, check_scope, required_scope
from trailkeeper.config import Settings
from trailkeeper.errors import AuthenticationError, PermissionDeniedError, TrailkeeperError
from trailkeeper.ingest.service import AuditService


def service(request: Request) -> AuditService:
    svc: AuditService = request.app.state.service
    return svc


def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


def request_info(request: Request) -> RequestInfo:
    return RequestInfo(request.client.host if request.client else None, request.method,
                       request.url.path, request.scope.get("http_version", "1.1"))


def actor(request: Request, caller: Principal) -> Actor:
    """The caller as the author of what the request records, from its address."""
    return Actor.of(caller, request.client.host if request.client else None)


def trail(request: Request, caller: Principal) -> Trail:
    """Where a management change made by ``caller`` is recorded: durably (``submit``), so
    the change is answered only once its record is stored. Call it from a worker thread."""
    svc = service(request)
    who = actor(request, caller)
    return Trail(who, lambda event: svc.submit([event], author=who.author))


def principal(request: Request) -> Principal:
    """The caller, allowed the route's scope; runs in the thread pool since a password check
    takes tens of ms. An API token is tried first (see auth/tokenauth.py), then a password;
    a token's scopes are checked here, for every route, in one place.

    Every outcome is audited here (auth/audit_events.py), when the coverage of SECURITY
    records it: "User authenticated" (FULL), "User login failed" or "Access denied"
    (ADVANCED) with the reason, queued without waiting. A request with no credentials at
    all is only challenged (401): clients that send credentials after the challenge make
    one each, and it names nobody.
    """
    header = request.headers.get("authorization")
    info = request_info(request)
    attempt = Attempt()
    try:
        tokens: TokenAuthenticator = request.app.state.tokens
        found = tokens.authenticate(header, info, attempt)
        if found is None:
            auth: Authenticator = request.app.state.authenticator
            found = auth.authenticate(header, attempt)
    except TrailkeeperError as exc:
        if header:
            _record_refusal(request, info, attempt,
                            denied=not isinstance(exc, AuthenticationError))
        raise
    route = request.scope.get("route")
    required = required_scope(request.method, getattr(route, "path", ""))
    try:
        check_scope(found, required, info)
    except PermissionDeniedError:
        _record_refusal(request, info, Attempt.of(found), denied=True,
                        reason=Reason.SCOPE_REFUSED, required_scope=required)
        raise
    request.state.principal = found
    svc = service(request)
    if covered(svc.governance.config, AUTHENTICATED):
        svc.audit(authenticated(found, info))
    return found


def _record_refusal(request: Request, info: RequestInfo, attempt: Attempt, *, denied: bool,
                    reason: str | None = None, required_scope: str | None = None) -> None:
    svc = service(request)
    if covered(svc.governance.config, ACCESS_DENIED if denied else LOGIN_FAILED):
        svc.audit(refused(attempt, info, denied=denied, reason=reason,
                          required_scope=required_scope))


def record_denial(request: Request, exc: PermissionDeniedError) -> None:
    """Audit a 403 a route gave an authenticated caller ("Access denied", with the error's
    message as the reason); refusals during authentication are recorded by `principal`."""
    caller: Principal | None = getattr(request.state, "principal", None)
    if caller is not None:
        _record_refusal(request, request_info(request), Attempt.of(caller), denied=True,
                        reason=exc.message)


ServiceDep = Annotated[AuditService, Depends(service)]
SettingsDep = Annotated[Settings, Depends(settings)]
PrincipalDep = Annotated[Principal, Depends(principal)]
