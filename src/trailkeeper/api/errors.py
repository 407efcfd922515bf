"""One place that turns every error into a JSON body with a status, a message and details."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from trailkeeper.api.deps import record_denial
from trailkeeper.errors import (
    AuthenticationError,
    PermissionDeniedError,
    RateLimitedError,
    TrailkeeperError,
    UnavailableError,
)
from trailkeeper.model.timestamps import format_iso, now_ms

log = logging.getLogger("trailkeeper.api")


def error_response(status: int, body: dict[str, Any],
                   headers: dict[str, str] | None = None) -> JSONResponse:
    if "status-code" not in body:  # atlassian-rest's Status entity carries no timestamp
        body.setdefault("timestamp", format_iso(now_ms()))
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TrailkeeperError)
    async def trailkeeper_error(request: Request, exc: TrailkeeperError) -> Response:
        headers = None
        if isinstance(exc, AuthenticationError):
            # RFC 6750: a rejected Bearer token is answered with a Bearer challenge.
            sent = request.headers.get("authorization", "")
            headers = {"WWW-Authenticate": 'Bearer realm="Trailkeeper", error="invalid_token"'
                       if sent[:7].lower() == "bearer " else
                       'Basic realm="Trailkeeper", charset="UTF-8"'}
        elif isinstance(exc, UnavailableError | RateLimitedError):
            headers = {"Retry-After": str(exc.retry_after)}
        elif isinstance(exc, PermissionDeniedError):
            record_denial(request, exc)  # audited, when a route refused its caller
        if exc.http_status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
        return error_response(exc.http_status, exc.to_json(), headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": ".".join(str(part) for part in error.get("loc", ())),
             "message": error.get("msg", "invalid")}
            for error in exc.errors()
        ]
        return error_response(400, {"status": 400, "message": "Invalid request",
                                    "errors": errors})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return error_response(exc.status_code,
                              {"status": exc.status_code, "message": str(exc.detail),
                               "errors": []}, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed unexpectedly", request.method, request.url.path)
        return error_response(500, {"status": 500, "message": "Internal server error",
                                    "errors": []})
