"""In-process recording: the cost of one ``AuditService.audit()`` call and the queue's drain rate.

Both phases use a fresh store and a queue big enough that nothing is dropped, and check that
the store holds every event afterwards. Events are realistic (the demo generator) and carry no
uid, as application code calling ``audit()`` usually does not set one.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any

from benchlib import commit_stats, emit, fresh_store, log, machine, parser, percentile, target
from prometheus_client import generate_latest

from trailkeeper.demo import demo_events
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.event import AuditEvent

TARGET_CALL_MEDIAN_US = 10
TARGET_DRAIN_EVENTS_PER_S = 50_000
POOL = 20_000  # distinct events, reused round-robin (the queue holds references only)


def event_pool(size: int, seed: int, *, uids: bool) -> list[AuditEvent]:
    events = itertools.islice(demo_events(size, seed=seed), size)
    return list(events) if uids else [dataclasses.replace(e, uid=None) for e in events]


def timer_overhead_ns(rounds: int = 100_000) -> int:
    """The median cost of one pair of clock reads, to judge the per-call figures by."""
    clock = time.perf_counter_ns
    samples = [0] * rounds
    for i in range(rounds):
        began = clock()
        samples[i] = clock() - began
    return int(percentile(samples, 0.5))


def time_calls(service: AuditService, pool: list[AuditEvent], calls: int) -> list[int]:
    """Nanoseconds of each ``audit()`` call."""
    audit = service.audit
    clock = time.perf_counter_ns
    size = len(pool)
    samples = [0] * calls
    for i in range(calls):
        event = pool[i % size]
        began = clock()
        audit(event)
        samples[i] = clock() - began
    return samples


def dropped(service: AuditService) -> int:
    value = service.metrics.registry.get_sample_value("trailkeeper_events_dropped_total")
    return int(value or 0)


def settle(service: AuditService, expected: int) -> dict[str, Any]:
    """Wait for the queue to drain and check that every event is stored."""
    flushed = service.flush(timeout=600)
    stored = service.count()
    return {"flushed": flushed, "stored": stored, "dropped": dropped(service),
            "complete": flushed and stored == expected}


def call_phase(url: str, pool: list[AuditEvent], calls: int) -> dict[str, Any]:
    service = AuditService.open(url, queue_size=calls + 1000)
    try:
        began = time.perf_counter()
        samples = time_calls(service, pool, calls)
        elapsed = time.perf_counter() - began
        check = settle(service, calls)
    finally:
        service.close()
    return {
        "calls": calls,
        "call_median_us": round(percentile(samples, 0.5) / 1000, 3),
        "call_p99_us": round(percentile(samples, 0.99) / 1000, 3),
        "call_p999_us": round(percentile(samples, 0.999) / 1000, 3),
        "call_max_us": round(max(samples) / 1000, 1),
        "call_mean_us_including_loop": round(elapsed / calls * 1e6, 3),
        "calls_stored": check["stored"],
        "calls_dropped": check["dropped"],
        "calls_all_stored": check["complete"],
    }


def drain_phase(url: str, pool: list[AuditEvent], events: int) -> dict[str, Any]:
    service = AuditService.open(url, queue_size=events + 1000)
    audit = service.audit
    size = len(pool)
    try:
        cpu = time.process_time()
        began = time.perf_counter()
        for i in range(events):
            audit(pool[i % size])
        enqueued = time.perf_counter()
        check = settle(service, events)
        drained = time.perf_counter()
        cpu = time.process_time() - cpu
        commits = commit_stats(generate_latest(service.metrics.registry).decode())
    finally:
        service.close()
    return {
        "drain_events": events,
        "drain_enqueue_s": round(enqueued - began, 3),
        "drain_total_s": round(drained - began, 3),
        "drain_events_per_s": round(events / (drained - began)),
        # CPU of every thread of this process (caller, encoder, committer, WAL checkpoints)
        # per event: on 2 cores the drain cannot pass 2 / this, however well they overlap.
        "drain_cpu_us_per_event": round(cpu / events * 1e6, 1),
        "drain_cores_busy": round(cpu / (drained - began), 2),
        "drain_stored": check["stored"],
        "drain_dropped": check["dropped"],
        "drain_all_stored": check["complete"],
        **{f"drain_{name}": value for name, value in commits.items()},
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=100_000, help="audit() calls to time")
    p.add_argument("--drain-events", type=int, default=200_000, help="events to drain")
    p.add_argument("--uids", action="store_true",
                   help="give every event a uid (the writer then commits each one alone)")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()

    pool = event_pool(min(POOL, max(args.calls, args.drain_events)), args.seed, uids=args.uids)
    result: dict[str, Any] = {"benchmark": "audit_call", "backend": args.backend,
                              "events_have_uids": args.uids,
                              "timer_overhead_ns": timer_overhead_ns()}
    with fresh_store(args.backend, args.pg_url, "audit-call", keep=args.keep) as url:
        log(f"timing {args.calls:,} audit() calls")
        result.update(call_phase(url, pool, args.calls))
    with fresh_store(args.backend, args.pg_url, "audit-drain", keep=args.keep) as url:
        log(f"draining {args.drain_events:,} queued events")
        result.update(drain_phase(url, pool, args.drain_events))
    result["machine"] = machine(args.backend, args.pg_url)
    result["targets"] = [
        target("audit_call.call_median_us", result["call_median_us"], TARGET_CALL_MEDIAN_US,
               at_least=False),
        target("audit_call.drain_events_per_s", result["drain_events_per_s"],
               TARGET_DRAIN_EVENTS_PER_S, at_least=True),
    ]
    log(f"audit(): median {result['call_median_us']} us, p99 {result['call_p99_us']} us; "
        f"drain {result['drain_events_per_s']:,} events/s")
    emit(result)


if __name__ == "__main__":
    main()
