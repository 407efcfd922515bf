"""Turn a search (condition, cursor, order, page) into one SELECT, choosing the access path.

Three choices keep a first page cheap however many events match:

- **Drive from an object.** When the query requires one affected object (``TYPE,id``), rows
  come from that object's index, already in (timestamp, id) order, and the scan stops at the
  page size; otherwise every event of a busy repository would be collected and sorted.
- **Scan time, filter text.** A full-text term that matches many events is used as a filter
  on the time-ordered scan instead of collecting and sorting all its matches.
- **Tighten the time range to the cursor,** so page 1,000 starts its index range where page
  999 ended instead of filtering its way down from ``to``.

Pure: the caller supplies how many events the text matches, when it matters.
"""

from __future__ import annotations

from dataclasses import dataclass

from trailkeeper.query.ast import (
    And,
    AttributeIs,
    ChangeIs,
    Compare,
    HasObject,
    In,
    MatchAll,
    Node,
    Not,
    Or,
    Text,
    all_of,
)
from trailkeeper.query.compile import COLUMNS, Dialect, compile_where

# Above this many full-text matches, scanning by time and filtering beats sorting matches.
WIDE_TEXT_MATCHES = 5000
# A top-level OR of indexed alternatives (a delegated admin's scope) is run as one early-
# stopping scan per alternative when there are at most this many and a page needs at most
# this many rows from each; exports and deep offsets scan once, testing the OR.
MAX_BRANCHES = 64
MAX_UNION_ROWS = 20_000


@dataclass(frozen=True, slots=True)
class Page:
    """Where a page starts and how big it is."""

    limit: int
    cursor_ts: int | None = None
    cursor_id: int | None = None
    offset: int = 0
    descending: bool = True

    @classmethod
    def after(cls, cursor: tuple[int, int] | None, *, limit: int, offset: int = 0,
              descending: bool = True) -> Page:
        """The page following ``cursor`` (a (timestamp, id) pair), or the first one."""
        ts, ident = cursor if cursor is not None else (None, None)
        return cls(limit, ts, ident, offset, descending)


def top_level(node: Node) -> list[Node]:
    if isinstance(node, And):
        return list(node.items)
    return [] if isinstance(node, MatchAll) else [node]


def text_terms(node: Node) -> Text | None:
    """The top-level full-text condition, if there is exactly one."""
    texts = [n for n in top_level(node) if isinstance(n, Text)]
    return texts[0] if len(texts) == 1 else None


def uses_full_text(node: Node) -> bool:
    """Whether the condition consults the full-text index anywhere (a bare word, or a
    changed value or attribute compared to a word)."""
    if isinstance(node, Text | ChangeIs | AttributeIs):
        return True
    if isinstance(node, And | Or):
        return any(uses_full_text(item) for item in node.items)
    if isinstance(node, Not):
        return uses_full_text(node.item)
    return False


def absorbed(where: Node) -> Node:
    """``where`` without the top-level ORs that another top-level condition implies
    (absorption: A AND (A OR B) is A). A delegated administrator's scope ANDed with one of
    their own objects (Bitbucket's project view, the web UI's object view) then reads as
    that object alone, from its index, instead of testing the scope on each of its events.
    The same rows match: nothing is dropped that could exclude one."""
    items = top_level(where)
    kept = [item for item in items
            if not (isinstance(item, Or) and any(_implies(other, alternative)
                                                 for other in items if other is not item
                                                 for alternative in item.items))]
    return where if len(kept) == len(items) else all_of(kept)


def _implies(a: Node, b: Node) -> bool:
    """Whether every event matching ``a`` matches ``b`` (known cases only)."""
    if a == b:
        return True
    if isinstance(a, HasObject) and isinstance(b, HasObject) \
            and a.type.upper() == b.type.upper():
        return not b.ids or (bool(a.ids) and set(a.ids) <= set(b.ids))
    return False


def _driver(node: Node) -> HasObject | None:
    for item in top_level(node):
        if isinstance(item, HasObject) and len(item.ids) == 1 and item.ids[0]:
            return item
    return None


def tighten_to_cursor(node: Node, page: Page) -> Node:
    """Bound the time range on the page's far side by the cursor's timestamp.

    Looser bounds on that side are dropped, so the planner starts its index range at the
    cursor instead of at ``to`` (or ``from`` when ascending).
    """
    if page.cursor_ts is None:
        return node
    ts = page.cursor_ts
    far = ("<=", "<") if page.descending else (">=", ">")
    items: list[Node] = []
    tighter = False
    for item in top_level(node):
        if isinstance(item, Compare) and item.field == "timestamp" and item.op in far:
            value = int(item.value)
            if (value <= ts) if page.descending else (value >= ts):
                items.append(item)
                tighter = True
            continue
        items.append(item)
    if not tighter:
        items.append(Compare("timestamp", far[0], ts))  # type: ignore[arg-type]
    return all_of(items)


