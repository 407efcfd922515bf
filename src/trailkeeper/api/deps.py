"""Request dependencies: the service, the settings, and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from trailkeeper.auth.authenticate import Authenticator
from trailkeeper.auth.authlog import RequestInfo
from trailkeeper.auth.principals import Principal
from trailkeeper.auth.tokenauth import TokenAuthenticator, check_scope, required_scope
from trailkeeper.config import Settings
from trailkeeper.ingest.service import AuditService


def service(request: Request) -> AuditService:
    svc: AuditService = request.app.state.service
    return svc


def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


def principal(request: Request) -> Principal:
    """The caller, allowed the route's scope; runs in the thread pool since a password check
    takes tens of ms. An API token is tried first (see auth/tokenauth.py), then a password;
    a token's scopes are checked here, for every route, in one place."""
    header = request.headers.get("authorization")
    info = RequestInfo(request.client.host if request.client else None, request.method,
                       request.url.path, request.scope.get("http_version", "1.1"))
    tokens: TokenAuthenticator = request.app.state.tokens
    found = tokens.authenticate(header, info)
    if found is None:
        auth: Authenticator = request.app.state.authenticator
        found = auth.authenticate(header)
    route = request.scope.get("route")
    check_scope(found, required_scope(request.method, getattr(route, "path", "")), info)
    return found


ServiceDep = Annotated[AuditService, Depends(service)]
SettingsDep = Annotated[Settings, Depends(settings)]
PrincipalDep = Annotated[Principal, Depends(principal)]
