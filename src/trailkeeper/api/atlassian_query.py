"""Validate the query parameters of Atlassian's ``GET /rest/auditing/1.0/events``.

Pure: parameters in, a typed request or `InvalidQueryError` (listing every failing parameter
with Atlassian's i18n key) out. Keys and messages follow atlassian-audit-plugin 1.16.2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from trailkeeper.errors import InvalidQueryError, ParameterProblem
from trailkeeper.model.timestamps import parse_iso
from trailkeeper.query.ast import Compare, In, Node, Text, all_of, objects_condition
from trailkeeper.storage.base import Cursor

JSON_LIMIT = 10_000
CSV_LIMIT = 100_000
DEFAULT_LIMIT = 200
MAX_INT = 2**31 - 1
MAX_USER_ID = 200
MAX_SEARCH = 100
_PAIR_SEPARATOR = re.compile(r"\s*;\s*")
_ID_SEPARATOR = re.compile(r"\s*,\s*")


@dataclass(frozen=True)
class EventsRequest:
    from_ms: int
    to_ms: int
    offset: int
    limit: int
    cursor: Cursor | None
    user_ids: tuple[str, ...]
    categories: tuple[str, ...]
    actions: tuple[str, ...]
    objects: tuple[tuple[str, str], ...]
    search: str | None
    output: str
    scan_limit: int | None

    def time_window(self) -> Node:
        return all_of([Compare("timestamp", ">=", self.from_ms),
                       Compare("timestamp", "<=", self.to_ms)])

    def where(self) -> Node:
        """The filters as a query (scan limit and paging are applied by the caller)."""
        nodes: list[Node] = [self.time_window()]
        if self.user_ids:
            nodes.append(In("author.id", self.user_ids))
        if self.categories:
            nodes.append(In("category", self.categories))
        if self.actions:
            nodes.append(In("action", self.actions))
        nodes.extend(objects_condition(self.objects))
        if self.search:
            terms = tuple(self.search.lower().split())
            if terms:
                nodes.append(Text(terms))
        return all_of(nodes)


class _Collector:
    def __init__(self) -> None:
        self.problems: list[ParameterProblem] = []

    def fail(self, parameter: str, key: str, message: str) -> None:
        self.problems.append(ParameterProblem(parameter, key, message))

    def integer(self, params: Mapping[str, str], name: str, default: int | None,
                not_number_key: str) -> int | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw.strip())
        except ValueError:
            self.fail(name, not_number_key, f"'{name}' should be a number")
            return None


def _csv_values(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",")]


def parse_events_request(params: Mapping[str, str], *, now_ms: int) -> EventsRequest:
    c = _Collector()

    def instant(name: str, default: int) -> int:
        raw = params.get(name)
        if raw is None or raw == "":
            return default
        try:
            return parse_iso(raw.strip())
        except ValueError:
            c.fail(name, f"validation.error.{name}.invalid", f"'{name}' timestamp is invalid")
            return default

    from_ms = instant("from", 0)
    to_ms = instant("to", now_ms)

    offset = c.integer(params, "offset", 0, "validation.error.offset.not.number")
    if offset is not None:
        if offset < 0:
            # Atlassian reports a negative offset under the key of 'to' (sic).
            c.fail("offset", "validation.error.to.invalid",
                   "Offset should be greater than or equal to 0")
        elif offset > MAX_INT:
            c.fail("offset", "validation.error.offset.too.large",
                   f"Offset can't exceed {MAX_INT}")

    limit = c.integer(params, "limit", DEFAULT_LIMIT, "validation.error.limit.not.number")
    if limit is not None and not 1 <= limit <= CSV_LIMIT:
        c.fail("limit", "validation.error.limit.small", "Limit can't exceed 100 000"
               if limit > CSV_LIMIT else "Limit should be at least 1")

    cursor = None
    raw_cursor = params.get("pageCursor")
    if raw_cursor:
        try:
            cursor = Cursor.parse(raw_cursor)
        except ValueError:
            c.fail("pageCursor", "validation.error.cursor.invalid",
                   "Cursor format is invalid. Should be two numbers delimited by ,")

    user_ids = _csv_values(params.get("userIds")) or []
    user_ids = [u for u in user_ids if u]
    if any(len(u) > MAX_USER_ID for u in user_ids):
        c.fail("userIds", "validation.error.user.ids.invalid",
               f"User ids can't be longer than {MAX_USER_ID} characters")

    lists: dict[str, list[str]] = {}
    for name in ("categories", "actions"):
        values = _csv_values(params.get(name))
        if values is not None and any(v == "" for v in values):
            c.fail(name, f"validation.error.{name}.empty", f"'{name}' contains an empty value")
        lists[name] = [v for v in values or [] if v]

    objects: list[tuple[str, str]] = []
    raw_objects = params.get("affectedObject")
    if raw_objects is not None and raw_objects.strip():
        for part in _PAIR_SEPARATOR.split(raw_objects.strip()):
            pieces = _ID_SEPARATOR.split(part.strip())
            if len(pieces) != 2 or not all(pieces):
                c.fail("affectedObject", "validation.error.affected.objects.invalid",
                       f"Affected object {part!r} should be TYPE,id")
                continue
            objects.append((pieces[0], pieces[1]))

    search = params.get("search")
    if search is not None and len(search) > MAX_SEARCH:
        c.fail("search", "validation.error.search.too.long",
               f"Search string can't exceed {MAX_SEARCH} characters")

    output = (params.get("outputFormat") or "json").strip().lower()
    if output not in ("json", "csv"):
        c.fail("outputFormat", "validation.error.format", "Format should be either csv or json")

    scan_limit = c.integer(params, "scanLimit", None, "validation.error.scan.limit.not.number")
    if scan_limit is not None and not 1 <= scan_limit <= MAX_INT:
        c.fail("scanLimit", "validation.error.scan.limit.invalid",
               f"Scan limit should be between 1 and {MAX_INT}")

    if c.problems:
        raise InvalidQueryError(c.problems)
    return EventsRequest(
        from_ms=from_ms, to_ms=to_ms, offset=offset or 0,
        limit=limit if limit is not None else DEFAULT_LIMIT, cursor=cursor,
        user_ids=tuple(user_ids), categories=tuple(lists["categories"]),
        actions=tuple(lists["actions"]), objects=tuple(objects),
        search=search.strip() if search else None, output=output, scan_limit=scan_limit,
    )