def plan_search(where: Node, page: Page, dialect: Dialect, *,
                text_matches: int | None = None) -> tuple[str, list[object]]:
    """The SELECT (id, ts, doc) for one page, fetching ``limit + 1`` rows."""
    where = tighten_to_cursor(absorbed(where), page)
    order = "DESC" if page.descending else "ASC"
    p = dialect.placeholder
    driver = _driver(where)
    branches = _branches(where) if driver is None else None
    if branches is not None and page.limit + page.offset <= MAX_UNION_ROWS:
        return _union(branches, page, dialect, text_matches)
    if driver is not None:
        rest = all_of(n for n in top_level(where) if n is not driver)
        # Time bounds and the cursor refer to the driving index, whose ts equals the event's.
        condition, params = compile_where(rest, dialect, ts_column="d.ts", id_column="d.event_id")
        sql = (
            f"SELECT e.id, e.ts, e.doc FROM event_objects d CROSS JOIN events e"
            f" WHERE d.type = {p} AND d.object_id = {p} AND e.id = d.event_id"
            f" AND {condition}{_keyset(page, dialect, 'd.ts', 'd.event_id', params)}"
            f" ORDER BY d.ts {order}, d.event_id {order} LIMIT {p} OFFSET {p}"
        )
        return sql, [driver.type.upper(), driver.ids[0], *params, page.limit + 1, page.offset]
    wide_text = text_matches is not None and text_matches > WIDE_TEXT_MATCHES
    condition, params = compile_where(where, dialect, filter_text=wide_text)
    sql = (
        f"SELECT e.id, e.ts, e.doc FROM events e WHERE {condition}"
        f"{_keyset(page, dialect, 'e.ts', 'e.id', params)}"
        f" ORDER BY e.ts {order}, e.id {order} LIMIT {p} OFFSET {p}"
    )
    return sql, [*params, page.limit + 1, page.offset]


def _branches(where: Node) -> list[Node] | None:
    """A top-level OR whose every alternative can drive from an index (an author, one
    object), as a delegated admin's scope is: one condition per alternative, each with the
    rest of the query. None when there is no such OR."""
    items = top_level(where)
    for item in items:
        if not isinstance(item, Or):
            continue
        alternatives: list[Node] = []
        for alt in item.items:
            if isinstance(alt, In) and alt.field == "author.id":
                alternatives.extend(In(alt.field, (v,)) for v in alt.values)
            elif isinstance(alt, HasObject) and alt.ids and all(alt.ids):
                alternatives.extend(HasObject(alt.type, (i,)) for i in alt.ids)
            else:
                break
        else:
            if 0 < len(alternatives) <= MAX_BRANCHES:
                rest = [n for n in items if n is not item]
                return [all_of([alt, *rest]) for alt in alternatives]
    return None


def _union(branches: list[Node], page: Page, dialect: Dialect,
           text_matches: int | None) -> tuple[str, list[object]]:
    """The page as the merge of each branch's own first ``limit + offset + 1`` rows: every
    branch reads its index newest first and stops early, instead of one scan of the whole
    time index testing the OR on each row."""
    order = "DESC" if page.descending else "ASC"
    p = dialect.placeholder
    inner = Page(page.limit + page.offset, page.cursor_ts, page.cursor_id, 0, page.descending)
    parts: list[str] = []
    params: list[object] = []
    for number, branch in enumerate(branches):
        sql, branch_params = plan_search(branch, inner, dialect, text_matches=text_matches)
        # Only (id, ts) go through the UNION (which drops events several branches found).
        parts.append(f"SELECT b{number}.id, b{number}.ts FROM ({sql}) AS b{number}")
        params.extend(branch_params)
    sql = (f"SELECT e.id, e.ts, e.doc FROM ({' UNION '.join(parts)}) AS u"
           f" CROSS JOIN events e WHERE e.id = u.id"
           f" ORDER BY u.ts {order}, u.id {order} LIMIT {p} OFFSET {p}")
    return sql, [*params, page.limit + 1, page.offset]


def plan_histogram(where: Node, *, start_ms: int, bucket_ms: int, buckets: int,
                   dialect: Dialect) -> tuple[str, list[object]]:
    """The SELECT (window number, count) of the matching events in each of ``buckets``
    windows of ``bucket_ms`` from ``start_ms``.

    The events are found as `plan_search` finds a page's (from one object's index, one
    branch per alternative of a delegated scope, or the time index). Each window is counted
    on its own, as an index range (no sorting or hashing of every row: two to six times
    faster than grouping a million events). Instead a condition with a full-text match
    groups once, so that the match list is computed once, and so does a delegated scope's
    union on SQLite, which does not push the window into a UNION (windows without events
    then have no row)."""
    p = dialect.placeholder
    where = absorbed(where)
    union = _driver(where) is None and _branches(where) is not None
    if uses_full_text(where) or (union and dialect.name == "sqlite"):
        bounded = all_of([where, Compare("timestamp", ">=", start_ms),
                          Compare("timestamp", "<", start_ms + bucket_ms * buckets)])
        matches, params = _matching(bounded, dialect)
        return (f"SELECT (m.ts - {p}) / {p} AS bucket, count(*) FROM ({matches}) AS m"
                " GROUP BY bucket", [start_ms, bucket_ms, *params])
    # The view's own time bounds clamp each window, so the index range of a window is the
    # window (left in the condition, SQLite takes them for the range instead, and every
    # window reads the whole view).
    rest, low, high = _time_bounds(where)
    matches, params = _matching(rest, dialect)
    big = f"CAST({p} AS BIGINT)"  # n * width overflows PostgreSQL's integer otherwise
    most, least = ("max", "min") if dialect.name == "sqlite" else ("GREATEST", "LEAST")
    count = (f"(SELECT count(*) FROM ({matches}) AS m"
             f" WHERE m.ts >= {most}({big}, {big} + w.n * {big})"
             f" AND m.ts < {least}({big}, {big} + (w.n + 1) * {big}))")
    windows = [low, start_ms, bucket_ms, high, start_ms, bucket_ms]
    if dialect.name == "sqlite":
        return (f"WITH RECURSIVE w(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM w"
                f" WHERE n < {p}) SELECT w.n, {count} FROM w", [buckets - 1, *params, *windows])
    return (f"SELECT w.n, {count} FROM generate_series(0, {p}) AS w(n)",
            [*params, *windows, buckets - 1])


