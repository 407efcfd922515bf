"""Durable HTTP ingest: NDJSON batches from concurrent clients against ``trailkeeper serve``.

The bodies are serialised before the clock starts, so the figure is the server's, not the
load generator's. Only 2xx-acknowledged events count, and the store must hold exactly that
many afterwards (a 2xx means committed durably).
"""

from __future__ import annotations

import itertools
import resource
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from benchlib import (
    Server,
    commit_stats,
    emit,
    fresh_store,
    latency_ms,
    log,
    machine,
    parser,
    prime_auth,
    scratch_dir,
    target,
)
from read_store import read_store

from trailkeeper.demo import demo_events
from trailkeeper.query.ast import MatchAll
from trailkeeper.storage import open_storage

NDJSON = {"content-type": "application/x-ndjson"}
TARGET_EVENTS_PER_S = 30_000  # on SQLite


@dataclass
class Body:
    data: bytes
    events: int


@dataclass
class ClientLog:
    """What one client saw: a latency and an outcome per request."""

    latencies_s: list[float] = field(default_factory=list)
    acknowledged: int = 0
    failed_requests: int = 0
    failed_events: int = 0
    first_start: float = float("inf")
    last_end: float = 0.0
    errors: list[str] = field(default_factory=list)


def build_bodies(events: int, batch: int, seed: int) -> list[Body]:
    """NDJSON bodies of realistic events, each with its own uid."""
    bodies: list[Body] = []
    lines: list[bytes] = []
    for n, event in enumerate(itertools.islice(demo_events(events, seed=seed), events)):
        # Own uids: a preloaded store holds demo events with the demo's uids.
        lines.append(orjson.dumps({**event.to_rest(), "uid": f"ingest-{seed}-{n}"}))
        if len(lines) == batch:
            bodies.append(Body(b"\n".join(lines) + b"\n", len(lines)))
            lines = []
    if lines:
        bodies.append(Body(b"\n".join(lines) + b"\n", len(lines)))
    return bodies


def post(client: httpx.Client, body: Body) -> str | None:
    """Send one body; None when every event of it was acknowledged, else what went wrong."""
    try:
        response = client.post("/api/v1/events", content=body.data, headers=NDJSON)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if not response.is_success:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    try:
        ids = orjson.loads(response.content)["ids"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code} with an unexpected body: {response.text[:200]}"
    return None if len(ids) == body.events else f"{len(ids)} ids for {body.events} events"


def run_client(client: httpx.Client, work: Iterator[Body], lock: threading.Lock,
               start: threading.Barrier, out: ClientLog) -> None:
    start.wait()
    while True:
        with lock:
            body = next(work, None)
        if body is None:
            return
        began = time.perf_counter()
        problem = post(client, body)
        ended = time.perf_counter()
        out.latencies_s.append(ended - began)
        out.first_start = min(out.first_start, began)
        out.last_end = max(out.last_end, ended)
        if problem is None:
            out.acknowledged += body.events
        else:
            out.failed_requests += 1
            out.failed_events += body.events
            out.errors.append(problem)


