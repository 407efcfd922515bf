"""Retention under load: ingest throughput while the retention job deletes 1,000,000 events.

The store is a copy of the cached read store (`read_store.py`: `--events` demo events over
21 days ending 2024-06-01, with uids, objects and full-text words), all of them older than
the one-year period used here. In one process, as `trailkeeper serve` would run them:
`--producers` threads call `AuditService.submit` with batches of `--batch` demo events
(no uid, stamped at receipt, level BASE: the HTTP ingest path without HTTP) for the whole
run, while windows of `--window` seconds alternate: ingest alone, then ingest with a forced
`RetentionJob` run (`--delete-batch` events per transaction, resting `--pause-ratio` times
the batch's time between batches), stopped at the end of its window, until every expired
event is deleted. Neighbouring windows share the machine's background load, so their ratio
is the figure to trust on a busy machine; the totals are given too.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from benchlib import commit_stats, emit, fresh_store, log, machine, parser, target
from prometheus_client import generate_latest
from read_store import read_store

from trailkeeper.demo import demo_events
from trailkeeper.governance.period import Period
from trailkeeper.governance.retention import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_PAUSE_RATIO,
    DEFAULT_PAUSE_S,
    RetentionJob,
    RetentionReport,
)
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.areas import CoverageLevel
from trailkeeper.model.event import AuditEvent
from trailkeeper.query.ast import Compare, MatchAll

TARGET_RATIO = 0.8  # ingest under retention within 20% of its unloaded figure
POOL = 20_000
PERIOD = Period(years=1)


class Producers:
    """Threads submitting batches until stopped; each acknowledgement is logged with its
    time, so the rate of any window can be read afterwards."""

    def __init__(self, service: AuditService, pool: list[AuditEvent], count: int,
                 batch: int) -> None:
        self.service = service
        self.batches = [pool[i:i + batch] for i in range(0, len(pool) - batch + 1, batch)]
        self.acks: list[tuple[float, int]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(count)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, index: int) -> None:
        batches = itertools.cycle(self.batches[index::len(self._threads)] or self.batches)
        while not self._stop.is_set():
            events = next(batches)
            try:
                self.service.submit(events)
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with self._lock:
                self.acks.append((time.perf_counter(), len(events)))

    def rate(self, start: float, end: float) -> tuple[int, float]:
        """(events acknowledged, events per second) within [start, end)."""
        with self._lock:
            events = sum(n for t, n in self.acks if start <= t < end)
        return events, events / (end - start)


def pool_of(size: int, seed: int) -> list[AuditEvent]:
    """Demo events without uid or timestamp (stamped at receipt, so none is expired), all
    of level BASE so that the default coverage records every one."""
    return [dataclasses.replace(e, uid=None, timestamp=None,
                                type=dataclasses.replace(e.type, level=CoverageLevel.BASE))
            for e in itertools.islice(demo_events(size, seed=seed), size)]


def expired(url: str, cutoff_ms: int) -> int:
    service = AuditService.open(url)
    try:
        return service.count(Compare("timestamp", "<", cutoff_ms))
    finally:
        service.close()


def analyze(url: str) -> None:
    if url.startswith("postgres"):
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("VACUUM ANALYZE")


@dataclass
class Window:
    loaded: bool
    start: float
    end: float
    events: int = 0

    @property
    def rate(self) -> float:
        return self.events / (self.end - self.start)


def retention_window(service: AuditService, args: Any) -> RetentionReport:
    """One forced retention run, stopped after ``--window`` seconds if not done by then."""
    job = RetentionJob(service.storage, period=lambda: PERIOD, max_rows=lambda: 10**12,
                       record=lambda e: service.submit([e], screen=False),
                       batch_size=args.delete_batch,
                       pause_s=args.pause, pause_ratio=args.pause_ratio,
                       metrics=service.metrics)
    reports: list[RetentionReport | None] = []
    runner = threading.Thread(target=lambda: reports.append(job.run(force=True)))
    runner.start()
    runner.join(args.window)
    job.stop()
    runner.join()
    report = reports[0] if reports else None
    if report is None:
        raise RuntimeError("the forced run did not get the lease")
    return report


def measure(url: str, args: Any) -> dict[str, Any]:
    """Alternate unloaded and loaded windows until retention has deleted everything: the
    machine's background load drifts, and neighbouring windows see about the same."""
    service = AuditService.open(url)
    windows: list[Window] = []
    reports: list[RetentionReport] = []
    try:
        producers = Producers(service, pool_of(POOL, args.seed), args.producers, args.batch)
        log(f"ingesting with {args.producers} producers, batches of {args.batch:,}")
        producers.start()
        time.sleep(args.warmup)
        before = generate_latest(service.metrics.registry).decode()
        while True:
            began = time.perf_counter()
            time.sleep(args.window)
            windows.append(Window(False, began, time.perf_counter()))
            if reports and reports[-1].completed:
                break
            began = time.perf_counter()
            reports.append(retention_window(service, args))
            windows.append(Window(True, began, time.perf_counter()))
            log(f"  deleted {sum(r.deleted for r in reports):,}; ingest "
                f"{producers.rate(windows[-2].start, windows[-2].end)[1]:,.0f}/s alone, "
                f"{producers.rate(began, windows[-1].end)[1]:,.0f}/s with retention")
        after = generate_latest(service.metrics.registry).decode()
        producers.stop()
        service.flush()
    finally:
        service.close()
    for window in windows:
        window.events = producers.rate(window.start, window.end)[0]
    loaded = [w for w in windows if w.loaded]
    unloaded = [w for w in windows if not w.loaded]
    pairs = [windows[i].rate / ((windows[i - 1].rate + windows[i + 1].rate) / 2)
             for i in range(1, len(windows) - 1) if windows[i].loaded]
    loaded_rate = sum(w.events for w in loaded) / sum(w.end - w.start for w in loaded)
    unloaded_rate = sum(w.events for w in unloaded) / sum(w.end - w.start for w in unloaded)
    deleted = sum(r.deleted for r in reports)
    deleting_s = sum(r.duration_ms for r in reports) / 1000
    commits = {k: commit_stats(after)[k] - commit_stats(before)[k]
               for k in ("commits", "commit_s_total")}
    return {
        "windows": len(windows),
        "window_s": args.window,
        "unloaded_s": round(sum(w.end - w.start for w in unloaded), 1),
        "unloaded_events": sum(w.events for w in unloaded),
        "unloaded_events_per_s": round(unloaded_rate),
        "loaded_s": round(sum(w.end - w.start for w in loaded), 1),
        "loaded_events": sum(w.events for w in loaded),
        "loaded_events_per_s": round(loaded_rate),
        "loaded_to_unloaded_ratio": round(loaded_rate / unloaded_rate, 3),
        "window_ratio_median": round(statistics.median(pairs), 3) if pairs else None,
        "window_ratio_min": round(min(pairs), 3) if pairs else None,
        "window_ratio_max": round(max(pairs), 3) if pairs else None,
        "deleted": deleted,
        "delete_batches": sum(r.batches for r in reports),
        "delete_s": round(deleting_s, 1),
        "delete_events_per_s": round(deleted / deleting_s),
        "retention_runs": len(reports),
        "retention_outcomes": sorted({r.outcome for r in reports}),
        "commits": commits["commits"],
        "commit_s_total": round(commits["commit_s_total"], 3),
        "producer_errors": producers.errors[:5],
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000, help="expired events in the store")
    p.add_argument("--producers", type=int, default=4, help="ingest threads")
    p.add_argument("--batch", type=int, default=1000, help="events per submit()")
    p.add_argument("--window", type=float, default=15.0,
                   help="seconds of each window, with and without retention")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--delete-batch", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--pause", type=float, default=DEFAULT_PAUSE_S,
                   help="least rest between delete batches, seconds")
    p.add_argument("--pause-ratio", type=float, default=DEFAULT_PAUSE_RATIO,
                   help="rest at least this many times as long as the batch took")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--integrity-check", action="store_true",
                   help="run the store's consistency check afterwards (slow)")
    args = p.parse_args()

    facts, _ = read_store(args.backend, args.events, args.pg_url, rebuild=False)
    cutoff = PERIOD.cutoff_ms(int(time.time() * 1000))
    assert facts.last_ms < cutoff, "the read store's events must all be past the period"
    result: dict[str, Any] = {
        "benchmark": "retention", "backend": args.backend, "period": PERIOD.iso(),
        "store_events": facts.events, "producers": args.producers, "batch_events": args.batch,
        "delete_batch_events": args.delete_batch, "pause_s": args.pause,
        "pause_ratio": args.pause_ratio,
    }
    with fresh_store(args.backend, args.pg_url, "retention", keep=args.keep,
                     copy_of=facts.location) as url:
        analyze(url)
        result.update(measure(url, args))
        result["expired_left"] = expired(url, cutoff)
        service = AuditService.open(url)
        try:
            if args.integrity_check:  # minutes on the tens of millions of events left
                log("checking the store")
                result["integrity_problems"] = service.storage.integrity_check()
            result["events_stored_after"] = service.count(MatchAll())
        finally:
            service.close()
    result["all_expired_deleted"] = result["expired_left"] == 0 \
        and result["deleted"] == facts.events
    result["machine"] = machine(args.backend, args.pg_url)
    result["targets"] = [
        target("retention.loaded_to_unloaded_ratio", result["loaded_to_unloaded_ratio"],
               TARGET_RATIO, at_least=True),
    ]
    log(f"ingest {result['unloaded_events_per_s']:,}/s alone, {result['loaded_events_per_s']:,}"
        f"/s during retention (x{result['loaded_to_unloaded_ratio']}, windows: median "
        f"x{result['window_ratio_median']}); deleted {result['deleted']:,} at "
        f"{result['delete_events_per_s']:,}/s")
    emit(result)


if __name__ == "__main__":
    main()
