"""Request dependencies: the service, the settings, and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from trailkeeper.auth.authenticate import Authenticator
from trailkeeper.auth.principals import Principal
from trailkeeper.config import Settings
from trailkeeper.ingest.service import AuditService


def service(request: Request) -> AuditService:
    svc: AuditService = request.app.state.service
    return svc


def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


def principal(request: Request) -> Principal:
    """The caller; runs in the thread pool since a password check takes tens of ms."""
    auth: Authenticator = request.app.state.authenticator
    return auth.authenticate(request.headers.get("authorization"))


ServiceDep = Annotated[AuditService, Depends(service)]
SettingsDep = Annotated[Settings, Depends(settings)]
PrincipalDep = Annotated[Principal, Depends(principal)]
