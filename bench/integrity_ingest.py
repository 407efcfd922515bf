"""What hashing every event into the Merkle tree costs durable HTTP ingest (issue 7).

The `ingest_http.py` load (NDJSON batches of `--batch` events from `--clients` concurrent
clients against `trailkeeper serve` on a fresh store) with the integrity consumer off
(``[integrity] enabled = false``) and on (the default), alternated off/on/off/on for
`--pairs` pairs. During every run ``GET /api/v1/integrity`` is sampled every
`--sample-interval` seconds (in both modes, so that both carry the same extra requests): in
the "on" runs that gives the tree's lag during the load and, after the last acknowledgement,
how long it took to catch up. After each "on" run (server stopped, the last checkpoint
signed) the store is checked: every acknowledged event must be a leaf of the tree, and
`verify_source` must find the store intact. Target: hashing adds <= 10% (slowdown <= 0.10).
"""

from __future__ import annotations

import os
import shutil
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from benchlib import (
    Server,
    commit_stats,
    emit,
    fresh_store,
    log,
    machine,
    metric_values,
    parser,
    percentile,
    scratch_dir,
    target,
)
from ingest_http import build_bodies, summarise, timed_load

from trailkeeper.integrity.canonical import RECORD_SIZE, LeafRecord
from trailkeeper.integrity.keys import read_verifier_key_file
from trailkeeper.integrity.proofs import tree_size
from trailkeeper.integrity.sources import StoreSource
from trailkeeper.integrity.verify import Trust, verify_source
from trailkeeper.storage import open_storage

TARGET_SLOWDOWN = 0.10
MODES = ("off", "on")  # A, B
_INGEST_MARK = b'"uid":"ingest-'  # the uids bench/ingest_http.py gives the events


@dataclass
class Sample:
    at: float  # perf_counter
    tree_size: int
    last_event_id: int
    lag_events: int


@dataclass
class Sampler:
    """Polls /api/v1/integrity from its own connection until stopped."""

    server: Server
    interval_s: float
    samples: list[Sample] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _poll(self, client: httpx.Client) -> Sample | None:
        try:
            body = client.get("/api/v1/integrity").json()
        except (httpx.HTTPError, ValueError):
            self.errors += 1
            return None
        return Sample(time.perf_counter(), int(body["tree_size"]), int(body["last_event_id"]),
                      int(body["lag_events"]))

    def _run(self) -> None:
        with self.server.client(timeout_s=30) as client:
            while not self._stop.is_set():
                sample = self._poll(client)
                if sample is not None:
                    self.samples.append(sample)
                self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def wait_caught_up(server: Server, since: float, timeout_s: float = 600) -> tuple[float, int]:
    """Seconds from ``since`` (the last acknowledgement) until the tree has every committed
    event (lag 0), and the tree size then."""
    with server.client(timeout_s=30) as client:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            body = client.get("/api/v1/integrity").json()
            if int(body["lag_events"]) == 0 and int(body["tree_size"]) > 0:
                return time.perf_counter() - since, int(body["tree_size"])
            time.sleep(0.02)
    raise RuntimeError("the integrity consumer did not catch up")


def lag_figures(samples: list[Sample], start: float, end: float) -> dict[str, Any]:
    """The tree's lag while the load ran (samples between ``start`` and ``end``)."""
    during = [s for s in samples if start <= s.at <= end]
    if not during:
        return {"lag_samples": 0}
    lags = [s.lag_events for s in during]
    middle = start + (end - start) / 2
    first = [s.lag_events for s in during if s.at < middle] or [0]
    second = [s.lag_events for s in during if s.at >= middle] or [0]
    return {
        "lag_samples": len(lags),
        "lag_p50_events": round(percentile(lags, 0.5)),
        "lag_p90_events": round(percentile(lags, 0.9)),
        "lag_max_events": max(lags),
        "lag_max_first_half_events": max(first),
        "lag_max_second_half_events": max(second),
        "lag_at_load_end_events": during[-1].lag_events,
        "tree_size_at_load_end": during[-1].tree_size,
    }


