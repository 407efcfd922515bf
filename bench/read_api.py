"""Read latency of ``GET /rest/auditing/1.0/events`` on a large store, and deep keyset paging.

Each figure is the first page (limit 200) of one kind of filter, timed from the client over
a keep-alive connection, after warm-up, cycling through several filter values so no single
cached page makes the figure. Then the cursor is followed from page 1 to page 1,000 and the
two pages are timed again side by side.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from benchlib import (
    Server,
    emit,
    latency_ms,
    log,
    machine,
    parser,
    prime_auth,
    scratch_dir,
    target,
)
from read_store import StoreFacts, read_store

from trailkeeper.model.timestamps import format_iso

EVENTS_URL = "/rest/auditing/1.0/events"
PAGE = 200
PAGES = 1000
HOUR_MS = 3_600_000
TARGET_MS = 20
TARGET_SEARCH_MS = 50
PAGING_RATIO = 1.5  # "page 1,000 about as fast as page 1", read as within 1.5x
VALUES = 5  # filter values cycled per figure


@dataclass
class Figure:
    """One kind of query: the parameters of each variant and what each variant means."""

    name: str
    variants: list[dict[str, str]]
    described: list[dict[str, Any]]
    target_ms: float | None


def _spread(items: list[Any], count: int) -> list[Any]:
    """``count`` items spread evenly over a list (all of them when it is short)."""
    if len(items) <= count:
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def _figure(name: str, key: str, values: list[str], target_ms: float | None,
            matches: dict[str, int] | None = None, **fixed: str) -> Figure:
    return Figure(name, [{key: v, "limit": str(PAGE), **fixed} for v in values],
                  [{"value": v, **({"matches": matches[v]} if matches else {})}
                   for v in values], target_ms)


def action_figures(facts: StoreFacts) -> list[Figure]:
    ranked = list(facts.actions.items())  # most frequent first
    top, top_count = ranked[0]
    share = {a: n / facts.events for a, n in ranked}
    middle = [a for a, _ in ranked[1:] if 0.01 <= share[a] <= 0.12][:4]
    middle = middle or [a for a, _ in ranked[len(ranked) // 2 - 1:len(ranked) // 2 + 2]]
    return [
        _figure("action_mid_frequency", "actions", middle, TARGET_MS, facts.actions),
        _figure("action_most_frequent", "actions", [top], TARGET_MS, {top: top_count}),
    ]


def _people(facts: StoreFacts) -> list[tuple[str, str, int]]:
    """Ordinary users (not admin, system or anonymous) as (id, name, events), busiest first."""
    return [(a, name, n) for a, (name, n) in facts.authors.items()
            if a not in ("1", "-1", "-2", "-3")]


def object_user_figures(facts: StoreFacts) -> list[Figure]:
    repos = _spread(list(facts.repositories.items()), VALUES)
    people = _spread(_people(facts), VALUES)
    return [
        Figure("affected_object_repository",
               [{"affectedObject": f"REPOSITORY,{rid}", "limit": str(PAGE)} for rid, _ in repos],
               [{"value": f"REPOSITORY,{rid}", "name": name, "matches": n}
                for rid, (name, n) in repos], TARGET_MS),
        Figure("user_id", [{"userIds": uid, "limit": str(PAGE)} for uid, _, _ in people],
               [{"value": uid, "name": name, "matches": n} for uid, name, n in people],
               TARGET_MS),
    ]


def time_figure(facts: StoreFacts) -> Figure:
    middle = (facts.first_ms + facts.last_ms) // 2
    starts = [middle + k * 3 * HOUR_MS for k in range(-(VALUES // 2), VALUES - VALUES // 2)]
    windows = [(format_iso(s), format_iso(s + HOUR_MS - 1)) for s in starts]
    return Figure("time_window_1h",
                  [{"from": a, "to": b, "limit": str(PAGE)} for a, b in windows],
                  [{"from": a, "to": b} for a, b in windows], TARGET_MS)


def search_figures(facts: StoreFacts) -> list[Figure]:
    words = sorted({name.split("-", 1)[-1] for name, _ in facts.repositories.values()})
    names = [name for _, name, _ in _spread(_people(facts), VALUES)]
    return [
        _figure("search_repository_word", "search", _spread(words, VALUES), TARGET_SEARCH_MS),
        _figure("search_user_name", "search", names, TARGET_SEARCH_MS),
        # Not a target of the issue: words in a third or more of all events.
        _figure("search_frequent_word", "search", ["browser", "logged", "admin"], None),
    ]


def category_figure(facts: StoreFacts) -> Figure:
    """Not a target of the issue: categories have no index of their own."""
    return _figure("category_rare", "categories", ["Global administration", "Apps"], None)


def figures(facts: StoreFacts) -> list[Figure]:
    return [*action_figures(facts), *object_user_figures(facts), time_figure(facts),
            *search_figures(facts), category_figure(facts)]


# -- measuring ------------------------------------------------------------------------------


def timed_get(client: httpx.Client, params: dict[str, str]) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    response = client.get(EVENTS_URL, params=params)
    elapsed = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"{params} -> HTTP {response.status_code}: {response.text[:300]}")
    return elapsed, orjson.loads(response.content)


def measure(client: httpx.Client, figure: Figure, requests: int, warmup: int) -> dict[str, Any]:
    for i in range(max(warmup, len(figure.variants))):
        timed_get(client, figure.variants[i % len(figure.variants)])
    samples: list[float] = []
    sizes: list[int] = []
    for i in range(requests):
        elapsed, body = timed_get(client, figure.variants[i % len(figure.variants)])
        samples.append(elapsed)
        sizes.append(len(body["entities"]))
    stats = latency_ms(samples, (50, 90))
    out: dict[str, Any] = {"median_ms": stats.pop("p50_ms"), **stats,
                           "requests": requests, "mean_page_size": round(sum(sizes) / requests, 1),
                           "values": figure.described}
    if figure.target_ms is None:
        out["informational"] = True
    return out


def walk(client: httpx.Client, limit: int, pages: int) -> tuple[list[float], str | None]:
    """Follow ``nextPageCursor`` from page 1; the page latencies and page ``pages``'s cursor."""
    samples: list[float] = []
    cursor: str | None = None
    for _ in range(pages):
        params = {"limit": str(limit), **({"pageCursor": cursor} if cursor else {})}
        elapsed, body = timed_get(client, params)
        samples.append(elapsed)
        if len(samples) == pages:
            return samples, cursor
        cursor = body["pagingInfo"].get("nextPageCursor")
        if cursor is None:
            return samples, None
    return samples, cursor


