"""Run every benchmark against one backend; print the combined JSON and save it.

    .venv/bin/python bench/run_all.py --backend sqlite            # the issue's full sizes
    .venv/bin/python bench/run_all.py --backend postgres --events 50000 --ingest-events 30000

Each benchmark runs in its own process (one at a time, so they do not compete for the CPU).
The result goes to ``bench/results/<backend>-<UTC timestamp>.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import BENCH_DIR, emit, log, machine, parser

RESULTS_DIR = BENCH_DIR / "results"
BENCHMARKS = ("ingest_http", "audit_call", "read_api", "search_export", "import_log",
              "export_writers", "auth_overhead", "delegated_read", "policy",
              "file_sink", "retention", "sigma_match", "sigma_correlation",
              "detection_overhead", "forwarding", "integrity_ingest", "integrity_digests",
              "integrity_proofs", "integrity_verify", "web_pages")


def commands(args: Any) -> dict[str, list[str]]:
    """Each benchmark's command line, with this run's sizes."""
    common = ["--backend", args.backend, "--pg-url", args.pg_url,
              *(["--keep"] if args.keep else [])]
    served = ["--workers", str(args.workers)]
    return {
        "ingest_http": [*common, *served, "--events", str(args.ingest_events)],
        "audit_call": [*common, "--calls", str(args.audit_calls),
                       "--drain-events", str(args.drain_events)],
        "read_api": [*common, *served, "--events", str(args.events),
                     "--requests", str(args.requests),
                     *(["--rebuild"] if args.rebuild else [])],
        "search_export": [*common, *served, "--events", str(args.events)],
        "import_log": [*common, "--events", str(args.import_events)],
        "export_writers": [*common],
        "auth_overhead": [*common],
        "delegated_read": [*common, "--events", str(args.events)],
        "policy": [*common],
        "file_sink": [*common, *served, "--events", str(args.events),
                      "--ingest-events", str(args.ingest_events)],
        "retention": [*common, "--events", str(args.events)],
        "sigma_match": [*common],
        "sigma_correlation": [*common],
        "detection_overhead": [*common, *served, "--events", str(args.ingest_events)],
        "forwarding": [*common],
        "integrity_ingest": [*common, *served, "--events", str(args.ingest_events)],
        "integrity_digests": [*common, "--events", str(args.ingest_events)],
        "integrity_proofs": [*common, *served, "--leaves", str(args.proof_leaves)],
        "integrity_verify": [*common, "--events", str(args.events)],
        "web_pages": [*common, *served, "--events", str(args.events)],
    }


def run(name: str, options: list[str]) -> dict[str, Any]:
    """One benchmark's JSON result (its progress goes straight to our stderr)."""
    log(f"== {name} {' '.join(options)}")
    began = time.perf_counter()
    done = subprocess.run([sys.executable, str(BENCH_DIR / f"{name}.py"), *options],
                          stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        return {"error": f"exit status {done.returncode}", "stdout": done.stdout[-2000:]}
    result: dict[str, Any] = json.loads(done.stdout)
    result["wall_s"] = round(time.perf_counter() - began, 1)
    return result


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000, help="read store size")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached read store")
    p.add_argument("--ingest-events", type=int, default=200_000)
    p.add_argument("--audit-calls", type=int, default=100_000)
    p.add_argument("--drain-events", type=int, default=200_000)
    p.add_argument("--import-events", type=int, default=1_000_000, help="log lines to import")
    p.add_argument("--requests", type=int, default=60, help="timed requests per read figure")
    p.add_argument("--proof-leaves", type=int, default=10_000_000,
                   help="leaves of the Merkle tree integrity_proofs writes")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    args = p.parse_args()

    started = time.gmtime()
    lines = commands(args)
    results = {name: run(name, lines[name]) for name in args.only}
    for result in results.values():
        result.pop("machine", None)  # the same for all; kept once below
    combined: dict[str, Any] = {
        "backend": args.backend,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", started),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(args.backend, args.pg_url),
        "targets": [t for r in results.values() for t in r.get("targets", [])],
        "failed": [name for name, r in results.items() if "error" in r],
        "benchmarks": results,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{args.backend}-{time.strftime('%Y%m%dT%H%M%SZ', started)}.json"
    path.write_text(json.dumps(combined, indent=2) + "\n")
    emit(combined)
    missed = [t["figure"] for t in combined["targets"] if not t["met"]]
    log(f"saved {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}; "
        f"targets missed: {', '.join(missed) or 'none'}")
    if combined["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
