"""Alerts under ``/api/v1/alerts``: list, show and acknowledge what detection rules raised.

Reading needs the sysadmin, admin or auditor role (an alert names events of any object, so
a delegated administrator or a plain user is refused), and a ``read`` token; acknowledging
needs sysadmin or admin, and an ``admin`` token (every write route does). Lists are newest
first, paged by an opaque ``cursor``. Each acknowledgement is recorded as "Alert
acknowledged" (see `trailkeeper.alerts.manage`).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, get_args

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from trailkeeper.alerts import manage
from trailkeeper.alerts.model import AlertOrigin, AlertQuery, AlertStatus
from trailkeeper.api.deps import PrincipalDep, ServiceDep, trail
from trailkeeper.auth.principals import Principal, Role
from trailkeeper.errors import BadRequestError, NotFoundError, PermissionDeniedError
from trailkeeper.model.timestamps import now_ms
from trailkeeper.query.dates import TimeValueError, parse_span, zone

router = APIRouter(prefix="/api/v1", tags=["Alerts"])

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_MAX_ID = (1 << 63) - 1
_MAX_BODY = 64 * 1024
_STATUSES: tuple[str, ...] = get_args(AlertStatus)
_ORIGINS: tuple[str, ...] = get_args(AlertOrigin)


def _may_read(principal: Principal) -> None:
    if not principal.sees_everything:
        raise PermissionDeniedError("Only sysadmins, admins and auditors may see alerts")


def _may_acknowledge(principal: Principal) -> None:
    if principal.role not in (Role.SYSADMIN, Role.ADMIN):
        raise PermissionDeniedError("Only sysadmins and admins may acknowledge alerts")


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise BadRequestError(f"Parameter '{name}': {value!r} is not one of "
                              f"{', '.join(allowed)}")
    return value


def _integer(name: str, value: str, *, low: int, high: int) -> int:
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19 \
            or not low <= int(text) <= high:
        raise BadRequestError(f"Parameter '{name}': {value!r} is not a whole number from "
                              f"{low} to {high}")
    return int(text)


def _alert_id(text: str) -> int:
    """A path's alert id: any whole number is a fair question (404 when no such alert)."""
    value = text.strip()
    if not value.isascii() or not value.lstrip("-").isdigit() or len(value) > 20:
        raise BadRequestError(f"Parameter 'id': {text!r} is not an alert id")
    return int(value)


def alert_query(*, status: str | None, rules: list[str], level: str | None,
                since: str | None, until: str | None, tz: str | None, origin: str | None,
                limit: str | None, cursor: str | None, now: int) -> AlertQuery:
    """The filters of ``GET /alerts``; every bad parameter is a 400 naming it."""
    from trailkeeper.detection.model import LEVELS

    try:
        where = zone(tz)
    except TimeValueError as exc:
        raise BadRequestError(f"Parameter 'tz': {exc}") from None
    bounds: dict[str, int] = {}
    for name, raw in (("from", since), ("to", until)):
        if raw is None or not raw.strip():
            continue
        try:
            span = parse_span(raw, now_ms=now, tz=where)
        except TimeValueError as exc:
            raise BadRequestError(f"Parameter '{name}': {exc}") from None
        bounds[name] = span.start if name == "from" else span.end  # "to" is inclusive
    return AlertQuery(
        status=_choice("status", status, _STATUSES),  # type: ignore[arg-type]
        rule_ids=tuple(dict.fromkeys(r for r in rules if r)),
        min_level=_choice("level", level, LEVELS),
        from_ms=bounds.get("from"), to_ms=bounds.get("to"),
        origin=_choice("origin", origin, _ORIGINS),  # type: ignore[arg-type]
        before_id=_integer("cursor", cursor, low=1, high=_MAX_ID) if cursor else None,
        limit=_integer("limit", limit, low=1, high=MAX_LIMIT) if limit else DEFAULT_LIMIT)


