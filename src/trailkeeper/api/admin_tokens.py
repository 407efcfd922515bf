"""API token administration: ``/api/v1/admin/tokens``.

Everyone manages their own tokens (with a password login or an ``admin``-scope token, as
every ``/api/v1/admin`` route requires); a ``sysadmin`` manages everyone's. The token text is
in the answer to POST only; lists never carry it (nor its hash). DELETE revokes: the row is
kept, marked revoked, and refused from the next request on.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from trailkeeper.api.deps import PrincipalDep, ServiceDep, trail
from trailkeeper.auth import tokens
from trailkeeper.model.timestamps import format_iso, now_ms
from trailkeeper.storage.base import TokenRecord

router = APIRouter(prefix="/api/v1/admin/tokens", tags=["Administration"])


class NewToken(BaseModel):
    user: str | None = Field(None, description="owner (default: the caller)")
    scopes: list[str] = Field(description="ingest, read and/or admin")
    expires: str = Field("never", description="30d, 12h, 90m, 2w or never")
    allow_ips: list[str] = Field(default_factory=list, description="IPv4/IPv6 CIDRs")
    rate: str | None = Field(None, description="N/MINUTESm, e.g. 100/5m")
    description: str = ""


def token_json(record: TokenRecord, now: int) -> dict[str, Any]:
    """A token as the API and ``token list --json`` show it: never its secret or hash."""
    def iso(ms: int | None) -> str | None:
        return None if ms is None else format_iso(ms)

    return {
        "id": record.id, "user": record.user, "scopes": list(record.scopes),
        "description": record.description, "status": tokens.status(record, now),
        "created": iso(record.created_ms), "created_by": record.created_by,
        "expires": iso(record.expires_ms), "allow_ips": list(record.allow_ips),
        "rate": (f"{record.rate_requests}/{record.rate_minutes}m"
                 if record.rate_requests else None),
        "revoked": iso(record.revoked_ms), "last_used": iso(record.last_used_ms),
    }


@router.post("", status_code=201, summary="Create an API token (its text is shown only here)")
async def create_token(body: NewToken, request: Request, service: ServiceDep,
                       principal: PrincipalDep) -> JSONResponse:
    spec = tokens.TokenSpec(
        user=body.user or principal.name, scopes=tokens.parse_scopes(body.scopes),
        expires_in_s=tokens.parse_duration(body.expires),
        allow_ips=tokens.parse_networks(body.allow_ips),
        rate=tokens.parse_rate(body.rate) if body.rate else None,
        description=body.description)
    now = now_ms()
    text, record = await run_in_threadpool(tokens.issue, service.storage, spec,
                                           created_by=principal.name, now_ms=now,
                                           actor=principal, trail=trail(request, principal))
    return JSONResponse({**token_json(record, now), "token": text}, status_code=201,
                        headers={"Cache-Control": "no-store"})


@router.get("", summary="List API tokens (yours; a sysadmin sees everyone's)")
async def list_tokens(service: ServiceDep, principal: PrincipalDep,
                      user: Annotated[str | None, Query()] = None) -> JSONResponse:
    found = await run_in_threadpool(tokens.visible_tokens, service.storage, principal, user)
    now = now_ms()
    return JSONResponse({"tokens": [token_json(r, now) for r in found]})


@router.delete("/{token_id}", summary="Revoke an API token (takes effect at once)")
async def revoke_token(token_id: str, request: Request, service: ServiceDep,
                       principal: PrincipalDep) -> JSONResponse:
    record, _ = await run_in_threadpool(lambda: tokens.revoke(
        service.storage, token_id, now_ms=now_ms(), actor=principal,
        trail=trail(request, principal)))
    return JSONResponse(token_json(record, now_ms()))