def audit_store(db_url: str, home: Path, acknowledged: int, *, check_tree: bool
                ) -> dict[str, Any]:
    """After the server stopped: the store holds every acknowledged event (by its ``uid``;
    the server adds its own records: authentications, searches, checkpoints), and, when
    ``check_tree``, every one of them is a leaf of the tree and the store verifies against
    the server's key."""
    storage = open_storage(db_url)
    try:
        size, last_id = tree_size(storage)
        leaves: set[int] = set()
        for start in range(0, (size + 255) // 256, 256):
            for tile in storage.merkle_tiles(0, start, start + 255):
                data = tile.data
                leaves.update(LeafRecord.decode(data[i:i + RECORD_SIZE]).event_id
                              for i in range(0, len(data), RECORD_SIZE))
        ingested = missing = 0
        others: Counter[str] = Counter()
        after = 0
        while True:
            batch = storage.events_after(after, 10_000)
            for e in batch:
                if _INGEST_MARK in e.doc:
                    ingested += 1
                    missing += e.id not in leaves
                else:
                    others[orjson.loads(e.doc)["type"]["action"]] += 1
            if len(batch) < 10_000:
                break
            after = batch[-1].id
        out: dict[str, Any] = {
            "events_stored_from_load": ingested,
            "stored_matches_acknowledged": ingested == acknowledged,
            "server_own_events": dict(others.most_common()),
        }
        if not check_tree:
            return out
        latest = storage.checkpoint()
        out.update({
            "tree_size_after_stop": size,
            "last_hashed_id": last_id,
            "stored_events_not_in_tree": missing,
            "every_acknowledged_event_in_tree": ingested == acknowledged and missing == 0,
            "checkpoints_signed": len(storage.checkpoints(limit=1000)),
            "latest_checkpoint_size": latest.size if latest else 0,
        })
        verifier = read_verifier_key_file(home / "integrity" / "checkpoint.key.pub")
        began = time.perf_counter()
        report = verify_source(StoreSource(storage, db_url), Trust([verifier]),
                               db_url=db_url, jobs=1)
        out.update(verify_problems=report.problem_count,
                   verify_events_verified=report.events_verified,
                   verify_uncovered=report.uncovered,
                   verify_s=round(time.perf_counter() - began, 2))
        return out
    finally:
        storage.close()


def run(mode: str, args: Any, bodies: list[Any]) -> dict[str, Any]:
    home = scratch_dir(f"integrity-{mode}")
    (home / "trailkeeper.toml").write_text(
        f"[integrity]\nenabled = {'true' if mode == 'on' else 'false'}\n")
    result: dict[str, Any] = {"mode": mode}
    try:
        with fresh_store(args.backend, args.pg_url, f"integrity_{mode}",
                         keep=args.keep) as db_url:
            with Server(db_url, home, args.workers) as server:
                sampler = Sampler(server, args.sample_interval)
                sampler.start()
                result["load_average_1m_start"] = round(os.getloadavg()[0], 2)
                logs, server_cpu, load_cpu = timed_load(server, bodies, args.clients)
                result["load_average_1m_end"] = round(os.getloadavg()[0], 2)
                first = min(out.first_start for out in logs)
                last = max(out.last_end for out in logs)
                result.update(summarise(logs, bodies))
                result["server_cpu_s"] = round(server_cpu, 2)
                result["server_cpu_us_per_event"] = round(
                    server_cpu / max(result["events_acknowledged"], 1) * 1e6, 1)
                result["load_generator_cpu_s"] = round(load_cpu, 2)
                if mode == "on":
                    catch_up_s, size = wait_caught_up(server, last)
                    result.update(lag_figures(sampler.samples, first, last))
                    result["catch_up_s"] = round(catch_up_s, 3)
                    result["tree_size_when_caught_up"] = size
                sampler.stop()
                result["integrity_samples"] = len(sampler.samples)
                result["integrity_sample_errors"] = sampler.errors
                with server.client() as client:
                    metrics_text = client.get("/metrics").text
                result.update({f"server_{k}": v for k, v in commit_stats(metrics_text).items()})
                if mode == "on":
                    result.update(builder_cpu(metrics_text))
            result.update(audit_store(db_url, home, result["events_acknowledged"],
                                      check_tree=mode == "on" and not args.no_check))
        return result
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


def builder_cpu(metrics_text: str) -> dict[str, Any]:
    """What the tree's builder spent, from its own thread's CPU clock (summed over the
    server's workers): the part of the "on" server CPU that is hashing, measured in place."""
    values = metric_values(metrics_text, "trailkeeper_merkle_")
    leaves = values.get("trailkeeper_merkle_leaves_total", 0.0)
    cpu = values.get("trailkeeper_merkle_build_cpu_seconds_total", 0.0)
    return {"builder_cpu_s": round(cpu, 3),
            "builder_cpu_us_per_event": round(cpu / leaves * 1e6, 2) if leaves else None}


def slowdown(off: float, on: float) -> float:
    return round((off - on) / off, 4)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=200_000, help="events per run")
    p.add_argument("--batch", type=int, default=1000, help="events per request")
    p.add_argument("--clients", type=int, default=4, help="concurrent connections")
    p.add_argument("--pairs", type=int, default=3, help="off/on pairs, run off,on,off,on...")
    p.add_argument("--sample-interval", type=float, default=0.1,
                   help="seconds between GET /api/v1/integrity samples")
    p.add_argument("--no-check", action="store_true",
                   help="skip the tree coverage and verify_source check after 'on' runs")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()

    started = machine(args.backend, args.pg_url)
    log(f"serialising {args.events:,} events into batches of {args.batch:,}")
    bodies = build_bodies(args.events, args.batch, args.seed)
    runs: list[dict[str, Any]] = []
    for pair in range(args.pairs):
        for mode in MODES:
            one = run(mode, args, bodies)
            one["pair"] = pair
            runs.append(one)
            extra = (f", lag max {one.get('lag_max_events')}, caught up "
                     f"{one.get('catch_up_s')} s after the last ack, all in tree "
                     f"{one.get('every_acknowledged_event_in_tree')}"
                     if mode == "on" else "")
            log(f"pair {pair} integrity {mode}: {one['throughput_events_per_s']:,} "
                f"events/s (load {one['load_average_1m_start']}){extra}")

    off = [r["throughput_events_per_s"] for r in runs if r["mode"] == "off"]
    on = [r["throughput_events_per_s"] for r in runs if r["mode"] == "on"]
    pair_slowdowns = [slowdown(a, b) for a, b in zip(off, on, strict=True)]
    # Each "on" run against the mean of the "off" runs either side of it (drift-corrected).
    bracketed = [slowdown((off[k] + off[k + 1]) / 2, on[k]) for k in range(len(on) - 1)]
    median_pair = statistics.median(pair_slowdowns)
    cpu_deltas = [round(b["server_cpu_us_per_event"] - a["server_cpu_us_per_event"], 1)
                  for a, b in zip([r for r in runs if r["mode"] == "off"],
                                  [r for r in runs if r["mode"] == "on"], strict=True)]
    on_runs = [r for r in runs if r["mode"] == "on"]
    # The load generator does the same work in every run, so its CPU time is a probe of how
    # fast the shared machine was during that run (it varied by half between runs here);
    # the server's CPU over it compares runs on slow and fast moments alike.
    relative = {mode: [r["server_cpu_s"] / r["load_generator_cpu_s"] for r in runs
                       if r["mode"] == mode and r["load_generator_cpu_s"] > 0] for mode in MODES}
    result: dict[str, Any] = {
        "benchmark": "integrity_ingest", "backend": args.backend, "events": args.events,
        "batch_events": args.batch, "clients": args.clients, "server_workers": args.workers,
        "order": "off,on," * (args.pairs - 1) + "off,on",
        "off_events_per_s": off, "on_events_per_s": on,
        "off_median_events_per_s": round(statistics.median(off)),
        "on_median_events_per_s": round(statistics.median(on)),
        "slowdown_of_medians": slowdown(statistics.median(off), statistics.median(on)),
        "pair_slowdowns": pair_slowdowns,
        "slowdown_pair_median": median_pair,
        "bracketed_slowdowns": bracketed,
        # Server CPU per acknowledged event, "on" minus "off" within each pair: what hashing
        # costs in CPU, less sensitive to the machine's other load than throughput.
        "server_cpu_us_per_event_pair_deltas": cpu_deltas,
        "server_cpu_us_per_event_delta_median": round(statistics.median(cpu_deltas), 1),
        "server_cpu_us_per_event_off_median": statistics.median(
            r["server_cpu_us_per_event"] for r in runs if r["mode"] == "off"),
        "server_cpu_us_per_event_on_median": statistics.median(
            r["server_cpu_us_per_event"] for r in on_runs),
        # The builder's own CPU in the "on" servers: the hashing the writers do while
        # encoding is not in it (bench/integrity_digests.py measures that part).
        "builder_cpu_us_per_event": [r.get("builder_cpu_us_per_event") for r in on_runs],
        "builder_cpu_us_per_event_median": statistics.median(
            r.get("builder_cpu_us_per_event") or 0.0 for r in on_runs),
        "server_cpu_over_load_generator_cpu": {
            mode: [round(x, 1) for x in values] for mode, values in relative.items()},
        "server_cpu_overhead_speed_corrected": round(
            statistics.median(relative["on"]) / statistics.median(relative["off"]) - 1, 4)
        if relative["on"] and relative["off"] else None,
        "lag_max_events": [r.get("lag_max_events") for r in on_runs],
        "lag_p50_events": [r.get("lag_p50_events") for r in on_runs],
        "lag_at_load_end_events": [r.get("lag_at_load_end_events") for r in on_runs],
        "catch_up_s": [r.get("catch_up_s") for r in on_runs],
        "every_acknowledged_event_in_tree": None if args.no_check else all(
            r["every_acknowledged_event_in_tree"] for r in on_runs),
        "stored_matches_acknowledged": all(r["stored_matches_acknowledged"] for r in runs),
        "verify_problems": [r.get("verify_problems") for r in on_runs],
        "load_average_1m": [r["load_average_1m_start"] for r in runs],
        "runs": runs,
        "machine": started,
    }
    result["machine"]["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    result["targets"] = [target("integrity_ingest.slowdown_pair_median", median_pair,
                                TARGET_SLOWDOWN, at_least=False)]
    log(f"off {result['off_median_events_per_s']:,}/s, on {result['on_median_events_per_s']:,}"
        f"/s; slowdown (median of pairs) {median_pair:.1%}")
    emit(result)


if __name__ == "__main__":
    main()
