"""Query language and exports on a large store, with jq and grep as the yardstick.

1. First page (limit 200) of query-language searches through ``GET /api/v1/events?q=``,
   led by the issue's selective query ``action:"Repository created" AND object.type:PROJECT``.
2. Export of every event as NDJSON and CSV over HTTP (streamed; events/s and the server
   worker's peak RSS) and with ``trailkeeper search --db -o FILE`` (events/s, peak RSS).
3. The selective query run by ``jq`` and by ``grep`` over the NDJSON export: the time to the
   first 200 matches and to all of them, next to ours.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from benchlib import Server, emit, latency_ms, log, machine, parser, prime_auth, scratch_dir, target
from read_store import read_store

URL = "/api/v1/events"
SELECTIVE = 'action:"Repository created" AND object.type:PROJECT'
JQ_SELECTIVE = ('select(.auditType.action == "Repository created" and '
                'any(.affectedObjects[]?; .type == "PROJECT"))')
# grep cannot see structure: the action, then a PROJECT object anywhere on the line.
GREP_SELECTIVE = ['"action":"Repository created"', '"type":"PROJECT"']
QUERIES = {
    "selective": SELECTIVE,
    "object_name": "object.name:plat-ui",
    "author_and_words": "author:alice AND failed login",
    "cidr": "source:10.0.0.0/8",
    "day_range": "timestamp:[2024/05/20 TO 2024/05/21]",
    "wildcard_action": "action:Repository*",
}
TARGET_SELECTIVE_MS = 20
TARGET_EXPORT_PER_S = 100_000
TARGET_RSS_MB = 300


def first_pages(client: httpx.Client, requests: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, query in QUERIES.items():
        params = {"q": query, "limit": "200"}
        for _ in range(3):
            client.get(URL, params=params).raise_for_status()
        samples = []
        for _ in range(requests):
            began = time.perf_counter()
            response = client.get(URL, params=params)
            samples.append(time.perf_counter() - began)
            response.raise_for_status()
        stats = latency_ms(samples, (50, 90))
        out[name] = {"query": query, "median_ms": stats["p50_ms"], "p90_ms": stats["p90_ms"],
                     "page_size": len(response.json()["events"])}
        log(f"{name}: median {stats['p50_ms']} ms")
    return out


def worker_pids(server: Server) -> list[int]:
    assert server.process is not None
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    found = [int(p) for p in children.read_text().split()] if children.exists() else []
    return found or [server.process.pid]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def http_export(client: httpx.Client, server: Server, fmt: str, target_file: Path,
                events: int) -> dict[str, Any]:
    log(f"exporting every event as {fmt} over HTTP")
    lines = 0
    began = time.perf_counter()
    with client.stream("GET", URL, params={"format": fmt}) as response, \
            target_file.open("wb") as out:
        response.raise_for_status()
        for chunk in response.iter_bytes(1 << 20):
            lines += chunk.count(b"\n")
            out.write(chunk)
    elapsed = time.perf_counter() - began
    return {"seconds": round(elapsed, 2), "events_per_s": round(events / elapsed),
            "lines": lines, "bytes": target_file.stat().st_size,
            "worker_peak_rss_mb": max(peak_rss_mb(p) for p in worker_pids(server))}


def cli_export(db_url: str, fmt: str, target_file: Path, events: int) -> dict[str, Any]:
    """Peak RSS as GNU time reports it for the command alone."""
    log(f"exporting every event as {fmt} with trailkeeper search --db")
    report = target_file.with_suffix(".time")
    began = time.perf_counter()
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), sys.executable, "-m",
                    "trailkeeper", "search", "--db", db_url, "-t", fmt, "-b", "-o",
                    str(target_file), "--no-progress"], check=True)
    elapsed = time.perf_counter() - began
    return {"seconds": round(elapsed, 2), "events_per_s": round(events / elapsed),
            "bytes": target_file.stat().st_size,
            "peak_rss_mb": round(int(report.read_text().split()[-1]) / 1024, 1)}


def timed_shell(command: str) -> tuple[float, int]:
    began = time.perf_counter()
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True)
    elapsed = time.perf_counter() - began
    # head closing the pipe early makes the producer fail with SIGPIPE: expected.
    if result.returncode not in (0, 141) and not result.stdout:
        raise RuntimeError(f"{command!r} failed: {result.stderr.decode()[:300]}")
    return elapsed, result.stdout.count(b"\n")


def yardsticks(ndjson: Path, client: httpx.Client) -> dict[str, Any]:
    log("running the selective query with jq and grep over the NDJSON export")
    jq = f"jq -c '{JQ_SELECTIVE}' {ndjson}"
    grep = f"grep -F '{GREP_SELECTIVE[0]}' {ndjson} | grep -F '{GREP_SELECTIVE[1]}'"
    out: dict[str, Any] = {}
    began = time.perf_counter()
    with client.stream("GET", URL, params={"q": SELECTIVE, "format": "ndjson"}) as response:
        ours_all = sum(chunk.count(b"\n") for chunk in response.iter_bytes())
    ours_all_s = time.perf_counter() - began
    began = time.perf_counter()
    client.get(URL, params={"q": SELECTIVE, "limit": "200"}).raise_for_status()
    ours_first_s = time.perf_counter() - began
    for name, command in (("jq", jq), ("grep", grep)):
        first_s, _ = timed_shell(f"{command} | head -n 200")
        all_s, matches = timed_shell(command)
        out[name] = {"first_200_s": round(first_s, 3), "all_s": round(all_s, 2),
                     "matches": matches,
                     "first_200_ratio_to_ours": round(first_s / ours_first_s, 1),
                     "all_ratio_to_ours": round(all_s / ours_all_s, 1)}
    out["ours"] = {"first_200_s": round(ours_first_s, 4), "all_s": round(ours_all_s, 2),
                   "matches": ours_all}
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000, help="size of the cached store")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached store")
    p.add_argument("--requests", type=int, default=30, help="timed requests per query")
    args = p.parse_args()
    if shutil.which("jq") is None:
        log("jq is not installed: its yardstick is skipped")
    facts, _ = read_store(args.backend, args.events, args.pg_url, rebuild=args.rebuild)
    home = scratch_dir("search-export")
    result: dict[str, Any] = {"benchmark": "search_export", "backend": args.backend,
                              "events": facts.events, "server_workers": args.workers}
    try:
        with Server(facts.location, home, args.workers) as server, \
                server.client(timeout_s=600) as client:
            prime_auth(client)
            result["first_page"] = first_pages(client, args.requests)
            exports: dict[str, Any] = {}
            # The first full read of a store that is not in the page cache is bound by the
            # disk; it is reported apart from the steady state the target is about.
            exports["http_ndjson_first_read"] = http_export(
                client, server, "ndjson", home / "warmup.ndjson", facts.events)
            (home / "warmup.ndjson").unlink()
            for fmt in ("ndjson", "csv"):
                exports[f"http_{fmt}"] = http_export(client, server, fmt, home / f"all.{fmt}",
                                                     facts.events)
            if shutil.which("jq"):
                result["yardsticks"] = yardsticks(home / "all.ndjson", client)
        if args.backend == "sqlite":
            for fmt in ("NDJSON", "CSV"):
                exports[f"cli_{fmt.lower()}"] = cli_export(facts.location, fmt,
                                                           home / f"cli.{fmt.lower()}",
                                                           facts.events)
        result["exports"] = exports
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(home)
    result["machine"] = machine(args.backend, args.pg_url)
    result["targets"] = [
        target("search_export.selective_first_page_ms",
               result["first_page"]["selective"]["median_ms"], TARGET_SELECTIVE_MS,
               at_least=False),
        *[target(f"search_export.{name}.events_per_s", figures["events_per_s"],
                 TARGET_EXPORT_PER_S, at_least=True) for name, figures in exports.items()
          if not name.endswith("first_read")],
        *[target(f"search_export.{name}.peak_rss_mb",
                 figures.get("worker_peak_rss_mb", figures.get("peak_rss_mb", 0)),
                 TARGET_RSS_MB, at_least=False) for name, figures in exports.items()],
    ]
    emit(result)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
