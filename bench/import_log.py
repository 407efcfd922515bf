"""Import of an Atlassian audit log directory: ``trailkeeper import DIR`` into a fresh store.

The directory holds ``--events`` (1,000,000) lines of realistic events from
`trailkeeper.demo.demo_events`, rendered as Atlassian writes them (`AuditEvent.file_line`,
without uids) and split into ``YYYYMMDD.NNNNN.audit.log`` files of ``--file-mb`` (100) MB.
It is built once and cached under ``bench/.data/``. The import runs as the real command in a
subprocess; the store is counted afterwards, then the same directory is imported a second
time, which must store nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchlib import DATA_DIR, REPO_DIR, emit, fresh_store, log, machine, parser, target

from trailkeeper.demo import demo_events
from trailkeeper.query.ast import MatchAll
from trailkeeper.storage import open_storage

TARGET_EVENTS_PER_S = 30_000  # on SQLite
END_MS = 1_717_200_000_000  # 2024-06-01T00:00:00Z: every build of one size is identical
DAYS = 21
SEED = 11
FORMAT = 1  # bump when the generated files change


def log_directory(events: int, file_mb: int) -> Path:
    """The cached directory of ``events`` log lines, built if missing."""
    folder = DATA_DIR / f"import-log-{events}-{file_mb}mb"
    marker = folder / ".complete"
    if marker.exists() and json.loads(marker.read_text()).get("format") == FORMAT:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log(f"writing {events:,} log lines into {folder} (once)")
    started = time.monotonic()
    limit = file_mb * 1024 * 1024
    sequence, written = 0, 0
    out = (folder / f"20240511.{sequence:05d}.audit.log").open("w", encoding="utf-8")
    try:
        for event in itertools.islice(demo_events(events, days=DAYS, end_ms=END_MS, seed=SEED),
                                      events):
            line = replace(event, uid=None).file_line() + "\n"
            if written + len(line) > limit:
                out.close()
                sequence += 1
                written = 0
                out = (folder / f"20240511.{sequence:05d}.audit.log").open("w", encoding="utf-8")
            out.write(line)
            written += len(line)
    finally:
        out.close()
    marker.write_text(json.dumps({"format": FORMAT, "events": events,
                                  "build_s": round(time.monotonic() - started, 1)}))
    return folder


class TreeMemory:
    """Samples the resident memory of a process and its children (Linux /proc)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_total_kb = 0
        self.peak_single_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            sizes = [_rss_kb(pid) for pid in _tree(self.pid)]
            self.peak_total_kb = max(self.peak_total_kb, sum(sizes))
            self.peak_single_kb = max([self.peak_single_kb, *sizes])


def _tree(pid: int) -> list[int]:
    pids = [pid]
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            pids += _tree(int(child))
    return pids


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_import(directory: Path, db_url: str, workers: int | None) -> tuple[dict[str, Any], float,
                                                                         TreeMemory]:
    """``trailkeeper import`` as a subprocess: its JSON summary, wall time and memory."""
    command = [sys.executable, "-m", "trailkeeper", "import", str(directory), "--db", db_url,
               "--json", "--no-progress"]
    if workers is not None:
        command += ["--workers", str(workers)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILKEEPER_")}
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=REPO_DIR, env=env)
    with TreeMemory(process.pid) as memory:
        out, err = process.communicate()
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"import exited with {process.returncode}:\n{err.decode()[-2000:]}")
    return json.loads(out), elapsed, memory


def stored_events(db_url: str) -> int:
    storage = open_storage(db_url)
    try:
        return storage.count(MatchAll())
    finally:
        storage.close()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000, help="log lines to import")
    p.add_argument("--file-mb", type=int, default=100, help="size of each log file")
    p.add_argument("--import-workers", type=int, default=None,
                   help="trailkeeper import --workers (default: its own choice)")
    args = p.parse_args()

    directory = log_directory(args.events, args.file_mb)
    files = sorted(directory.glob("*.audit.log"))
    size = sum(f.stat().st_size for f in files)
    with fresh_store(args.backend, args.pg_url, "import", keep=args.keep) as db_url:
        log(f"importing {args.events:,} lines ({size / 1e6:,.0f} MB in {len(files)} files)")
        first, first_s, memory = run_import(directory, db_url, args.import_workers)
        stored = stored_events(db_url)
        log(f"{args.events / first_s:,.0f} events/s; stored {stored:,}; importing again")
        second, second_s, _ = run_import(directory, db_url, args.import_workers)
        stored_after = stored_events(db_url)

    throughput = round(args.events / first_s)
    result: dict[str, Any] = {
        "benchmark": "import_log", "backend": args.backend, "events": args.events,
        "files": len(files), "bytes": size, "mean_line_bytes": round(size / args.events),
        "elapsed_s": round(first_s, 2),
        "throughput_events_per_s": throughput,
        "summary": first,
        "events_stored": stored,
        "stored_matches_lines": stored == args.events,
        "peak_rss_mb_all_processes": round(memory.peak_total_kb / 1024, 1),
        "peak_rss_mb_largest_process": round(memory.peak_single_kb / 1024, 1),
        "reimport_elapsed_s": round(second_s, 2),
        "reimport_events_per_s": round(args.events / second_s),
        "reimport_stored": second.get("stored"),
        "reimport_already_present": second.get("already_present"),
        "reimport_stored_nothing": stored_after == stored and second.get("stored") == 0,
        "machine": machine(args.backend, args.pg_url),
    }
    result["targets"] = [target("import_log.throughput_events_per_s", throughput,
                                TARGET_EVENTS_PER_S, at_least=True)] \
        if args.backend == "sqlite" else []
    emit(result)


if __name__ == "__main__":
    main()
