"""Atlassian-compatible read API under ``/rest/auditing/1.0``.

Responses match Atlassian's: ``{"entities": [...], "pagingInfo": {...}}`` with keyset paging
through ``nextPageCursor`` / ``nextPageLink``, plus an ``id`` on every entity.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from trailkeeper.api.atlassian_query import JSON_LIMIT, EventsRequest, parse_events_request
from trailkeeper.api.deps import PrincipalDep, ServiceDep, actor
from trailkeeper.auth.audit_events import (
    EXPORTED,
    SEARCHED,
    Actor,
    Results,
    counted,
    covered,
    exported,
    query_text,
    search_performed,
)
from trailkeeper.auth.permissions import may_view_objects, scoped
from trailkeeper.auth.principals import Principal
from trailkeeper.errors import BadRequestError, PermissionDeniedError
from trailkeeper.export.formats import export
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.timestamps import now_ms
from trailkeeper.query.ast import Compare, all_of
from trailkeeper.storage.base import RowPage

router = APIRouter(prefix="/rest/auditing/1.0", tags=["Atlassian-compatible"])

_NOT_ALLOWED = "The user is not allowed to view audit events"
# The parameters of GET /events: the "Query" recorded of each search is made of these.
_PARAMETERS = ("from", "to", "offset", "pageCursor", "limit", "userIds", "categories",
               "actions", "affectedObject", "search", "outputFormat", "scanLimit")


class NotAllowedError(PermissionDeniedError):
    """403 with the atlassian-rest ``Status`` body Atlassian answers."""

    def to_json(self) -> dict[str, Any]:
        return {"status-code": self.http_status, "message": self.message}


def _check_can_view(principal: Principal) -> None:
    # Pickers list authors and objects of the whole log: unrestricted roles only.
    if not principal.sees_everything:
        raise NotAllowedError(_NOT_ALLOWED)


@router.get("/events", summary="Search audit events (Atlassian format)")
async def events(request: Request, service: ServiceDep, principal: PrincipalDep) -> Response:
    """Every parameter of Atlassian's API: ``from``, ``to``, ``offset``, ``pageCursor``,
    ``limit``, ``userIds``, ``categories``, ``actions``, ``affectedObject``, ``search``,
    ``scanLimit``, ``outputFormat=json|csv``.

    Each search is recorded as "Audit Log search performed" and each CSV export as "Audit
    Log exported" (when its stream ends), with the query, as Atlassian does."""
    query = parse_events_request(request.query_params, now_ms=now_ms())
    # Delegated view (atlassian-audit.md §3.6): without an unrestricted role the caller must
    # pass affectedObject and administer every object listed; the scope still applies.
    if not await run_in_threadpool(may_view_objects, principal, query.objects,
                                   service.storage):
        raise NotAllowedError(_NOT_ALLOWED)
    who = actor(request, principal)
    text = query_text(request.query_params.multi_items(), _PARAMETERS)
    if query.output == "csv":
        return _csv_response(service, principal, query, who, text)
    if query.limit > JSON_LIMIT:
        raise BadRequestError(f"Maximum allowed page size is {JSON_LIMIT}")
    page = await run_in_threadpool(_search, service, principal, query)
    body = _page_json(page, request)
    if covered(service.governance.config, SEARCHED):
        service.audit(search_performed(who, text, Results.of(page.events)))
    return Response(body, media_type="application/json")


def _search(service: AuditService, principal: Principal, query: EventsRequest) -> RowPage:
    where = scoped(principal, query.where())
    if query.scan_limit is not None:
        # Only the most recent scanLimit inserted rows of the window are looked at.
        newest = service.storage.max_id(scoped(principal, query.time_window()))
        where = all_of([where, Compare("id", ">=", newest - query.scan_limit)])
    return service.storage.search(where, limit=query.limit, cursor=query.cursor,
                                  offset=query.offset)


def _page_json(page: RowPage, request: Request) -> bytes:
    paging: dict[str, Any] = {"lastPage": page.last_page, "size": len(page.events)}
    if page.next_cursor is not None:
        cursor = str(page.next_cursor)
        # The request's own URL with the cursor set and offset reset: every filter is kept.
        link = str(request.url.include_query_params(offset="0", pageCursor=cursor))
        paging.update(nextPageOffset=0, nextPageCursor=cursor, nextPageLink=link)
    entities = b",".join(event.rest_json() for event in page.events)
    return b'{"entities":[%s],"pagingInfo":%s}' % (entities, orjson.dumps(paging))


def _csv_response(service: AuditService, principal: Principal, query: EventsRequest,
                  who: Actor, text: str) -> Response:
    # CSV uses offset + limit (up to 100,000); pageCursor and scanLimit are ignored, as in
    # Atlassian. Rows are fetched in keyset batches and written as they come.
    where = scoped(principal, query.where())

    def done(results: Results) -> None:
        if covered(service.governance.config, EXPORTED):
            service.audit(exported(who, text, "csv", results))

    def rows() -> Iterator[bytes]:
        events = itertools.islice(
            service.storage.stream(where, offset=query.offset), query.limit)
        yield from export(counted(events, done), "csv")

    stamp = _export_stamp()
    return StreamingResponse(
        rows(), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="Auditing Export {stamp}.csv"'},
    )


def _export_stamp() -> str:
    return time.strftime("%Y-%m-%dT%H_%M_%SZ", time.gmtime())


@router.get("/lookup/author", summary="Authors seen in events (for pickers)")
async def lookup_author(service: ServiceDep, principal: PrincipalDep, search: str | None = None,
                        offset: int = 0, limit: int = 100) -> Response:
    _check_can_view(principal)
    limit = max(1, min(limit, 1000))
    offset = max(0, offset)
    found = await run_in_threadpool(service.storage.lookup_authors, search, limit=limit + 1,
                                    offset=offset)
    entities = [{"id": a.id, "name": a.name, "type": a.type, **({"uri": a.uri} if a.uri else {})}
                for a in found[:limit]]
    return _lookup_page(entities, last=len(found) <= limit)


@router.get("/lookup/resource/{resource_type}", summary="Objects of a type seen in events")
async def lookup_resource(resource_type: str, service: ServiceDep, principal: PrincipalDep,
                          search: str | None = None, offset: int = 0,
                          limit: int = 100) -> Response:
    _check_can_view(principal)
    limit = max(1, min(limit, 1000))
    offset = max(0, offset)
    found = await run_in_threadpool(service.storage.lookup_objects, resource_type, search,
                                    limit=limit + 1, offset=offset)
    entities = [{"id": o.id, "name": o.name, "type": o.type,
                 **({"uri": o.uri} if o.uri else {})} for o in found[:limit]]
    return _lookup_page(entities, last=len(found) <= limit)


def _lookup_page(entities: list[dict[str, Any]], *, last: bool) -> Response:
    body = {"entities": entities, "pagingInfo": {"lastPage": last, "size": len(entities)}}
    return Response(orjson.dumps(body), media_type="application/json")