@router.get("/alerts", summary="Alerts raised by detection rules, newest first")
async def list_alerts(
    service: ServiceDep,
    principal: PrincipalDep,
    status: Annotated[str | None, Query(description="open or acknowledged")] = None,
    rule: Annotated[list[str] | None, Query(description="rule id (repeatable)")] = None,
    level: Annotated[str | None, Query(description="this level and above")] = None,
    from_: Annotated[str | None, Query(alias="from", description="time, date or now-7d")] = None,
    to: Annotated[str | None, Query(description="time or date, inclusive")] = None,
    tz: Annotated[str | None, Query(description="IANA zone for dates without one")] = None,
    origin: Annotated[str | None, Query(description="live or hunt")] = None,
    limit: Annotated[str | None, Query(description=f"1 to {MAX_LIMIT} (default "
                                                   f"{DEFAULT_LIMIT})")] = None,
    cursor: Annotated[str | None, Query(description="nextCursor of the previous page")] = None,
) -> Response:
    """``{"alerts": [...], "nextCursor": "..." | null}``; the alert's ``timestamp`` is its
    first matching event's time (``from``/``to`` filter on it)."""
    _may_read(principal)
    query = alert_query(status=status, rules=rule or [], level=level, since=from_, until=to,
                        tz=tz, origin=origin, limit=limit, cursor=cursor, now=now_ms())
    # One more than asked: its presence says another page follows.
    wider = dataclasses.replace(query, limit=query.limit + 1)
    found = await run_in_threadpool(service.storage.list_alerts, wider)
    page = found[:query.limit]
    more = len(found) > query.limit
    return _json({"alerts": [manage.alert_json(a) for a in page],
                  "nextCursor": str(page[-1].id) if more else None})


@router.get("/alerts/{alert_id}", summary="One alert by id")
async def get_alert(alert_id: str, service: ServiceDep, principal: PrincipalDep) -> Response:
    _may_read(principal)
    ident = _alert_id(alert_id)
    found = None
    if 1 <= ident <= _MAX_ID:
        found = await run_in_threadpool(service.storage.get_alert, ident)
    if found is None:
        raise NotFoundError(f"No alert with id {ident}")
    return _json(manage.alert_json(found))


async def _acknowledge(request: Request, service: ServiceDep, principal: Principal,
                       ids: list[int]) -> int:
    valid = [i for i in ids if 1 <= i <= _MAX_ID]
    if not valid:
        return 0
    return await run_in_threadpool(lambda: manage.acknowledge(
        service.storage, valid, by=principal.name, now_ms=now_ms(),
        trail=trail(request, principal)))


@router.post("/alerts/acknowledge", summary="Acknowledge several alerts")
async def acknowledge_alerts(request: Request, service: ServiceDep,
                             principal: PrincipalDep) -> Response:
    """Body ``{"ids": [1, 2]}`` (at most 1000); answers ``{"acknowledged": n}``, the number
    of those that were open (unknown and already acknowledged ids are left alone)."""
    _may_acknowledge(principal)
    ids = _body_ids(await request.body())
    return _json({"acknowledged": await _acknowledge(request, service, principal, ids)})


@router.post("/alerts/{alert_id}/acknowledge", summary="Acknowledge one alert")
async def acknowledge_alert(alert_id: str, request: Request, service: ServiceDep,
                            principal: PrincipalDep) -> Response:
    """``{"acknowledged": 1}``, or 0 when it was acknowledged already; 404 when unknown."""
    _may_acknowledge(principal)
    ident = _alert_id(alert_id)
    exists = 1 <= ident <= _MAX_ID and \
        await run_in_threadpool(service.storage.get_alert, ident) is not None
    if not exists:
        raise NotFoundError(f"No alert with id {ident}")
    return _json({"acknowledged": await _acknowledge(request, service, principal, [ident])})


def _body_ids(raw: bytes) -> list[int]:
    if len(raw) > _MAX_BODY:
        raise BadRequestError(f"The body is {len(raw):,} bytes; the limit is {_MAX_BODY:,}")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"The body is not valid JSON: {exc}") from None
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids:
        raise BadRequestError("Field 'ids': give a non-empty list of alert ids, "
                              'e.g. {"ids": [1, 2]}')
    if len(ids) > manage.MAX_ACKNOWLEDGE:
        raise BadRequestError(f"Field 'ids': at most {manage.MAX_ACKNOWLEDGE} ids at a time")
    if not all(type(i) is int for i in ids):
        raise BadRequestError("Field 'ids': every id must be a whole number")
    return ids
