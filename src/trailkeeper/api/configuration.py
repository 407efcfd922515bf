"""Atlassian's configuration API under ``/rest/auditing/1.0`` (`atlassian-audit.md` §1.1, §1.6).

Coverage, retention, file retention and the denylist: view = admin or sysadmin, change =
sysadmin (403 with Atlassian's ``Status`` body otherwise). Bodies are Atlassian's; a refused
change is a 400 with its error body and stores nothing. Every change is recorded as "Audit
Log configuration updated" (see `trailkeeper.governance.manage`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from trailkeeper.api.atlassian import NotAllowedError
from trailkeeper.api.deps import PrincipalDep, ServiceDep
from trailkeeper.auth.principals import Principal, Role
from trailkeeper.errors import BadRequestError
from trailkeeper.governance import manage
from trailkeeper.governance.config import GovernanceConfig
from trailkeeper.ingest.service import AuditService

router = APIRouter(prefix="/rest/auditing/1.0", tags=["Atlassian-compatible"])

_MAX_BODY = 1024 * 1024  # a full denylist of 1,000 long names fits many times over


def _may_view(principal: Principal, what: str) -> None:
    if principal.role not in (Role.SYSADMIN, Role.ADMIN):
        raise NotAllowedError(f"The user is not allowed to view {what}")


def _may_update(principal: Principal, what: str) -> None:
    if principal.role is not Role.SYSADMIN:
        raise NotAllowedError(f"The user is not allowed to update {what}")


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


async def _body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise BadRequestError(f"The body is {len(raw):,} bytes; the limit is {_MAX_BODY:,}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"The body is not valid JSON: {exc}") from None


async def _change(request: Request, service: AuditService, principal: Principal,
                  values: dict[str, str]) -> GovernanceConfig:
    source = request.client.host if request.client else None
    return await run_in_threadpool(manage.update, service, values, principal.as_author(),
                                   source=source)


def _current(service: AuditService) -> GovernanceConfig:
    return service.governance.config


_COVERAGE = "audit coverage configuration"
_RETENTION = "retention configuration"
_DENYLIST = "deny list configuration"


@router.get("/configuration/coverage", summary="Coverage level per area")
async def get_coverage(service: ServiceDep, principal: PrincipalDep) -> Response:
    _may_view(principal, _COVERAGE)
    return _json(_current(service).coverage_json())


@router.put("/configuration/coverage", summary="Set coverage levels (partial allowed)")
async def put_coverage(request: Request, service: ServiceDep,
                       principal: PrincipalDep) -> Response:
    _may_update(principal, _COVERAGE)
    values = manage.coverage_values(await _body(request))
    return _json((await _change(request, service, principal, values)).coverage_json())


def _retention_json(config: GovernanceConfig) -> dict[str, Any]:
    return {"period": config.retention.to_json(), "maxRows": config.max_rows}


@router.get("/configuration/retention", summary="Database retention period")
async def get_retention(service: ServiceDep, principal: PrincipalDep) -> Response:
    _may_view(principal, _RETENTION)
    return _json(_retention_json(_current(service)))


@router.put("/configuration/retention", summary="Set the database retention period")
async def put_retention(request: Request, service: ServiceDep,
                        principal: PrincipalDep) -> Response:
    _may_update(principal, _RETENTION)
    values = manage.retention_values(await _body(request))
    return _json(_retention_json(await _change(request, service, principal, values)))


@router.get("/configuration/retention/file", summary="Audit log files kept per node")
async def get_file_retention(service: ServiceDep, principal: PrincipalDep) -> Response:
    _may_view(principal, _RETENTION)
    return _json({"maxFileCount": _current(service).max_file_count})


@router.put("/configuration/retention/file", summary="Set how many audit log files to keep")
async def put_file_retention(request: Request, service: ServiceDep,
                             principal: PrincipalDep) -> Response:
    _may_update(principal, _RETENTION)
    values = manage.file_retention_values(await _body(request))
    changed = await _change(request, service, principal, values)
    return _json({"maxFileCount": changed.max_file_count})


@router.get("/configuration/denylist", summary="Actions that are never recorded")
async def get_denylist(service: ServiceDep, principal: PrincipalDep) -> Response:
    _may_view(principal, _DENYLIST)
    return _json(_current(service).denylist_json())


async def _denylist_change(request: Request, service: AuditService, principal: Principal,
                           values: Callable[[Any], dict[str, str]]) -> Response:
    _may_update(principal, _DENYLIST)
    changed = await _change(request, service, principal, values(await _body(request)))
    return _json(changed.denylist_json())


@router.put("/configuration/denylist", summary="Replace the denylist")
async def put_denylist(request: Request, service: ServiceDep,
                       principal: PrincipalDep) -> Response:
    return await _denylist_change(request, service, principal, manage.denylist_replacement)


@router.post("/configuration/denylist", summary="Add and remove denied actions")
async def post_denylist(request: Request, service: ServiceDep,
                        principal: PrincipalDep) -> Response:
    # Read the list fresh from the store: another node may have changed it a moment ago.
    current = (await run_in_threadpool(service.governance.reload)).denylist
    return await _denylist_change(request, service, principal,
                                  lambda body: manage.denylist_edit(body, current))


# Anonymous, as Atlassian's: cache the count so a flood of calls cannot load the store.
_USAGE_SECONDS = 30.0
_usage_cache: dict[int, tuple[float, int]] = {}


def _estimated_count(service: AuditService) -> int:
    now = time.monotonic()
    cached = _usage_cache.get(id(service))
    if cached is not None and now - cached[0] < _USAGE_SECONDS:
        return cached[1]
    count = service.storage.estimated_count()
    _usage_cache[id(service)] = (now, count)
    return count


@router.get("/statistics/database/usage", summary="Share of the row cap in use (no auth)")
async def database_usage(service: ServiceDep) -> Response:
    """``{"usage": 0.12}``: the estimated number of events over the row cap, to 2 places
    (refreshed at most every 30 s)."""
    count = await run_in_threadpool(_estimated_count, service)
    return _json({"usage": round(count / service.governance.config.max_rows, 2)})
