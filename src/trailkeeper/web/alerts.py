"""The alerts page (``/audit/alerts``): list and filter what detection rules raised,
acknowledge alerts, and open the events an alert matched (the log page with ``alert=ID``).

The same rules as ``/api/v1/alerts``: sysadmins, admins and auditors see alerts (an alert
may name events of any object); sysadmins and admins acknowledge them. Filters are read by
the API's own `alert_query` and acknowledging is `alerts.manage.acknowledge`, which records
"Alert acknowledged" naming each alert it closed.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from trailkeeper.alerts import manage
from trailkeeper.alerts.model import AlertRecord
from trailkeeper.api.alerts import alert_query
from trailkeeper.auth.audit_events import Trail
from trailkeeper.auth.principals import Principal, Role
from trailkeeper.errors import BadRequestError, PermissionDeniedError
from trailkeeper.model.timestamps import format_iso, now_ms
from trailkeeper.web.render import base_path, redirect
from trailkeeper.web.requests import actor, checked_form, signed_in, web

PAGE = 50
PARAMETERS = ("status", "level", "rule", "from", "to", "origin", "cursor")


def may_read(principal: Principal) -> bool:
    return principal.sees_everything


def may_acknowledge(principal: Principal) -> bool:
    return principal.role in (Role.SYSADMIN, Role.ADMIN)


def _filters(request: Request) -> dict[str, str]:
    return {name: request.query_params.get(name, "").strip()[:200] for name in PARAMETERS}


def _query(chosen: dict[str, str]) -> str:
    kept = [(k, v) for k, v in chosen.items() if v and k != "cursor"]
    return "?" + urlencode(kept) if kept else ""


def _alert(alert: AlertRecord) -> dict[str, Any]:
    shown = manage.alert_json(alert)
    shown["group_text"] = ", ".join(f"{k} = {v}" for k, v in sorted(alert.group.items()))
    shown["first"] = format_iso(alert.timestamp_ms)[:19].replace("T", " ")
    shown["last"] = format_iso(alert.last_ms)[:19].replace("T", " ")
    return shown


async def alerts_page(request: Request) -> Response:
    visitor = await signed_in(request)
    if not may_read(visitor.principal):
        raise PermissionDeniedError("Only sysadmins, admins and auditors may see alerts")
    parts = web(request)
    chosen = _filters(request)
    problem = None
    alerts: list[AlertRecord] = []
    older = None
    try:
        query = alert_query(status=chosen["status"] or None,
                            rules=[chosen["rule"]] if chosen["rule"] else [],
                            level=chosen["level"] or None, since=chosen["from"] or None,
                            until=chosen["to"] or None, tz=None,
                            origin=chosen["origin"] or None, limit=str(PAGE),
                            cursor=chosen["cursor"] or None, now=now_ms())
    except BadRequestError as exc:
        problem = exc.message
    else:
        found = await run_in_threadpool(parts.service.storage.list_alerts,
                                        dataclasses.replace(query, limit=PAGE + 1))
        alerts = found[:PAGE]
        if len(found) > PAGE:
            older = _query(chosen) + ("&" if _query(chosen) else "?") + \
                urlencode({"cursor": alerts[-1].id})
    from trailkeeper.detection.model import LEVELS  # loads pySigma: only when needed

    done = request.query_params.get("done", "")
    acknowledged = int(done) if done.isdigit() and len(done) < 6 else None
    return parts.pages.render(
        request, "alerts.html", status=400 if problem else 200, alerts=[_alert(a) for a in alerts],
        chosen=chosen, problem=problem, older=older, levels=LEVELS,
        may_acknowledge=may_acknowledge(visitor.principal), acknowledged=acknowledged,
        query=_query(chosen))


async def acknowledge(request: Request) -> Response:
    visitor = await signed_in(request)
    form = await checked_form(request, visitor)
    if not may_acknowledge(visitor.principal):
        raise PermissionDeniedError("Only sysadmins and admins may acknowledge alerts")
    ids = [int(v) for v in form.all("id") if v.isdigit() and len(v) <= 18][:manage.MAX_ACKNOWLEDGE]
    if not ids:
        raise BadRequestError("Choose at least one alert to acknowledge")
    parts = web(request)
    service = parts.service
    who = actor(request, visitor)
    trail = Trail(who, lambda event: service.submit([event], author=who.author))
    count = await run_in_threadpool(lambda: manage.acknowledge(
        service.storage, ids, by=visitor.principal.name, now_ms=now_ms(), trail=trail))
    kept = [(k, v) for k, v in parse_qsl(form.get("back").lstrip("?"))
            if k in PARAMETERS and k != "cursor"]
    return redirect(f"{base_path(request)}/alerts?{urlencode([*kept, ('done', count)])}")