def load(server: Server, bodies: list[Body], clients: int) -> list[ClientLog]:
    """Send every body once, spread over ``clients`` keep-alive connections."""
    work = iter(bodies)
    lock = threading.Lock()
    start = threading.Barrier(clients)
    logs = [ClientLog() for _ in range(clients)]
    connections = [server.client() for _ in range(clients)]
    try:
        for connection in connections:
            prime_auth(connection)  # also opens the keep-alive connection
        threads = [threading.Thread(target=run_client, args=(c, work, lock, start, out))
                   for c, out in zip(connections, logs, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for connection in connections:
            connection.close()
    return logs


def timed_load(server: Server, bodies: list[Body],
               clients: int) -> tuple[list[ClientLog], float, float]:
    """The clients' logs, and the CPU seconds the server and the load generator spent."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    server_before = server.cpu_seconds()
    logs = load(server, bodies, clients)
    server_cpu = server.cpu_seconds() - server_before
    after = resource.getrusage(resource.RUSAGE_SELF)
    load_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return logs, server_cpu, load_cpu


def stored_events(db_url: str) -> int:
    storage = open_storage(db_url)
    try:
        return storage.count(MatchAll())
    finally:
        storage.close()


def summarise(logs: list[ClientLog], bodies: list[Body]) -> dict[str, Any]:
    latencies = [s for out in logs for s in out.latencies_s]
    acknowledged = sum(out.acknowledged for out in logs)
    elapsed = max(out.last_end for out in logs) - min(out.first_start for out in logs)
    request_ms = latency_ms(latencies)
    return {
        "events_sent": sum(b.events for b in bodies),
        "events_acknowledged": acknowledged,
        "requests": len(latencies),
        "failed_requests": sum(out.failed_requests for out in logs),
        "events_failed": sum(out.failed_events for out in logs),
        "first_errors": [e for out in logs for e in out.errors][:5],
        "body_mean_bytes": round(sum(len(b.data) for b in bodies) / len(bodies)),
        "elapsed_s": round(elapsed, 3),
        "throughput_events_per_s": round(acknowledged / elapsed),
        "request_latency_p50_ms": request_ms["p50_ms"],
        "request_latency_p99_ms": request_ms["p99_ms"],
        "request_latency_max_ms": request_ms["max_ms"],
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=200_000, help="events to send")
    p.add_argument("--batch", type=int, default=1000, help="events per request")
    p.add_argument("--clients", type=int, default=4, help="concurrent connections")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--preload", type=int, default=0, metavar="N",
                   help="start from a copy of the cached read store of N events "
                        "(built first if missing) instead of an empty store")
    args = p.parse_args()

    preloaded = None
    if args.preload:
        preloaded, _ = read_store(args.backend, args.preload, args.pg_url, rebuild=False)

    log(f"serialising {args.events:,} events into batches of {args.batch:,}")
    bodies = build_bodies(args.events, args.batch, args.seed)
    home = scratch_dir("ingest-home")
    try:
        with fresh_store(args.backend, args.pg_url, "ingest", keep=args.keep,
                         copy_of=preloaded.location if preloaded else None) as db_url:
            with Server(db_url, home, args.workers) as server:
                log(f"sending {len(bodies)} requests from {args.clients} clients")
                logs, server_cpu, load_cpu = timed_load(server, bodies, args.clients)
                with server.client() as client:
                    commits = commit_stats(client.get("/metrics").text)
            stored = stored_events(db_url)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)

    result: dict[str, Any] = {"benchmark": "ingest_http", "backend": args.backend,
                              "batch_events": args.batch, "clients": args.clients,
                              "server_workers": args.workers,
                              "events_stored_before": preloaded.events if preloaded else 0}
    result.update(summarise(logs, bodies))
    result.update({
        "events_stored": stored,
        "stored_matches_acknowledged": stored - result["events_stored_before"]
        == result["events_acknowledged"],
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_us_per_event": round(
            server_cpu / max(result["events_acknowledged"], 1) * 1e6, 1),
        **{f"server_{name}": value for name, value in commits.items()},
        "load_generator_cpu_s": round(load_cpu, 2),
        "machine": machine(args.backend, args.pg_url),
    })
    result["targets"] = [target("ingest_http.throughput_events_per_s",
                                result["throughput_events_per_s"], TARGET_EVENTS_PER_S,
                                at_least=True)] if args.backend == "sqlite" else []
    log(f"{result['throughput_events_per_s']:,} events/s, p50 "
        f"{result['request_latency_p50_ms']} ms, p99 {result['request_latency_p99_ms']} ms; "
        f"stored {stored:,} of {result['events_acknowledged']:,} acknowledged")
    emit(result)


if __name__ == "__main__":
    main()
