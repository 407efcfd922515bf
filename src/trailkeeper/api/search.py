"""Native search and export: ``GET /api/v1/events``.

``format=json`` answers one page (keyset ``cursor`` in time order, ``offset`` otherwise);
``ndjson``, ``csv``, ``xml`` and ``text`` stream every matching event (or ``limit`` of them)
in constant memory, as a download. The caller's permission scope is part of the query.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

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
from trailkeeper.auth.permissions import read_scope, scoped
from trailkeeper.errors import BadRequestError
from trailkeeper.export.formats import EXTENSIONS, MEDIA_TYPES, ExportOptions, export
from trailkeeper.ingest.service import AuditService
from trailkeeper.query.classes import audit_classes, class_fields, standard_fields
from trailkeeper.query.fields import Field
from trailkeeper.query.plan import keyset_order
from trailkeeper.query.request import Search, build_search
from trailkeeper.storage.base import Cursor, RowPage, Storage, StoredEvent, stream_pages

router = APIRouter(prefix="/api/v1", tags=["Native"])

MAX_PAGE = 10_000
# Values may hold markup; a browser must never guess a type that would run it.
_NO_SNIFF = {"X-Content-Type-Options": "nosniff"}
FormatName = Literal["json", "ndjson", "csv", "xml", "text"]
# The parameters of GET /events: the "Query" recorded of each search is made of these.
_PARAMETERS = ("q", "from", "to", "tz", "category", "author", "limit", "offset", "cursor",
               "sort", "fields", "format", "count", "bare")


@router.get("/events", summary="Search events; page as JSON or stream an export")
async def search_events(
    request: Request,
    service: ServiceDep,
    principal: PrincipalDep,
    q: Annotated[str | None, Query(description="query language, e.g. action:\"Repository "
                                               "created\" AND object.type:PROJECT")] = None,
    from_: Annotated[str | None, Query(alias="from", description="time, date or now-7d")] = None,
    to: Annotated[str | None, Query(description="time or date, inclusive")] = None,
    tz: Annotated[str | None, Query(description="IANA zone for dates without one")] = None,
    category: Annotated[list[str] | None, Query(description="exact category (any)")] = None,
    author: Annotated[list[str] | None, Query(description="author name or id (any)")] = None,
    limit: Annotated[int | None, Query(ge=1, description="json: page size (default 200, "
                                                         f"at most {MAX_PAGE}); exports: "
                                                         "default all")] = None,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    sort: Annotated[str | None, Query(description="e.g. -timestamp or action,-timestamp")] = None,
    fields: Annotated[str | None, Query(description="comma-separated field names")] = None,
    format: Annotated[FormatName, Query()] = "json",
    count: Annotated[bool, Query(description="include the total number of matches")] = False,
    bare: Annotated[bool, Query(description="no header, count or enclosing element")] = False,
) -> Response:
    """A JSON page is recorded as "Audit Log search performed", any other format as "Audit
    Log exported" when its stream ends, with the query and the number of events."""
    search = build_search(q, since=from_, until=to, tz=tz, sort=sort, fields=fields,
                          categories=category or (), authors=author or ())
    search = Search(scoped(principal, search.where), search.order, search.fields)
    position = _cursor(cursor, search)
    storage = service.storage
    who: Actor = actor(request, principal)
    text = query_text(request.query_params.multi_items(), _PARAMETERS)
    if format == "json":
        size = limit or 200
        if size > MAX_PAGE:
            raise BadRequestError(f"Parameter 'limit': at most {MAX_PAGE} per page; use "
                                  "format=ndjson to export more")
        body, page = await run_in_threadpool(_json_page, storage, search, size, offset,
                                             position, count)
        if covered(service.governance.config, SEARCHED):
            service.audit(search_performed(who, text, Results.of(page.events)))
        return Response(body, media_type="application/json", headers=_NO_SNIFF)
    total = await run_in_threadpool(storage.count, search.where) if count else None
    return export_response(service, search, who, text, format, offset=offset, limit=limit,
                           cursor=position, total=total, bare=bare)


