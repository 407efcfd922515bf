"""The log page's filter: read from the URL, so that a view can be bookmarked and shared,
turned into the query AST every search interface compiles (`trailkeeper.query.ast`), and
written back into the page's links.

Nothing here is a query path of its own: the query language is `parse_query`, custom times
are `time_bound` (as ``from``/``to`` of ``GET /api/v1/events``), lists of categories,
actions, objects, areas and levels are `AuditQuery`'s nodes, and the caller ANDs the
permission scope before the store compiles it. Pure: no store, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from trailkeeper.errors import BadRequestError, QuerySyntaxError
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.query.ast import AuditQuery, Compare, Node, Text, all_of
from trailkeeper.query.dates import TimeValueError, zone
from trailkeeper.query.lucene import parse_query
from trailkeeper.query.request import time_bound

ALL, CUSTOM = "all", "custom"
# Preset ranges: label and length (they end now, and are evaluated when the page opens).
PRESETS: dict[str, tuple[str, int]] = {
    "1h": ("Last hour", 3_600_000),
    "24h": ("Last 24 hours", 86_400_000),
    "7d": ("Last 7 days", 7 * 86_400_000),
    "30d": ("Last 30 days", 30 * 86_400_000),
    "90d": ("Last 90 days", 90 * 86_400_000),
}
RANGE_LABELS = {ALL: "All time", **{k: v[0] for k, v in PRESETS.items()}, CUSTOM: "Custom"}
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_LIMIT = 50
LEVELS = (CoverageLevel.BASE, CoverageLevel.ADVANCED, CoverageLevel.FULL)
AREAS = tuple(CoverageArea)
MAX_VALUES = 200  # per list parameter: more is a mistake or an attack, not a filter
MAX_TEXT = 10_000  # characters of a value (the query language's own limit)
_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

# The parameters a view is made of (recorded as the "Query" of its search).
PARAMETERS = ("range", "from", "to", "tz", "category", "action", "author", "object",
              "object_type", "area", "level", "search", "q", "limit", "older", "newer",
              "alert", "chart")


def split_object(value: str) -> tuple[str, str] | None:
    """``REPOSITORY,7`` -> ("REPOSITORY", "7"); None when it is not TYPE,ID."""
    kind, sep, ident = value.partition(",")
    kind, ident = kind.strip(), ident.strip()
    if not sep or not ident or len(ident) > 200 or not _TYPE.fullmatch(kind):
        return None
    return kind.upper(), ident


@dataclass(frozen=True, slots=True)
class LogFilter:
    """A view of the log as its URL spells it. ``authors`` are author ids or names and
    ``objects`` ``TYPE,ID`` or names (of ``object_type``) as typed or picked; the page
    resolves them against the catalogues (`trailkeeper.web.pickers`) before searching."""

    range: str = ALL
    since: str = ""
    until: str = ""
    tz: str = ""
    categories: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    object_type: str = ""
    areas: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    search: str = ""
    q: str = ""
    limit: int = DEFAULT_LIMIT
    alert: int | None = None
    problems: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_params(cls, params: Sequence[tuple[str, str]]) -> LogFilter:
        """Read from the URL's parameters; malformed values are noted in ``problems`` (by
        parameter) and left out, never raised: the page shows them beside the field."""
        values: dict[str, list[str]] = {}
        problems: dict[str, str] = {}
        for key, value in params:
            if key not in PARAMETERS:
                continue
            bucket = values.setdefault(key, [])
            # Never cut a value or drop one silently: the view would match more than asked.
            if len(value) > MAX_TEXT:
                problems[key] = f"The {key} is longer than {MAX_TEXT:,} characters"
            elif len(bucket) >= MAX_VALUES:
                problems[key] = f"At most {MAX_VALUES} values of {key} at a time"
            else:
                bucket.append(value)

        def one(name: str) -> str:
            found = [v.strip() for v in values.get(name, []) if v.strip()]
            return found[-1] if found else ""

        def many(name: str) -> tuple[str, ...]:
            return tuple(dict.fromkeys(v.strip() for v in values.get(name, []) if v.strip()))

        chosen = one("range") or ALL
        if chosen not in RANGE_LABELS:
            problems["range"] = f"Unknown time range {chosen!r}"
            chosen = ALL
        since, until = one("from"), one("to")
        if (since or until) and chosen == ALL:
            chosen = CUSTOM  # a zoomed chart bar, or a hand-written URL
        areas = tuple(a.upper() for a in many("area"))
        levels = tuple(v.upper() for v in many("level"))
        for name, given, allowed in (("area", areas, {a.name for a in AREAS}),
                                     ("level", levels, {v.name for v in LEVELS})):
            unknown = [v for v in given if v not in allowed]
            if unknown:
                problems[name] = f"Unknown {name} {unknown[0]!r}"
        limit = DEFAULT_LIMIT
        if one("limit"):
            text = one("limit")
            if text.isdigit() and int(text) in PAGE_SIZES:
                limit = int(text)
            else:
                problems["limit"] = f"Page size must be one of {', '.join(map(str, PAGE_SIZES))}"
        alert = None
        if one("alert"):
            text = one("alert")
            if text.isdigit() and len(text) <= 18:
                alert = int(text)
            else:
                problems["alert"] = f"Alert {text!r} is not an alert id"
        return cls(
            range=chosen,
            since=since if chosen == CUSTOM else "",
            until=until if chosen == CUSTOM else "",
            tz=one("tz"),
            categories=many("category"),
            actions=many("action"),
            authors=many("author"),
            objects=many("object"),
            object_type=one("object_type").upper() if _TYPE.fullmatch(one("object_type"))
            else "",
            areas=tuple(a for a in areas if a in CoverageArea.__members__),
            levels=tuple(v for v in levels if v in {x.name for x in LEVELS}),
            search=one("search"),
            q=one("q"),
            limit=limit,
            alert=alert,
            problems=problems,
        )

    # -- the URL ------------------------------------------------------------------------

    def params(self) -> list[tuple[str, str]]:
        """The view's URL parameters, defaults left out (paging and chart are not part of
        the view: links add them)."""
        out: list[tuple[str, str]] = []
        if self.range != ALL:
            out.append(("range", self.range))
        if self.range == CUSTOM:
            out += [(k, v) for k, v in (("from", self.since), ("to", self.until)) if v]
        if self.tz:
            out.append(("tz", self.tz))
        for name, items in (("category", self.categories), ("action", self.actions),
                            ("author", self.authors), ("object", self.objects),
                            ("area", self.areas), ("level", self.levels)):
            out += [(name, v) for v in items]
        if self.object_type:
            out.append(("object_type", self.object_type))
        for name, value in (("search", self.search), ("q", self.q)):
            if value:
                out.append((name, value))
        if self.limit != DEFAULT_LIMIT:
            out.append(("limit", str(self.limit)))
        if self.alert is not None:
            out.append(("alert", str(self.alert)))
        return out

    def query_string(self, *extra: tuple[str, str]) -> str:
        """``?a=b&...`` of the view plus ``extra`` parameters; empty for the plain page."""
        items = [*self.params(), *extra]
        return "?" + urlencode(items) if items else ""

    def but(self, **changes: Any) -> LogFilter:
        """A copy with some fields changed (problems are not carried over)."""
        return replace(self, problems={}, **changes)

    def without(self, name: str, value: str) -> LogFilter:
        """The view without one value of a list field (a chip's remove link)."""
        current: tuple[str, ...] = getattr(self, name)
        return self.but(**{name: tuple(v for v in current if v != value)})

    def zoomed(self, start_iso: str, end_iso: str) -> LogFilter:
        """The view restricted to a chart bar's range (``to`` is inclusive)."""
        return self.but(range=CUSTOM, since=start_iso, until=end_iso)

    # -- the query ----------------------------------------------------------------------

    def where(self, *, now_ms: int, resolved: Iterable[Node] = ()) -> Compiled:
        """The condition of this view (before the caller's scope), its time bounds, and
        what could not be read. ``resolved`` holds the conditions the page resolved against
        the store: the authors, the objects, an alert's events (`trailkeeper.web.pickers`)."""
        problems = Problems(dict(self.problems))
        start_ms: int | None = None
        end_ms: int | None = None
        try:
            tz = zone(self.tz or None)
        except TimeValueError:
            problems.fields["tz"] = f"Unknown time zone {self.tz!r}; times are read as UTC"
            tz = zone(None)
        nodes: list[Node] = []
        try:
            nodes.append(parse_query(self.q, now_ms=now_ms, tz=tz))
        except QuerySyntaxError as exc:
            problems.query = exc
        if self.range in PRESETS:
            start_ms, end_ms = now_ms - PRESETS[self.range][1], now_ms + 1
            nodes.append(Compare("timestamp", ">=", start_ms))
        for name, raw in (("from", self.since), ("to", self.until)):
            if raw:
                try:
                    bound = time_bound(name, raw, now_ms=now_ms, tz=tz)
                except BadRequestError as exc:
                    problems.fields[name] = exc.message.removeprefix(f"Parameter '{name}': ")
                    continue
                nodes.append(bound)
                if name == "from":
                    start_ms = int(bound.value)
                else:
                    end_ms = int(bound.value)
        if start_ms is not None and end_ms is not None and start_ms >= end_ms:
            problems.fields["to"] = "The end of the time range is before its start"
        nodes.append(AuditQuery(
            categories=self.categories, actions=self.actions,
            areas=[CoverageArea[a] for a in self.areas],
            levels=[CoverageLevel[v] for v in self.levels]).to_ast())
        words = tuple(self.search.lower().split())
        if words:
            nodes.append(Text(words, match_all=True))
        nodes.extend(resolved)
        return Compiled(all_of(nodes), problems, start_ms, end_ms)


@dataclass(slots=True)
class Problems:
    """What a view could not read: by field, and the query language's error (with its
    column) apart."""

    fields: dict[str, str]
    query: QuerySyntaxError | None = None

    def __bool__(self) -> bool:
        return bool(self.fields) or self.query is not None


@dataclass(frozen=True, slots=True)
class Compiled:
    """A view's condition, its time bounds (``end_ms`` exclusive; None when open) and what
    could not be read (the page shows no events while anything could not)."""

    where: Node
    problems: Problems
    start_ms: int | None
    end_ms: int | None
