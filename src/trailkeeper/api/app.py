"""`build_app`: the ASGI application over an `AuditService`."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trailkeeper import __version__
from trailkeeper.api import (
    admin_tokens,
    atlassian,
    bitbucket,
    configuration,
    integrity,
    native,
    ops,
    search,
)
from trailkeeper.api.admin_users import router as admin_users_router
from trailkeeper.api.alerts import router as alerts_router
from trailkeeper.api.errors import install_error_handlers
from trailkeeper.auth.authenticate import Authenticator
from trailkeeper.auth.ratelimit import RateLimiter
from trailkeeper.auth.tokenauth import TokenAuthenticator
from trailkeeper.config import Settings
from trailkeeper.ingest.service import AuditService
from trailkeeper.metrics import Metrics
from trailkeeper.web import build_web


class _RequestMetrics:
    """Records each request's latency by route template (not by raw path: bounded labels)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.request_seconds.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started)


def build_app(service: AuditService, settings: Settings | None = None, *,
              lifespan: Any = None) -> Any:
    """The HTTP API, mounted under ``settings.context_path`` when one is set."""
    settings = settings or Settings()
    api = FastAPI(
        title="Trailkeeper",
        version=__version__,
        description="Audit-log service with an Atlassian-compatible REST API.",
        lifespan=lifespan if not settings.context_path else None,
    )
    api.state.service = service
    api.state.settings = settings
    api.state.authenticator = Authenticator(service.storage)
    # API tokens: checked per request; rate limits shared by this node's workers.
    api.state.tokens = TokenAuthenticator(
        service.storage, RateLimiter(settings.home / "run" / "ratelimit"))
    for module in (ops, native, search, atlassian, configuration, bitbucket, integrity):
        api.include_router(module.router)
    api.include_router(admin_users_router)  # users, groups and grants (access control)
    api.include_router(admin_tokens.router)  # API tokens
    api.include_router(alerts_router)  # alerts raised by detection rules
    # The web UI: its own app (HTML errors, browser security headers, sessions).
    api.mount("/audit", build_web(service, settings, api.state.authenticator))
    install_error_handlers(api)
    api.add_middleware(_RequestMetrics, metrics=service.metrics)
    if not settings.context_path:
        return api
    # Served under the context path (as Bitbucket is) and at the root too, since scripts
    # copied from product docs use either form.
    root = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)
    root.mount(settings.context_path, api)
    root.mount("/", api)
    return root
