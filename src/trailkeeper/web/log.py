"""The audit log page (``/audit/``), a delegated administrator's view of one object
(``/audit/resource/{TYPE},{ID}``), its exports and the pickers' suggestions.

Every search runs the API's path: the view's condition (`trailkeeper.web.filters`) ANDed
with the visitor's read scope (`scoped`), then `Storage.search` with keyset cursors
("older" continues after the page's last event, "newer" before its first, so page 1,000
costs what page 1 costs), `Storage.histogram` for the chart, and the native API's
`export_response` for downloads. Each page is recorded as "Audit Log search performed" and
each download as "Audit Log exported", as the API's are.

The chart is drawn within the page's time budget (`PAGE_BUDGET_MS`): a filter the store
cannot count that fast over its whole range (an unindexed field over a million events)
gets a link that draws it without the budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from trailkeeper.alerts.model import AlertRecord
from trailkeeper.api.search import FormatName, export_response
from trailkeeper.auth.audit_events import SEARCHED, Results, covered, query_text, search_performed
from trailkeeper.auth.permissions import administers, scoped
from trailkeeper.auth.principals import Principal
from trailkeeper.errors import NotFoundError, PermissionDeniedError
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.timestamps import now_ms
from trailkeeper.query.ast import HasObject, In, Node
from trailkeeper.query.request import Search
from trailkeeper.storage.base import CatalogueObject, Cursor, RowPage, Storage, StoredEvent
from trailkeeper.web import chart as charts
from trailkeeper.web import pickers
from trailkeeper.web.events import Row, row
from trailkeeper.web.filters import (
    AREAS,
    LEVELS,
    PAGE_SIZES,
    PARAMETERS,
    RANGE_LABELS,
    Compiled,
    LogFilter,
    Problems,
    split_object,
)
from trailkeeper.web.render import base_path
from trailkeeper.web.requests import actor, signed_in, web
from trailkeeper.web.sessions import Visitor

PAGE_BUDGET_MS = 100  # the chart may take what the page's search left of this
CHART_MIN_MS = 15  # with less left, it is not tried
CHART_WITHOUT_BUDGET_MS = 10_000  # "draw it anyway" still stops somewhere
EXPORT_FORMATS = ("csv", "ndjson")


@dataclass
class LogView:
    """Everything the log page shows."""

    filter: LogFilter
    path: str  # the page's own path (the log, or one object's view)
    problems: Problems
    rows: list[Row] = field(default_factory=list)
    newer: str | None = None
    older: str | None = None
    chart: charts.Chart | None = None
    chart_skipped: str | None = None  # a link that draws the chart without the budget
    author_chips: list[pickers.Chip] = field(default_factory=list)
    object_chips: list[pickers.Chip] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    actions: list[tuple[str, list[str]]] = field(default_factory=list)
    resource: CatalogueObject | None = None
    alert: AlertRecord | None = None
    administered: list[CatalogueObject] = field(default_factory=list)
    searched: bool = False  # a search ran (it is recorded)
    timings: dict[str, float] = field(default_factory=dict)  # ms, for Server-Timing

    def href(self, *extra: tuple[str, str], view: LogFilter | None = None) -> str:
        return self.path + (view or self.filter).query_string(*extra)

    def remove(self, name: str, value: str) -> str:
        return self.href(view=self.filter.without(name, value))

    def add(self, name: str, value: str) -> str:
        """The view narrowed by one more value of a list field (a row's quick filters)."""
        current: tuple[str, ...] = getattr(self.filter, name)
        return self.href(view=self.filter.but(**{name: tuple(dict.fromkeys((*current,
                                                                            value)))}))

    def export(self, fmt: str) -> str:
        return self.path.rstrip("/") + "/export" + self.filter.query_string(("format", fmt))


def _cursor(text: str) -> Cursor | None:
    try:
        return Cursor.parse(text)
    except ValueError:
        return None


def _catalogue(storage: Storage, view: LogView) -> None:
    by_category: dict[str, list[str]] = {}
    for entry in storage.actions():
        by_category.setdefault(entry.category, []).append(entry.action)
    for name in view.filter.categories:
        by_category.setdefault(name, [])
    chosen = set(view.filter.actions) - {a for acts in by_category.values() for a in acts}
    if chosen:
        by_category.setdefault("(not seen)", []).extend(sorted(chosen))
    view.categories = sorted(by_category, key=str.casefold)
    view.actions = [(c, sorted(by_category[c], key=str.casefold)) for c in view.categories
                    if by_category[c]]


def resolve(storage: Storage, principal: Principal, view: LogView,
            resource: tuple[str, str] | None) -> Compiled:
    """The view's condition (before the scope): its filter, with the authors and objects
    resolved against the catalogues, the object of a resource view and an alert's events;
    the chips, the alert and every problem are noted on ``view``."""
    resolved: list[Node] = []
    authors = pickers.authors(storage, principal, view.filter.authors)
    objects = pickers.objects(storage, principal, view.filter.objects, view.filter.object_type)
    view.author_chips, view.object_chips = authors.chips, objects.chips
    resolved += [r.condition for r in (authors, objects) if r.condition is not None]
    if resource is not None:
        resolved.append(HasObject(resource[0], (resource[1],)))
    if view.filter.alert is not None:
        view.alert = storage.get_alert(view.filter.alert) if principal.sees_everything else None
        if view.alert is None:
            view.problems.fields["alert"] = f"There is no alert #{view.filter.alert} you may see"
        else:
            resolved.append(In("id", view.alert.event_ids))
    compiled = view.filter.where(now_ms=now_ms(), resolved=resolved)
    view.problems.fields.update(compiled.problems.fields)
    view.problems.query = compiled.problems.query
    return compiled


def build_view(service: AuditService, visitor: Visitor, view: LogView, *,
               older: str, newer: str, full_chart: bool, resource: tuple[str, str] | None,
               started: float) -> RowPage | None:
    """Resolve the filter, search the page, count the chart; the page (None when the view
    could not be read). Runs in a worker thread."""
    storage = service.storage
    principal = visitor.principal
    _catalogue(storage, view)
    if not principal.sees_everything:
        view.administered = pickers.administered(storage, principal)
    compiled = resolve(storage, principal, view, resource)
    position = {"older": _cursor(older) if older else None,
                "newer": _cursor(newer) if newer else None}
    for name, given in (("older", older), ("newer", newer)):
        if given and position[name] is None:
            view.problems.fields[name] = "This page link is damaged; start again from the top"
    if view.problems:
        return None
    where = scoped(principal, compiled.where)
    limit = view.filter.limit
    page: RowPage | None = None
    first_page = True
    if position["newer"] is not None:
        ahead = storage.search(where, limit=limit, cursor=position["newer"], descending=False)
        if ahead.more:  # a full page of newer events: show it, newest first
            page = RowPage(list(reversed(ahead.events)), None, True)
            first_page = False
            view.newer = view.href(("newer", _key(page.events[0])))
    elif position["older"] is not None:
        page = storage.search(where, limit=limit, cursor=position["older"])
        first_page = False
        if page.events:
            view.newer = view.href(("newer", _key(page.events[0])))
    if page is None:  # the first page (also when fewer than a page of newer events remain)
        page = storage.search(where, limit=limit)
    if page.more and page.events:
        view.older = view.href(("older", _key(page.events[-1])))
    view.rows = [row(e) for e in page.events]
    view.searched = True
    searched = time.monotonic()
    view.timings["search"] = (searched - started) * 1000
    if page.events:
        newest = page.events[0] if first_page else storage.search(where, limit=1).events[0]
        _draw_chart(storage, view, where, compiled.start_ms, compiled.end_ms,
                    newest.timestamp_ms, full_chart=full_chart, started=started)
        view.timings["chart"] = (time.monotonic() - searched) * 1000
    return page


def _key(event: StoredEvent) -> str:
    return f"{event.timestamp_ms},{event.id}"


def _draw_chart(storage: Storage, view: LogView, where: Node, start_ms: int | None,
                end_ms: int | None, newest_ms: int, *, full_chart: bool,
                started: float) -> None:
    """Windows from the view's start (or its oldest event) to its end (or its newest),
    counted in SQL within what is left of the page's budget: none left, no chart (and a
    link that draws it without the budget)."""

    def left() -> int:
        if full_chart:
            return CHART_WITHOUT_BUDGET_MS
        return int(PAGE_BUDGET_MS - (time.monotonic() - started) * 1000)

    counts = None
    if left() >= CHART_MIN_MS:
        if start_ms is None:
            oldest = storage.search(where, limit=1, descending=False).events
            start_ms = oldest[0].timestamp_ms if oldest else newest_ms
        span = charts.windows(start_ms, newest_ms + 1 if end_ms is None else end_ms)
        if left() >= CHART_MIN_MS:
            counts = storage.histogram(where, start_ms=span.start_ms, bucket_ms=span.step_ms,
                                       buckets=span.count, timeout_ms=left())
    if counts is None:
        view.chart_skipped = view.href(("chart", "full"))
        return
    view.chart = charts.build(span, counts, lambda a, b: view.href(
        view=view.filter.zoomed(a, b)))


async def _resource(request: Request, visitor: Visitor) -> tuple[str, str] | None:
    spec = request.path_params.get("spec")
    if spec is None:
        return None
    pair = split_object(spec)
    if pair is None:
        raise NotFoundError(f"{spec!r} does not name an object; use TYPE,ID, e.g. "
                            "REPOSITORY,7")
    storage = web(request).service.storage
    if not visitor.principal.sees_everything and not await run_in_threadpool(
            administers, visitor.principal, pair[0], pair[1], storage):
        raise PermissionDeniedError(f"You do not administer {pair[0]} {pair[1]}, so you may "
                                    "not see its audit log")
    return pair


async def log_page(request: Request) -> Response:
    started = time.monotonic()
    visitor = await signed_in(request)
    parts = web(request)
    resource = await _resource(request, visitor)
    base = base_path(request)
    path = f"{base}/resource/{quote(request.path_params['spec'], safe=',')}" \
        if resource else f"{base}/"
    params = request.query_params
    view = LogView(LogFilter.from_params(params.multi_items()), path, Problems({}))
    page = await run_in_threadpool(
        build_view, parts.service, visitor, view, older=params.get("older", ""),
        newer=params.get("newer", ""), full_chart=params.get("chart") == "full",
        resource=resource, started=started)
    if resource is not None:
        found = await run_in_threadpool(parts.service.storage.find_objects, resource[0],
                                        object_id=resource[1], limit=1)
        view.resource = found[0] if found else CatalogueObject(*resource, resource[1], None)
    service = parts.service
    if page is not None and covered(service.governance.config, SEARCHED):
        service.audit(search_performed(actor(request, visitor),
                                       query_text(params.multi_items(), PARAMETERS),
                                       Results.of(page.events)))
    status = 400 if view.problems else 200
    rendering = time.monotonic()
    response = parts.pages.render(
        request, "log.html", status=status, view=view, ranges=RANGE_LABELS,
        page_sizes=PAGE_SIZES, areas=AREAS, levels=LEVELS, object_types=pickers.OBJECT_TYPES,
        formats=EXPORT_FORMATS)
    view.timings["render"] = (time.monotonic() - rendering) * 1000
    request.state.timings = view.timings
    return response


async def export(request: Request) -> Response:
    """The view's every event as CSV or NDJSON (streamed, constant memory)."""
    visitor = await signed_in(request)
    parts = web(request)
    resource = await _resource(request, visitor)
    params = request.query_params
    fmt = params.get("format", "csv")
    if fmt not in EXPORT_FORMATS:
        raise NotFoundError(f"Unknown export format {fmt!r}; use csv or ndjson")
    chosen = cast(FormatName, fmt)
    view = LogView(LogFilter.from_params(params.multi_items()), "", Problems({}))

    compiled = await run_in_threadpool(resolve, parts.service.storage, visitor.principal,
                                       view, resource)
    if view.problems:
        # The page shows what is wrong; a download has nowhere to show it.
        return parts.pages.render(request, "error.html", status=400, title="Cannot export",
                                  message="This view has an error; open it to see what it is.")
    where = scoped(visitor.principal, compiled.where)
    return export_response(parts.service, Search(where), actor(request, visitor),
                           query_text(params.multi_items(), PARAMETERS), chosen)


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


async def lookup(request: Request) -> Response:
    """The pickers' suggestions: ``{"suggestions": [{"value", "label"}]}``. Authors only for
    visitors who see every event (the catalogue lists the whole log, as the REST lookups);
    objects of a delegated administrator among those they administer."""
    visitor = await signed_in(request)
    storage = web(request).service.storage
    search = request.query_params.get("search", "")[:200]
    kind = request.path_params["kind"]
    if kind == "authors":
        if not visitor.principal.sees_everything:
            return _json({"suggestions": []})
        found = await run_in_threadpool(pickers.author_suggestions, storage, search)
    elif kind == "objects":
        object_type = request.query_params.get("type", "").upper()[:64]
        found = await run_in_threadpool(pickers.object_suggestions, storage, visitor.principal,
                                        object_type, search)
    else:
        raise NotFoundError(f"No lookup {kind!r}")
    return _json({"suggestions": found})
