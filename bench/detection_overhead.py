"""Live detection's cost to durable HTTP ingest: the ingest benchmark with detection off and
on (the built-in rules plus 200 generated rules of realistic shape), interleaved.

Each run starts `trailkeeper serve` on a fresh store, sends the same NDJSON batches from
concurrent clients (as bench/ingest_http.py), then waits until the detection consumer has
processed every event (its saved position reaches the last id). Reported: acknowledged
events/s per mode (median of the rounds), the relative slowdown, and how long detection took
to catch up after the last acknowledgement. Target: ≤ 10% slower (issue 6).
"""

from __future__ import annotations

import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import orjson
from benchlib import Server, emit, fresh_store, log, machine, parser, scratch_dir, target
from ingest_http import build_bodies, summarise, timed_load
from sigma_match import generated_rule

from trailkeeper.storage import open_storage

TARGET_SLOWDOWN = 0.10


def write_rules(directory: Path, count: int, seed: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for n in range(count):
        (directory / f"generated_{n:03d}.yml").write_text(generated_rule(n, rng))


def caught_up(db_url: str, timeout_s: float = 600) -> tuple[float, int]:
    """Seconds until detection's position reaches the last event, and the alerts stored."""
    storage = open_storage(db_url)
    try:
        last = storage.max_id()
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            state = storage.get_position("detection")
            if state is not None and orjson.loads(state)["id"] >= last:
                return time.monotonic() - started, storage.last_alert_id()
            time.sleep(0.05)
        raise RuntimeError("detection did not catch up")
    finally:
        storage.close()


def run(mode: str, args: Any, bodies: list[Any], rules: Path) -> dict[str, Any]:
    home = scratch_dir(f"detect-{mode}")
    (home / "trailkeeper.toml").write_text(
        f"[detection]\nenabled = {'true' if mode == 'on' else 'false'}\n")
    try:
        with fresh_store(args.backend, args.pg_url, f"detect_{mode}") as db_url:
            with Server(db_url, home, args.workers, extra_args=("--rules", str(rules))) \
                    as server:
                logs, server_cpu, _ = timed_load(server, bodies, args.clients)
                result = summarise(logs, bodies)
                if mode == "on":
                    catch_up_s, alerts = caught_up(db_url)
                    result.update(detection_catch_up_s=round(catch_up_s, 2), alerts=alerts)
            result["server_cpu_s"] = round(server_cpu, 2)
            return result
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2, help="off/on pairs")
    p.add_argument("--rules", type=int, default=200, help="generated rules besides built-ins")
    args = p.parse_args()

    rules = scratch_dir("detect-rules")
    write_rules(rules, args.rules, seed=11)
    log(f"serialising {args.events:,} events")
    bodies = build_bodies(args.events, args.batch, seed=7)
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    try:
        for round_ in range(args.rounds):
            for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                result = run(mode, args, bodies, rules)
                runs[mode].append(result)
                log(f"detection {mode}: {result['throughput_events_per_s']:,} events/s"
                    + (f", caught up {result['detection_catch_up_s']} s later"
                       if mode == "on" else ""))
    finally:
        shutil.rmtree(rules, ignore_errors=True)

    off = statistics.median(r["throughput_events_per_s"] for r in runs["off"])
    on = statistics.median(r["throughput_events_per_s"] for r in runs["on"])
    slowdown = (off - on) / off
    emit({
        "benchmark": "detection_overhead", "backend": args.backend, "events": args.events,
        "rules": f"built-in + {args.rules} generated", "clients": args.clients,
        "off_events_per_s": round(off), "on_events_per_s": round(on),
        "slowdown": round(slowdown, 3),
        "detection_catch_up_s": [r["detection_catch_up_s"] for r in runs["on"]],
        "alerts": runs["on"][0]["alerts"],
        "runs": runs,
        "machine": machine(args.backend, args.pg_url),
        "targets": [target("detection_overhead.slowdown", slowdown, TARGET_SLOWDOWN,
                           at_least=False)],
    })


if __name__ == "__main__":
    main()
