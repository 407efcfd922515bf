"""Web UI pages on the cached read store (default 1,000,000 events): server time and weight.

Prints JSON: for each page and filter (the first page of 50 events, newest first, with
its chart), the median and p90 of the server's own time (its ``Server-Timing: app`` header:
from the request to the first byte, in the server process) and of the time the client saw,
the parts the server measured (search, chart, render), whether the chart was drawn within
the page's budget, and the page's weight; then the weight of the page without data (a
filter that matches nothing) with its stylesheet, script and icon. Targets (issue 8):
<= 150 ms server time per page, <= 200 KB before data. The machine's load average is
reported at the start and the end (other work on the machine skews every figure).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from benchlib import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    Server,
    emit,
    log,
    machine,
    parser,
    percentile,
    scratch_dir,
    target,
)
from read_store import StoreFacts, read_store

from trailkeeper.auth.passwords import hash_password
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import Grant, UserRecord

PAGE_TARGET_MS = 150
WEIGHT_TARGET_KB = 200
DELEGATE = ("bench-project-admin", "bench-delegate-password")
DELEGATED_PROJECT = "3"
_TIMING = re.compile(r"(\w+);dur=([\d.]+)")


def _prepare(facts: StoreFacts) -> None:
    """The benchmarks' admin (as `serve` creates it on an empty store) and a delegated
    administrator of one project, for the delegated views (once)."""
    storage = open_storage(facts.location)
    try:
        if storage.get_user(ADMIN_USER) is None:
            storage.put_user(UserRecord(ADMIN_USER, hash_password(ADMIN_PASSWORD), "sysadmin"))
        if storage.get_user(DELEGATE[0]) is None:
            storage.put_user(UserRecord(DELEGATE[0], hash_password(DELEGATE[1]), "user"))
            storage.add_grant(Grant("user", DELEGATE[0], "PROJECT", DELEGATED_PROJECT))
    finally:
        storage.close()


def _middle(facts: StoreFacts) -> tuple[int, int]:
    """The (timestamp, id) of the event in the middle of the log: page 10,000 starts there."""
    storage = open_storage(facts.location)
    try:
        found = storage.get(facts.events // 2)
        assert found is not None
        return found.timestamp_ms, found.id
    finally:
        storage.close()


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def pages(facts: StoreFacts) -> dict[str, str]:
    """Page name -> path and query (every single filter the page offers, and the others)."""
    actions = list(facts.actions)
    mid_action = next(a for a, n in facts.actions.items() if n < facts.events * 0.12)
    author = next(a for a in facts.authors if a != "1")
    repository = next(iter(facts.repositories))
    middle = (facts.first_ms + facts.last_ms) // 2
    ts, ident = _middle(facts)
    views: dict[str, dict[str, str]] = {
        "all_events": {},
        "time_day": {"range": "custom", "from": _iso(middle), "to": _iso(middle + 86_399_999)},
        "time_week": {"range": "custom", "from": _iso(middle - 7 * 86_400_000),
                      "to": _iso(middle)},
        "category_frequent": {"category": "Repositories"},
        "category_rare": {"category": "Global administration"},
        "action_most_frequent": {"action": actions[0]},
        "action_mid_frequency": {"action": mid_action},
        "author": {"author": author},
        "object_repository": {"object": f"REPOSITORY,{repository}"},
        "area_security": {"area": "SECURITY"},
        "level_full": {"level": "FULL"},
        "words_repository": {"search": "billing"},
        "words_frequent": {"search": "browser"},
        "query_language": {"q": 'action:"Repository created" AND object.type:PROJECT'},
        "query_cidr": {"q": "source:10.1.0.0/16"},
        "page_10000_older": {"older": f"{ts},{ident}"},
        "page_200_events": {"limit": "200"},
    }
    found = {name: "/audit/" + ("?" + urlencode(v) if v else "") for name, v in views.items()}
    found["settings"] = "/audit/settings"
    found["alerts"] = "/audit/alerts"
    return found


def sign_in(client: httpx.Client, user: str, password: str) -> None:
    form = client.get("/audit/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token, form.text[:300]
    done = client.post("/audit/login", data={"user": user, "password": password,
                                             "login_token": token.group(1)})
    problem = re.search(r'role="alert"[^>]*>([^<]*)', done.text)
    assert done.status_code == 303, (done.status_code, problem and problem.group(1))


def measure(client: httpx.Client, path: str, requests: int, warmup: int) -> dict[str, Any]:
    server: list[float] = []
    seen: list[float] = []
    parts: dict[str, list[float]] = {}
    drawn = 0
    answer = None
    for n in range(warmup + requests):
        began = time.perf_counter()
        answer = client.get(path)
        elapsed = time.perf_counter() - began
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        if n < warmup:
            continue
        timings = dict(_TIMING.findall(answer.headers.get("server-timing", "")))
        server.append(float(timings.pop("app")))
        for name, value in timings.items():
            parts.setdefault(name, []).append(float(value))
        seen.append(elapsed * 1000)
        drawn += 'class="bar"' in answer.text
    assert answer is not None
    result: dict[str, Any] = {
        "server_median_ms": round(percentile(server, 0.5), 1),
        "server_p90_ms": round(percentile(server, 0.9), 1),
        "client_median_ms": round(percentile(seen, 0.5), 1),
        "parts_median_ms": {k: round(percentile(v, 0.5), 1) for k, v in parts.items()},
        "rows": answer.text.count('<details class="event"'),
        "page_kb": round(len(answer.content) / 1024, 1),
    }
    if "chart" in parts or "search" in parts:
        result["chart_drawn"] = f"{drawn}/{requests}"
    return result


def weight(client: httpx.Client) -> dict[str, Any]:
    """The log page with no events (a filter that matches nothing), and what it loads."""
    empty = client.get("/audit/?" + urlencode({"action": "No such action"}))
    assets = re.findall(r'(?:href|src)="(/audit/static/[^"]+)"', empty.text)
    sizes = {path.split("?")[0].rsplit("/", 1)[1]: len(client.get(path).content)
             for path in assets}
    total = len(empty.content) + sum(sizes.values())
    return {"html_kb": round(len(empty.content) / 1024, 1),
            "assets_kb": {k: round(v / 1024, 1) for k, v in sizes.items()},
            "total_kb": round(total / 1024, 1)}


def wait_for_consumers(server: Server, timeout_s: float = 1800) -> float:
    """Let the node's background consumers (audit log files, detection) catch up with the
    store before measuring (the first start on a store reads all of it)."""
    began = time.monotonic()
    with httpx.Client(base_url=server.base_url, auth=(ADMIN_USER, ADMIN_PASSWORD),
                      timeout=60) as c:
        while time.monotonic() - began < timeout_s:
            lag = sum(float(v) for v in re.findall(
                r"^trailkeeper_consumer_lag_events\{[^}]*\} ([\d.e+]+)$",
                c.get("/metrics").text, re.M))
            if lag == 0:
                break
            log(f"  waiting for the consumers to catch up ({lag:,.0f} events behind)")
            time.sleep(10)
    return round(time.monotonic() - began, 1)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000, help="size of the cached store")
    p.add_argument("--requests", type=int, default=20, help="timed requests per page")
    p.add_argument("--warmup", type=int, default=3, help="untimed requests per page")
    args = p.parse_args()
    facts, built = read_store(args.backend, args.events, args.pg_url, rebuild=False)
    _prepare(facts)
    chosen = pages(facts)
    home = scratch_dir("web-home")
    load_start = round(os.getloadavg()[0], 2)
    results: dict[str, Any] = {}
    delegated: dict[str, Any] = {}
    try:
        with Server(facts.location, home, args.workers) as server:
            caught_up_s = wait_for_consumers(server)
            with httpx.Client(base_url=server.base_url, timeout=120) as client:
                sign_in(client, ADMIN_USER, ADMIN_PASSWORD)
                for name, path in chosen.items():
                    results[name] = measure(client, path, args.requests, args.warmup)
                    log(f"{name}: server {results[name]['server_median_ms']} ms "
                        f"(chart {results[name].get('chart_drawn', '-')})")
                empty = weight(client)
            with httpx.Client(base_url=server.base_url, timeout=120) as client:
                results["sign_in_form"] = measure(client, "/audit/login", args.requests,
                                                  args.warmup)
            with httpx.Client(base_url=server.base_url, timeout=120) as client:
                sign_in(client, *DELEGATE)
                for name, path in (("project_admin_log", "/audit/"),
                                   ("project_admin_resource_view",
                                    f"/audit/resource/PROJECT,{DELEGATED_PROJECT}")):
                    delegated[name] = measure(client, path, args.requests, args.warmup)
                    log(f"{name}: server {delegated[name]['server_median_ms']} ms")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    every = {**results, **delegated}
    slowest = max(every, key=lambda k: every[k]["server_median_ms"])
    emit({
        "benchmark": "web_pages", "backend": args.backend, "events": facts.events,
        "store": {"location": facts.location, "built_now": built},
        "requests_per_page": args.requests, "warmup_requests": args.warmup,
        "server_workers": args.workers, "consumers_caught_up_s": caught_up_s,
        "pages": results, "delegated": delegated, "weight_without_data": empty,
        "load_average_1m_start": load_start, "load_average_1m_end": round(os.getloadavg()[0], 2),
        "machine": machine(args.backend, args.pg_url),
        "targets": [
            target(f"web_pages.slowest_page ({slowest}).server_median_ms",
                   every[slowest]["server_median_ms"], PAGE_TARGET_MS, at_least=False),
            target("web_pages.weight_without_data.total_kb", empty["total_kb"],
                   WEIGHT_TARGET_KB, at_least=False),
        ],
    })


if __name__ == "__main__":
    main()
