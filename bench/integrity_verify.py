"""Hashing a million events into the Merkle tree, and verifying them (issue 7).

On a copy of the cached read store of `--events` (1,000,000) realistic events
(`read_store.py`):

1. ``hashing``: `IntegrityConsumer(storage, key).drain(checkpoint=True)` in this process,
   as a server's consumer works through a backlog (batches of 5,000, a signed checkpoint
   every 10,000 events): events/s and CPU µs per event.
2. ``verify_store``: ``trailkeeper verify --db URL --key PUB --jobs 1`` and ``--jobs 2`` as
   subprocesses, as users run them (process start included), alternated jobs 1, 2, 1, 2 for
   `--rounds` rounds: events/s = events verified / wall time (median of the rounds), and
   the CPU seconds of the command and its workers.
3. ``verify_files``: the same events exported as NDJSON in id order (``trailkeeper search
   --db URL -t ndjson -s id+ -b -o DIR/events.ndjson``, timed apart) plus the latest
   checkpoint as ``GET /api/v1/checkpoints/latest`` gives it (``DIR/checkpoint.json``);
   ``trailkeeper verify DIR --key PUB --jobs 1`` and ``--jobs 2`` alternated, `--rounds`
   rounds.

Every verification must exit 0 and report every event verified. Target: a full verify of
1,000,000 events >= 200,000 events/s.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from benchlib import REPO_DIR, emit, fresh_store, log, machine, parser, scratch_dir, target
from read_store import read_store

from trailkeeper.api.integrity import checkpoint_json
from trailkeeper.integrity.consumer import IntegrityConsumer
from trailkeeper.storage import open_storage

TARGET_EVENTS_PER_S = 200_000


def trailkeeper_command() -> list[str]:
    """The console script beside this interpreter (what users run), else ``-m``."""
    script = Path(sys.executable).parent / "trailkeeper"
    return [str(script)] if script.exists() else [sys.executable, "-m", "trailkeeper"]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_verify(arguments: list[str], expected: int) -> dict[str, Any]:
    """One ``trailkeeper verify ... --json``: wall time, CPU, and what it reported."""
    load = round(os.getloadavg()[0], 2)
    cpu = children_cpu_s()
    began = time.perf_counter()
    done = subprocess.run([*trailkeeper_command(), "verify", *arguments, "--json"],
                          capture_output=True, cwd=REPO_DIR, check=False)
    wall = time.perf_counter() - began
    cpu = children_cpu_s() - cpu
    try:
        report = orjson.loads(done.stdout)
    except orjson.JSONDecodeError:
        raise RuntimeError(f"verify printed no JSON (exit {done.returncode}): "
                           f"{done.stderr.decode()[-2000:]}") from None
    verified = int(report["events_verified"])
    return {
        "wall_s": round(wall, 2),
        "events_verified": verified,
        "events_per_s": round(verified / wall),
        "cpu_s": round(cpu, 2),
        "cpu_us_per_event": round(cpu / max(verified, 1) * 1e6, 2),
        "exit_status": done.returncode,
        "ok": done.returncode == 0 and verified == expected and report["problem_count"] == 0,
        "summary": report.get("summary"),
        "load_average_1m": load,
    }


def hash_store(db_url: str, key: Path) -> tuple[dict[str, Any], int]:
    """Drain the consumer over the whole store; its figures and the tree size."""
    storage = open_storage(db_url)
    try:
        consumer = IntegrityConsumer(storage, key)
        load = round(os.getloadavg()[0], 2)
        cpu = time.process_time()
        began = time.perf_counter()
        hashed = consumer.drain(checkpoint=True)
        wall = time.perf_counter() - began
        cpu = time.process_time() - cpu
        checkpoints = len(storage.checkpoints(limit=1000))
        latest = storage.checkpoint()
        assert latest is not None
        assert latest.size == hashed
        return {
            "events": hashed, "wall_s": round(wall, 2),
            "events_per_s": round(hashed / wall),
            "cpu_us_per_event": round(cpu / hashed * 1e6, 2),
            "checkpoints_signed": checkpoints,
            "load_average_1m": load,
            "load_average_1m_end": round(os.getloadavg()[0], 2),
        }, latest.size
    finally:
        storage.close()


def export(db_url: str, directory: Path) -> dict[str, Any]:
    """NDJSON of every event in id order, and the latest checkpoint beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    subprocess.run([*trailkeeper_command(), "search", "--db", db_url, "-t", "ndjson",
                    "-s", "id+", "-b", "-o", str(directory / "events.ndjson"),
                    "--no-progress"], check=True, cwd=REPO_DIR, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    storage = open_storage(db_url)
    try:
        latest = storage.checkpoint()
        assert latest is not None
        (directory / "checkpoint.json").write_bytes(orjson.dumps(checkpoint_json(latest)))
    finally:
        storage.close()
    return {"export_s": round(wall, 1),
            "export_mb": round((directory / "events.ndjson").stat().st_size / 1e6, 1)}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "events_per_s_median": round(statistics.median(r["events_per_s"] for r in runs)),
        "wall_s_median": round(statistics.median(r["wall_s"] for r in runs), 2),
        "cpu_us_per_event_median": round(statistics.median(r["cpu_us_per_event"]
                                                           for r in runs), 2),
        "all_ok": all(r["ok"] for r in runs),
        "runs": runs,
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000, help="read store size")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached read store")
    p.add_argument("--rounds", type=int, default=2,
                   help="verify runs per kind (jobs 1 and 2 alternated)")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--no-files", action="store_true", help="skip the export and verify DIR")
    args = p.parse_args()

    facts, _ = read_store(args.backend, args.events, args.pg_url, rebuild=args.rebuild)
    started = machine(args.backend, args.pg_url)
    work = scratch_dir("integrity-verify")
    key = work / "integrity" / "checkpoint.key"
    public = str(key.with_name(key.name + ".pub"))
    result: dict[str, Any] = {"benchmark": "integrity_verify", "backend": args.backend,
                              "events": facts.events}
    try:
        with fresh_store(args.backend, args.pg_url, "verify", keep=args.keep,
                         copy_of=facts.location) as db_url:
            log(f"hashing {facts.events:,} events with IntegrityConsumer.drain")
            hashing, size = hash_store(db_url, key)
            result["hashing"] = hashing
            log(f"hashed {hashing['events']:,} events at {hashing['events_per_s']:,}/s")

            by_jobs: dict[int, list[dict[str, Any]]] = {j: [] for j in args.jobs}
            for round_ in range(args.rounds):
                for jobs in args.jobs:
                    run = run_verify(["--db", db_url, "--key", public, "--jobs", str(jobs)],
                                     size)
                    run["round"] = round_
                    by_jobs[jobs].append(run)
                    log(f"verify --db --jobs {jobs}: {run['events_per_s']:,} events/s "
                        f"({run['wall_s']} s, load {run['load_average_1m']}, ok {run['ok']})")
            result["verify_store"] = {f"jobs_{j}": summary(runs) for j, runs in by_jobs.items()}

            if not args.no_files:
                files = work / "export"
                log("exporting every event as NDJSON")
                result["verify_files"] = export(db_url, files)
                by_jobs = {j: [] for j in args.jobs}
                for round_ in range(args.rounds):
                    for jobs in args.jobs:
                        run = run_verify([str(files), "--key", public, "--jobs", str(jobs)],
                                         size)
                        run["round"] = round_
                        by_jobs[jobs].append(run)
                        log(f"verify DIR --jobs {jobs}: {run['events_per_s']:,} events/s "
                            f"({run['wall_s']} s, load {run['load_average_1m']}, "
                            f"ok {run['ok']})")
                result["verify_files"].update({f"jobs_{j}": summary(runs)
                                               for j, runs in by_jobs.items()})
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")

    result["machine"] = started
    result["machine"]["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    targets = [target(f"integrity_verify.verify_store.{name}.events_per_s_median",
                      figures["events_per_s_median"], TARGET_EVENTS_PER_S, at_least=True)
               for name, figures in result["verify_store"].items()]
    if "verify_files" in result:
        targets += [target(f"integrity_verify.verify_files.jobs_{j}.events_per_s_median",
                           result["verify_files"][f"jobs_{j}"]["events_per_s_median"],
                           TARGET_EVENTS_PER_S, at_least=True) for j in args.jobs]
    result["targets"] = targets
    emit(result)


if __name__ == "__main__":
    main()
