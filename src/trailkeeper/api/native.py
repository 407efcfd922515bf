"""Native API under ``/api/v1``: durable ingest and plain event reads."""

from __future__ import annotations

import anyio
import anyio.to_thread
import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from trailkeeper.api.deps import PrincipalDep, ServiceDep, SettingsDep, actor
from trailkeeper.auth.audit_events import SEARCHED, Results, covered, search_performed
from trailkeeper.auth.permissions import scoped
from trailkeeper.errors import NotFoundError, PayloadTooLargeError
from trailkeeper.ingest.body import split_items
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.event import AuditAuthor
from trailkeeper.model.wire import decode_events
from trailkeeper.query.ast import Compare
from trailkeeper.storage.rows import Batch

router = APIRouter(prefix="/api/v1", tags=["Native"])

# Parsing is pure Python and holds the GIL: more than one thread at it only adds switching.
_PARSERS = anyio.CapacityLimiter(1)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"The body is {int(declared)} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"The body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _prepare(service: AuditService, body: bytes, content_type: str | None, max_events: int,
             author: AuditAuthor) -> Batch:
    """Parse, validate and encode a body: CPU work, done in the thread pool."""
    events = decode_events(split_items(body, content_type, max_events=max_events))
    return service.prepare(events, author)


@router.post("/events", status_code=201, summary="Record events (object, array or NDJSON)",
             responses={200: {"description": "Every event was already stored (same uid)"},
                        400: {"description": "Invalid events; every problem is listed"},
                        409: {"description": "A uid was reused with different content"},
                        413: {"description": "Body or batch too large"}})
async def post_events(request: Request, service: ServiceDep, settings: SettingsDep,
                      principal: PrincipalDep) -> Response:
    """Answers after the events are durably committed: 201 with their ids in input order
    (null for an event the audit policy does not record, listed in ``not_recorded``)."""
    body = await _read_body(request, settings.max_body_bytes)
    prepared = await anyio.to_thread.run_sync(
        _prepare, service, body, request.headers.get("content-type"),
        settings.max_batch_events, principal.as_author(), limiter=_PARSERS)
    service.metrics.events_received.labels("http").inc(len(prepared.events))
    result = await service.commit_async(prepared)
    answer: dict[str, object] = {"ids": prepared.producer_ids(result.ids)}
    if prepared.skipped:
        # Left out on purpose by the audit policy (denylist, coverage): not an error.
        answer["not_recorded"] = [{"index": pos, "reason": reason}
                                  for pos, reason in prepared.skipped]
    status = 201 if result.created else 200
    return Response(orjson.dumps(answer), status_code=status, media_type="application/json")


@router.get("/events/{event_id}", summary="One event by id")
async def get_event(event_id: int, request: Request, service: ServiceDep,
                    principal: PrincipalDep) -> Response:
    """Recorded as "Audit Log search performed" (Query ``id=N``), found or not."""
    where = scoped(principal, Compare("id", "=", event_id))
    page = await run_in_threadpool(service.storage.search, where, limit=1)
    if covered(service.governance.config, SEARCHED):
        service.audit(search_performed(actor(request, principal), f"id={event_id}",
                                       Results.of(page.events)))
    if not page.events:
        raise NotFoundError(f"No event with id {event_id}")
    return Response(page.events[0].rest_json(), media_type="application/json")