def paging(client: httpx.Client, total: int, requests: int) -> dict[str, Any]:
    limit = min(PAGE, max(1, total // PAGES))
    log(f"following the cursor to page {PAGES:,} with limit {limit}")
    began = time.perf_counter()
    pages, deep_cursor = walk(client, limit, PAGES)
    walked_s = time.perf_counter() - began
    out: dict[str, Any] = {"limit": limit, "limit_reduced": limit < PAGE, "pages_walked":
                           len(pages), "walk_s": round(walked_s, 2)}
    walk_stats = latency_ms(pages, (50, 90))
    out.update(walk_page_median_ms=walk_stats["p50_ms"], walk_page_p90_ms=walk_stats["p90_ms"])
    if deep_cursor is None:
        out["error"] = f"the store ended before page {PAGES}"
        return out
    first, deep = [], []
    for _ in range(requests):  # alternate, so both see the same machine
        first.append(timed_get(client, {"limit": str(limit)})[0])
        deep.append(timed_get(client, {"limit": str(limit), "pageCursor": deep_cursor})[0])
    first_stats, deep_stats = latency_ms(first, (50, 90)), latency_ms(deep, (50, 90))
    out.update(page1_median_ms=first_stats["p50_ms"], page1_p90_ms=first_stats["p90_ms"],
               page1000_median_ms=deep_stats["p50_ms"], page1000_p90_ms=deep_stats["p90_ms"],
               page1000_cursor=deep_cursor)
    out["page1000_to_page1_ratio"] = round(deep_stats["p50_ms"] / first_stats["p50_ms"], 2)
    return out


def targets(queries: dict[str, dict[str, Any]], pages: dict[str, Any],
            chosen: list[Figure]) -> list[dict[str, Any]]:
    found = [target(f"read_api.{f.name}.median_ms", queries[f.name]["median_ms"], f.target_ms,
                    at_least=False) for f in chosen if f.target_ms is not None]
    if "page1000_to_page1_ratio" in pages:
        found.append(target("read_api.paging.page1000_to_page1_ratio",
                            pages["page1000_to_page1_ratio"], PAGING_RATIO, at_least=False))
    return found


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000, help="size of the cached store")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached store")
    p.add_argument("--requests", type=int, default=60, help="timed requests per figure")
    p.add_argument("--warmup", type=int, default=10, help="untimed requests per figure")
    args = p.parse_args()

    facts, built = read_store(args.backend, args.events, args.pg_url, rebuild=args.rebuild)
    chosen = figures(facts)
    home = scratch_dir("read-home")
    try:
        with Server(facts.location, home, args.workers) as server, \
                server.client() as client:
            prime_auth(client)
            queries: dict[str, dict[str, Any]] = {}
            for figure in chosen:
                queries[figure.name] = measure(client, figure, args.requests, args.warmup)
                log(f"{figure.name}: median {queries[figure.name]['median_ms']} ms")
            pages = paging(client, facts.events, args.requests)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    emit({
        "benchmark": "read_api", "backend": args.backend, "events": facts.events,
        "store": {"location": facts.location, "built_now": built, "build_s": facts.build_s},
        "page_limit": PAGE, "warmup_requests": args.warmup, "server_workers": args.workers,
        "queries": queries,
        "paging": pages, "machine": machine(args.backend, args.pg_url),
        "targets": targets(queries, pages, chosen),
    })


if __name__ == "__main__":
    main()
