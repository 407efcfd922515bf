"""The Atlassian-format file sink: its drain rate alone, and its lag under HTTP ingest.

(a) ``drain``: a copy of the cached read store (``--events``, 1,000,000) is written to audit
log files by `FileSink.drain()` in this process: events/s, with the read and render costs
apart. (b) ``ingest``: the HTTP ingest benchmark's load (``--ingest-events``) against a
server whose workers each run a sink on the same home (`file_sink_server.py`; one writes,
the others stand by), with the lag (stored max id - the sink's saved position) sampled every
0.1 s from outside; then the same load without a sink, for comparison.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from benchlib import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    BENCH_DIR,
    REPO_DIR,
    Server,
    emit,
    free_port,
    fresh_store,
    log,
    machine,
    parser,
    percentile,
    scratch_dir,
    target,
)
from ingest_http import Body, summarise, timed_load
from read_store import read_store

from trailkeeper.auth.passwords import hash_password
from trailkeeper.auth.principals import Role
from trailkeeper.consumers import FileSink, audit_log_dir
from trailkeeper.consumers.fileline import file_line, reference_line
from trailkeeper.demo import demo_events
from trailkeeper.metrics import MULTIPROCESS_ENV
from trailkeeper.model.areas import CoverageLevel
from trailkeeper.query.ast import MatchAll
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import Storage, UserRecord

TARGET_EVENTS_PER_S = 30_000  # the HTTP ingest target the sink must keep up with
TARGET_CATCH_UP_S = 2.0
SINK_NAME = "file-sink:bench"


# -- (a) the drain rate ---------------------------------------------------------------------


def count_lines(directory: Path) -> tuple[int, int, int, int]:
    """(lines, bytes, files, id of the last line) of the audit log files."""
    lines = size = 0
    last = b""
    files = sorted(directory.glob("*.audit.log"))
    for path in files:
        with path.open("rb") as file:
            while chunk := file.read(16 << 20):
                lines += chunk.count(b"\n")
                size += len(chunk)
                last = (last + chunk)[-100_000:]
    last_id = orjson.loads(last.splitlines()[-1])["id"] if lines else 0
    return lines, size, len(files), last_id


def read_rate(storage: Storage, limit: int, batch: int) -> float:
    """events/s of `events_after` alone, over the first ``limit`` events."""
    began = time.perf_counter()
    last = done = 0
    while done < limit and (rows := storage.events_after(last, batch)):
        last = rows[-1].id
        done += len(rows)
    return done / (time.perf_counter() - began)


def render_costs(storage: Storage, sample: int) -> dict[str, float]:
    """µs per event of the sink's rendering and of the model's, on rows in memory."""
    rows = storage.events_after(0, sample)
    began = time.perf_counter()
    for row in rows:
        file_line(row)
    fast = (time.perf_counter() - began) / len(rows) * 1e6
    some = rows[: max(1, len(rows) // 5)]
    began = time.perf_counter()
    for row in some:
        reference_line(row)
    model = (time.perf_counter() - began) / len(some) * 1e6
    return {"render_us_per_event": round(fast, 2),
            "render_via_model_us_per_event": round(model, 2)}


def drain_figures(args: Any) -> dict[str, Any]:
    facts, _ = read_store(args.backend, args.events, args.pg_url, rebuild=False)
    with fresh_store(args.backend, args.pg_url, "file-sink", keep=args.keep,
                     copy_of=facts.location) as db_url:
        storage = open_storage(db_url)
        out = scratch_dir("file-sink-out")
        try:
            directory = audit_log_dir(out)
            sink = FileSink(storage, directory, "bench", batch_size=args.batch,
                            max_file_count=lambda: 100_000)
            log(f"draining {facts.events:,} events into {directory}")
            cpu = time.process_time()
            began = time.perf_counter()
            written = sink.drain()
            elapsed = time.perf_counter() - began
            cpu = time.process_time() - cpu
            sink.close()
            lines, size, files, last_id = count_lines(directory)
            log(f"  {written / elapsed:,.0f} events/s; measuring reads and rendering apart")
            reads = read_rate(storage, min(facts.events, 500_000), args.batch)
            costs = render_costs(storage, 100_000)
            stored_max = storage.max_id()
        finally:
            storage.close()
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
    return {
        "events": facts.events,
        "events_written": written,
        "elapsed_s": round(elapsed, 2),
        "throughput_events_per_s": round(written / elapsed),
        "cpu_s": round(cpu, 2),
        "mb_written": round(size / 1e6, 1),
        "mb_per_s": round(size / 1e6 / elapsed, 1),
        "files": files,
        "lines_match_events": lines == written == facts.events and last_id == stored_max,
        "read_only_events_per_s": round(reads),
        **costs,
        "batch_events": args.batch,
    }


# -- (b) lag under HTTP ingest ---------------------------------------------------------------


def build_bodies(events: int, batch: int, seed: int) -> list[Body]:
    """As ingest_http's, but every event at level BASE: the default coverage records all of
    them, so the sink has to write as many events as are acknowledged."""
    bodies: list[Body] = []
    lines: list[bytes] = []
    for n, event in enumerate(itertools.islice(demo_events(events, seed=seed), events)):
        based = dataclasses.replace(event, type=dataclasses.replace(
            event.type, level=CoverageLevel.BASE))
        lines.append(orjson.dumps({**based.to_rest(), "uid": f"sink-{seed}-{n}"}))
        if len(lines) == batch or n == events - 1:
            bodies.append(Body(b"\n".join(lines) + b"\n", len(lines)))
            lines = []
    return bodies



class SinkServer(Server):
    """`file_sink_server.py` under uvicorn, with ``workers`` processes, like ``serve``."""

    def start(self, timeout_s: float = 60) -> None:
        self.port = self.port or free_port()
        self.home.mkdir(parents=True, exist_ok=True)
        storage = open_storage(self.db_url)  # the schema and the admin, as serve does first
        try:
            if storage.get_user("admin") is None:
                storage.put_user(UserRecord(ADMIN_USER, hash_password(ADMIN_PASSWORD),
                                            Role.SYSADMIN))
        finally:
            storage.close()
        self.metrics_dir = tempfile.mkdtemp(prefix="trailkeeper-metrics-")
        env = {**os.environ, "TRAILKEEPER_HOME": str(self.home), "TRAILKEEPER_DB": self.db_url,
               "TRAILKEEPER_LOG_LEVEL": "WARNING", MULTIPROCESS_ENV: self.metrics_dir,
               "PYTHONPATH": str(BENCH_DIR)}
        output = (self.home / "server.out").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "file_sink_server:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
             "--log-level", "warning", "--no-access-log", "--timeout-graceful-shutdown", "30"],
            stdout=output, stderr=subprocess.STDOUT, env=env, cwd=REPO_DIR)
        output.close()
        self._wait_healthy(timeout_s)

    def stop(self, timeout_s: float = 120) -> None:
        super().stop(timeout_s)
        shutil.rmtree(getattr(self, "metrics_dir", ""), ignore_errors=True)


class LagSampler:
    """Samples stored max id - saved position every ``interval`` s on a thread."""

    def __init__(self, db_url: str, interval: float = 0.1) -> None:
        self.storage = open_storage(db_url)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.stop_at: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def lag(self) -> int:
        text = self.storage.get_position(SINK_NAME)
        position = orjson.loads(text)["id"] if text else 0
        return max(0, self.storage.max_id() - position)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self.samples.append((time.perf_counter(), self.lag()))

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.storage.close()

    def catch_up_s(self, since: float, timeout: float = 120) -> float | None:
        """Seconds from ``since`` until the lag is 0 (None if not within ``timeout``)."""
        while time.perf_counter() - since < timeout:
            if self.lag() == 0:
                return time.perf_counter() - since
            time.sleep(0.02)
        return None


def ingest_run(args: Any, bodies: list[Any], *, with_sink: bool) -> dict[str, Any]:
    home = scratch_dir("file-sink-home")
    try:
        with fresh_store(args.backend, args.pg_url, "file-sink-ingest",
                         keep=args.keep) as db_url:
            server_type = SinkServer if with_sink else Server
            with server_type(db_url, home, args.workers) as server:
                if not with_sink:
                    logs, server_cpu, _ = timed_load(server, bodies, args.clients)
                    return {**summarise(logs, bodies), "server_cpu_s": round(server_cpu, 2)}
                with LagSampler(db_url) as lag:
                    logs, server_cpu, _ = timed_load(server, bodies, args.clients)
                    load_end = time.perf_counter()
                    final_lag = lag.lag()
                    catch_up = lag.catch_up_s(load_end)
                    samples = [n for t, n in lag.samples if t <= load_end]
            lines, _, files, last_id = count_lines(audit_log_dir(home))
            stored = open_storage(db_url)
            try:
                stored_events, stored_max = stored.count(MatchAll()), stored.max_id()
            finally:
                stored.close()
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    half = len(samples) // 2
    first, second = samples[:half] or [0], samples[half:] or [0]
    result = {
        **summarise(logs, bodies),
        "server_cpu_s": round(server_cpu, 2),
        "lag_samples": len(samples),
        "lag_p50_events": round(percentile(samples, 0.5)) if samples else 0,
        "lag_p99_events": round(percentile(samples, 0.99)) if samples else 0,
        "lag_max_events": max(samples, default=0),
        "lag_max_first_half_events": max(first),
        "lag_max_second_half_events": max(second),
        "lag_at_load_end_events": final_lag,
        "catch_up_s": None if catch_up is None else round(catch_up, 2),
        "files": files,
        "events_stored": stored_events,
        "lines_match_events": lines == stored_events and last_id == stored_max,
    }
    result["lag_bounded"] = (catch_up is not None and catch_up <= TARGET_CATCH_UP_S
                             and max(second) <= max(2 * max(first), 10_000))
    return result


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000, help="events drained in (a)")
    p.add_argument("--ingest-events", type=int, default=200_000, help="events sent in (b)")
    p.add_argument("--batch", type=int, default=5000, help="events per sink batch")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--only", nargs="+", choices=["drain", "ingest"],
                   default=["drain", "ingest"])
    args = p.parse_args()
    result: dict[str, Any] = {"benchmark": "file_sink", "backend": args.backend}
    targets = []
    if "drain" in args.only:
        result["drain"] = drain_figures(args)
        targets.append(target("file_sink.drain.throughput_events_per_s",
                              result["drain"]["throughput_events_per_s"], TARGET_EVENTS_PER_S,
                              at_least=True))
        log(f"drain: {result['drain']['throughput_events_per_s']:,} events/s")
    if "ingest" in args.only:
        log(f"serialising {args.ingest_events:,} events for HTTP ingest")
        bodies = build_bodies(args.ingest_events, 1000, seed=11)
        log(f"ingest with the sink running in {args.workers} worker(s)")
        with_sink = ingest_run(args, bodies, with_sink=True)
        log("the same ingest without a sink")
        without = ingest_run(args, bodies, with_sink=False)
        result["ingest"] = {
            "server_workers": args.workers, "clients": args.clients,
            "with_sink": with_sink,
            "without_sink": {k: without[k] for k in ("throughput_events_per_s",
                                                     "request_latency_p50_ms",
                                                     "request_latency_p99_ms",
                                                     "server_cpu_s")},
        }
        if with_sink["catch_up_s"] is not None:
            targets.append(target("file_sink.ingest.catch_up_s", with_sink["catch_up_s"],
                                  TARGET_CATCH_UP_S, at_least=False))
        log(f"ingest with sink: {with_sink['throughput_events_per_s']:,} events/s, lag max "
            f"{with_sink['lag_max_events']:,}, at load end {with_sink['lag_at_load_end_events']:,}"
            f", caught up {with_sink['catch_up_s']} s later; without sink: "
            f"{without['throughput_events_per_s']:,} events/s")
    result["machine"] = machine(args.backend, args.pg_url)
    result["targets"] = targets
    emit(result)


if __name__ == "__main__":
    main()
