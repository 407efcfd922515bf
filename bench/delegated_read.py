"""First-page latency of delegated admins on the cached read store (default 1,000,000 events).

Prints JSON: for each principal (a project admin, a repository admin, an admin of two
repositories, a plain user), the median and p90 of the first page of 200 events, newest
first, through the same scoped query the APIs run. Uses `read_store`'s cached store.
"""

from __future__ import annotations

import time

from benchlib import emit, latency_ms, parser
from read_store import read_store

from trailkeeper.auth.permissions import scoped
from trailkeeper.auth.principals import Principal, Role
from trailkeeper.query.ast import MatchAll
from trailkeeper.storage import open_storage

RUNS = 30


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--events", type=int, default=1_000_000)
    args = p.parse_args()
    facts, _ = read_store(args.backend, args.events, args.pg_url, rebuild=False)
    repos = list(facts.repositories)
    author = next(iter(a for a in facts.authors if a != "1"))
    principals = {
        "project_admin": Principal("pa", Role.USER, frozenset({("PROJECT", "3")})),
        "repository_admin": Principal("ra", Role.USER, frozenset({("REPOSITORY", repos[-1])})),
        "two_repositories_admin": Principal("r2", Role.USER, frozenset(
            {("REPOSITORY", repos[0]), ("REPOSITORY", repos[-1])})),
        "plain_user": Principal(author, Role.USER),
    }
    storage = open_storage(facts.location)
    results = {}
    try:
        for label, principal in principals.items():
            where = scoped(principal, MatchAll())
            storage.search(where, limit=200)  # warm
            samples = []
            for _ in range(RUNS):
                began = time.perf_counter()
                page = storage.search(where, limit=200)
                samples.append(time.perf_counter() - began)
            results[label] = {"first_page": latency_ms(samples), "rows": len(page.events)}
    finally:
        storage.close()
    emit({"benchmark": "delegated_read", "backend": args.backend, "events": facts.events,
          "limit": 200, "target_ms": 20, "results": results})


if __name__ == "__main__":
    main()