def export_response(service: AuditService, search: Search, who: Actor, query: str,
                    format: FormatName, *, offset: int = 0, limit: int | None = None,
                    cursor: Cursor | None = None, total: int | None = None,
                    bare: bool = False) -> StreamingResponse:
    """Every event ``search`` matches (or ``limit`` of them) as a streamed download in
    ``format``, recorded as "Audit Log exported" (with ``query``, the request's own
    parameters) when the stream ends: the native API's exports and the web UI's."""

    def done(results: Results) -> None:
        if covered(service.governance.config, EXPORTED):
            service.audit(exported(who, query, format, results))

    rows = counted(_rows(service.storage, search, offset, limit, cursor), done)
    options = ExportOptions(fields=search.fields, bare=bare, total=total, offset=offset)
    name = f"audit-log-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.{EXTENSIONS[format]}"
    return StreamingResponse(
        export(rows, format, options), media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"', **_NO_SNIFF})


def _cursor(text: str | None, search: Search) -> Cursor | None:
    if not text:
        return None
    if keyset_order(search.order) is None:
        raise BadRequestError("Parameter 'cursor': cursors page in time order only; "
                              "with another sort use offset")
    try:
        return Cursor.parse(text)
    except ValueError as exc:
        raise BadRequestError(f"Parameter 'cursor': {exc}") from None


def _json_page(storage: Storage, search: Search, limit: int, offset: int,
               cursor: Cursor | None, count: bool) -> tuple[bytes, RowPage]:
    page: RowPage = storage.search(search.where, limit=limit, offset=offset, cursor=cursor,
                                   order=search.order)
    if search.fields is None:
        entities = b",".join(e.rest_json() for e in page.events)
    else:
        entities = b",".join(orjson.dumps(_projected(e, search.fields)) for e in page.events)
    extra: dict[str, object] = {}
    if count:
        extra["total"] = storage.count(search.where)
    if page.next_cursor is not None:
        extra["next_cursor"] = str(page.next_cursor)
    elif page.more:  # sorted pages continue by offset
        extra["next_offset"] = offset + len(page.events)
    tail = orjson.dumps(extra)[1:-1]
    return b'{"events":[%s]%s%s}' % (entities, b"," if tail else b"", tail), page


def _projected(event: StoredEvent, fields: tuple[Field, ...]) -> dict[str, str]:
    doc = orjson.loads(event.doc)
    doc["id"] = event.id
    return {f.name: f.extract(doc) for f in fields}


def _rows(storage: Storage, search: Search, offset: int, limit: int | None,
          cursor: Cursor | None) -> Iterator[StoredEvent]:
    if cursor is not None:  # an export resumed where a JSON page ended (time order only)
        rows = stream_pages(storage, search.where, descending=search.order[0][1],
                            batch_size=1000, offset=offset, cursor=cursor)
    else:
        rows = storage.stream(search.where, order=search.order, offset=offset)
    return itertools.islice(rows, limit) if limit is not None else rows


@router.get("/classes", summary="Audit classes (categories) and their actions")
async def list_classes(service: ServiceDep, principal: PrincipalDep) -> Response:
    """bfauditlog's ``-L``: ``readable`` marks the classes the caller may search in full
    (others show only the caller's own events)."""
    classes = await run_in_threadpool(audit_classes, service.storage)
    readable = principal.sees_everything
    return Response(orjson.dumps({"classes": [
        {"name": c.name, "actions": list(c.actions), "readable": readable} for c in classes
    ]}), media_type="application/json")


@router.get("/classes/fields", summary="Fields of audit classes (standard and typed)")
async def list_class_fields(
    service: ServiceDep,
    principal: PrincipalDep,
    class_: Annotated[list[str], Query(alias="class", description="a class name")],
) -> Response:
    """bfauditlog's ``-L -c``: typed change and attribute fields are read from each class's
    recent events (within the caller's scope)."""
    scope = read_scope(principal)
    listed = [{"name": name,
               "fields": await run_in_threadpool(class_fields, service.storage, name, scope)}
              for name in class_]
    return Response(orjson.dumps({"standard": standard_fields(), "classes": listed}),
                    media_type="application/json")
