"""A search as its callers spell it (query text, time bounds, sort and field lists), checked
and turned into the AST, an order and output fields. Shared by the native API and the CLI so
both accept exactly the same things and word their errors alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo

from trailkeeper.errors import BadRequestError
from trailkeeper.model.timestamps import now_ms as _now_ms
from trailkeeper.query.ast import Compare, In, Node, Or, all_of
from trailkeeper.query.dates import TimeValueError, parse_span, zone
from trailkeeper.query.fields import Field, resolve, suggestion
from trailkeeper.query.lucene import parse_query
from trailkeeper.query.plan import NEWEST_FIRST, Order


@dataclass(frozen=True, slots=True)
class Search:
    where: Node
    order: Order = NEWEST_FIRST
    fields: tuple[Field, ...] | None = None


def build_search(
    q: str | None = None,
    *,
    since: str | None = None,
    until: str | None = None,
    tz: str | None = None,
    sort: str | None = None,
    fields: str | None = None,
    categories: Sequence[str] = (),
    authors: Sequence[str] = (),
    now_ms: int | None = None,
) -> Search:
    """Everything checked; a `BadRequestError` (400, exit 2) names the parameter at fault.

    ``since`` / ``until`` take what ``timestamp:`` takes; both are inclusive of the span they
    name (``until=2024-03-05`` runs to the end of that day). ``categories`` are exact names
    (any of them); ``authors`` are names or ids (any of them).
    """
    try:
        zone_info = zone(tz)
    except TimeValueError as exc:
        raise BadRequestError(f"Parameter 'tz': {exc}") from None
    now = now_ms if now_ms is not None else _now_ms()
    nodes = [parse_query(q or "", now_ms=now, tz=zone_info)]
    for name, raw in (("from", since), ("to", until)):
        if raw:
            nodes.append(time_bound(name, raw, now_ms=now, tz=zone_info))
    if categories:
        nodes.append(In("category", tuple(dict.fromkeys(categories))))
    if authors:
        unique = tuple(dict.fromkeys(authors))
        nodes.append(Or((In("author.name", unique), In("author.id", unique))))
    return Search(all_of(nodes), parse_sort(sort), parse_fields(fields))


def time_bound(name: str, raw: str, *, now_ms: int, tz: tzinfo) -> Compare:
    """The condition of a ``from`` (the start of the span ``raw`` names) or ``to`` bound
    (the end of its span, inclusive); `BadRequestError` naming the parameter."""
    try:
        span = parse_span(raw, now_ms=now_ms, tz=tz)
    except TimeValueError as exc:
        raise BadRequestError(f"Parameter '{name}': {exc}") from None
    return Compare("timestamp", ">=", span.start) if name == "from" \
        else Compare("timestamp", "<", span.end)


def parse_sort(text: str | None) -> Order:
    """``-timestamp,action`` or bfauditlog's ``audit.stamp-,audit.type+``: a leading or
    trailing ``-`` sorts descending; no marker (or ``+``) ascending."""
    if not text or not text.strip():
        return NEWEST_FIRST
    order: list[tuple[str, bool]] = []
    for raw in text.split(","):
        item = raw.strip()
        descending = item.startswith("-") or item.endswith("-")
        name = item.strip("+-").strip()
        if not name:
            raise BadRequestError(f"Parameter 'sort': empty sort key in {text!r}")
        found = resolve(name)
        if found is None:
            raise BadRequestError(f"Parameter 'sort': unknown field {name!r}; "
                                  f"{suggestion(name)}")
        column = found.sort_column
        if column is None:
            raise BadRequestError(
                f"Parameter 'sort': cannot sort by {name!r}; sortable fields are id, timestamp, "
                "area, level, category, action, author, author.id, author.name, source, "
                "method, node, system")
        order.append((column, descending))
    return tuple(order)


def parse_fields(text: str | None) -> tuple[Field, ...] | None:
    """A comma-separated field list (None when not given)."""
    if text is None or not text.strip():
        return None
    chosen: list[Field] = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue  # bfauditlog examples wrap lists after a comma: "a, b"
        found = resolve(name)
        if found is None:
            raise BadRequestError(f"Parameter 'fields': unknown field {name!r}; "
                                  f"{suggestion(name)}")
        chosen.append(found)
    return tuple(chosen) or None