def _time_bounds(where: Node) -> tuple[Node, int, int]:
    """``where`` without its top-level time bounds, and those bounds as [low, high)."""
    low, high = -(2**62), 2**62
    rest: list[Node] = []
    for item in top_level(where):
        if isinstance(item, Compare) and item.field == "timestamp" \
                and item.op in (">=", ">", "<", "<=") and isinstance(item.value, int):
            if item.op in (">=", ">"):
                low = max(low, item.value + (item.op == ">"))
            else:
                high = min(high, item.value + (item.op == "<="))
            continue
        rest.append(item)
    return all_of(rest), low, high


def _matching(where: Node, dialect: Dialect) -> tuple[str, list[object]]:
    """A SELECT (id, ts) of every matching event, by the access path a page would take
    (full-text matches drive: counting reads every match anyway)."""
    p = dialect.placeholder
    driver = _driver(where)
    if driver is not None:
        rest = all_of(n for n in top_level(where) if n is not driver)
        condition, params = compile_where(rest, dialect, ts_column="d.ts", id_column="d.event_id")
        # Time and id bounds are the index's own columns: the events table is read only
        # when another condition needs it.
        if all(isinstance(n, Compare) and n.field in ("timestamp", "id")
               for n in top_level(rest)):
            tables, join = "event_objects d", ""
        else:
            tables, join = "event_objects d CROSS JOIN events e", " AND e.id = d.event_id"
        return (f"SELECT d.event_id AS id, d.ts AS ts FROM {tables}"
                f" WHERE d.type = {p} AND d.object_id = {p}{join} AND {condition}",
                [driver.type.upper(), driver.ids[0], *params])
    branches = _branches(where)
    if branches is not None:
        parts: list[str] = []
        params = []
        for branch in branches:
            sql, branch_params = _matching(branch, dialect)
            parts.append(sql)
            params.extend(branch_params)
        return " UNION ".join(parts), params
    condition, params = compile_where(where, dialect)
    return f"SELECT e.id AS id, e.ts AS ts FROM events e WHERE {condition}", params


def _keyset(page: Page, dialect: Dialect, ts: str, ident: str, params: list[object]) -> str:
    """Rows strictly after the cursor in (ts, id) order; appends its parameters."""
    if page.cursor_ts is None or page.cursor_id is None:
        return ""
    p = dialect.placeholder
    op = "<" if page.descending else ">"
    params.extend([page.cursor_ts, page.cursor_id])
    # Spelled out rather than as a row value so both planners use the index range.
    return f" AND ({ts} {op} {p} OR {ident} {op} {p})"


# (AST column, descending) pairs; the default order is newest first.
Order = tuple[tuple[str, bool], ...]
NEWEST_FIRST: Order = (("timestamp", True),)


def keyset_order(order: Order) -> bool | None:
    """``descending`` when ``order`` is by time alone (keyset paging applies), else None."""
    if len(order) == 1 and order[0][0] == "timestamp":
        return order[0][1]
    return None


def plan_sorted(where: Node, order: Order, dialect: Dialect, *, limit: int | None,
                offset: int = 0) -> tuple[str, list[object]]:
    """The SELECT (id, ts, doc) for an order other than by time: sorted by the columns,
    then newest first; pages by offset (keyset paging needs a time order).
    ``limit`` None reads every row (a streamed export)."""
    condition, params = compile_where(where, dialect)
    columns = {**COLUMNS}
    keys = [f"{columns[name]} {'DESC' if desc else 'ASC'} NULLS LAST" for name, desc in order]
    p = dialect.placeholder
    sql = (f"SELECT e.id, e.ts, e.doc FROM events e WHERE {condition}"
           f" ORDER BY {', '.join([*keys, 'e.ts DESC', 'e.id DESC'])}")
    if limit is not None:
        sql += f" LIMIT {p}"
        params.append(limit + 1)
    elif offset:
        sql += " LIMIT -1" if dialect.name == "sqlite" else " LIMIT ALL"
    if offset:
        sql += f" OFFSET {p}"
        params.append(offset)
    return sql, params
