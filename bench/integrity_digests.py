"""What the stored leaf digests cost ingest and save the tree's builder (issue 7).

A server with integrity on stores each event's Merkle leaf digest, computed while encoding
it (`AuditService.digest_leaves`); the builder then reads digests instead of reading the
documents back and re-encoding them. For each mode, in turn ``off``/``on`` for `--rounds`
rounds, on a fresh store:

1. ``submit``: `--events` realistic events through `AuditService.submit` in batches of
   `--batch` (durable commits; the encoder and the committer of this process): CPU µs per
   event of this process.
2. ``build``: `IntegrityConsumer.drain(checkpoint=True)` over them (batches of 5,000, a
   signed checkpoint every 10,000): events/s and CPU µs per event.

Both trees must have the root the stored documents give (checked with `verify_source`).
The sum of the two CPU differences is what hashing costs ingest per event on this machine.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import emit, fresh_store, log, machine, parser

from trailkeeper.demo import demo_events
from trailkeeper.ingest.service import AuditService
from trailkeeper.integrity.consumer import IntegrityConsumer
from trailkeeper.integrity.keys import read_verifier_key_file
from trailkeeper.integrity.sources import StoreSource
from trailkeeper.integrity.verify import Trust, verify_source
from trailkeeper.model.event import AuditEvent

MODES = ("off", "on")


def one_run(url: str, events: list[AuditEvent], batch: int, digests: bool,
            key_dir: Path) -> dict[str, Any]:
    service = AuditService.open(url)
    try:
        service.digest_leaves(digests)
        cpu = time.process_time()
        started = time.perf_counter()
        for start in range(0, len(events), batch):
            service.submit(events[start:start + batch], screen=False)
        submit_s, submit_cpu = time.perf_counter() - started, time.process_time() - cpu
        builder = IntegrityConsumer(service.storage, key_dir / "checkpoint.key")
        cpu = time.process_time()
        started = time.perf_counter()
        built = builder.drain(checkpoint=True)
        build_s, build_cpu = time.perf_counter() - started, time.process_time() - cpu
        key = read_verifier_key_file(key_dir / "checkpoint.key.pub")
        report = verify_source(StoreSource(service.storage, url), Trust([key]))
    finally:
        service.close()
    n = len(events)
    return {
        "mode": "on" if digests else "off",
        "submit_events_per_s": round(n / submit_s),
        "submit_cpu_us_per_event": round(submit_cpu / n * 1e6, 2),
        "build_events_per_s": round(built / build_s),
        "build_cpu_us_per_event": round(build_cpu / built * 1e6, 2),
        "verified": report.ok,
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=3)
    args = p.parse_args()
    events = list(itertools.islice(demo_events(args.events, seed=args.seed), args.events))
    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        for mode in MODES if round_ % 2 == 0 else MODES[::-1]:
            label = f"digests_{mode}_{round_}"
            with fresh_store(args.backend, args.pg_url, label, keep=args.keep) as url, \
                    tempfile.TemporaryDirectory(prefix="trailkeeper-bench-key-") as keys:
                run = one_run(url, events, args.batch, mode == "on", Path(keys))
            runs.append(run)
            log(f"round {round_} digests {mode}: submit {run['submit_cpu_us_per_event']} CPU"
                f" µs/event; build {run['build_events_per_s']:,}/s,"
                f" {run['build_cpu_us_per_event']} CPU µs/event; verified {run['verified']}")

    def median(mode: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs if r["mode"] == mode))

    submit_delta = median("on", "submit_cpu_us_per_event") - median("off",
                                                                     "submit_cpu_us_per_event")
    build_delta = median("on", "build_cpu_us_per_event") - median("off",
                                                                  "build_cpu_us_per_event")
    emit({
        "benchmark": "integrity_digests",
        "backend": args.backend,
        "events": args.events,
        "batch_events": args.batch,
        "machine": machine(args.backend, args.pg_url),
        "submit_cpu_us_per_event": {m: median(m, "submit_cpu_us_per_event") for m in MODES},
        "build_cpu_us_per_event": {m: median(m, "build_cpu_us_per_event") for m in MODES},
        "build_events_per_s": {m: median(m, "build_events_per_s") for m in MODES},
        "digest_cost_at_submit_cpu_us": round(submit_delta, 2),
        "saved_by_the_builder_cpu_us": round(-build_delta, 2),
        "hashing_cpu_us_per_event": {
            m: round(median(m, "build_cpu_us_per_event")
                     + (submit_delta if m == "on" else 0.0), 2) for m in MODES},
        "all_verified": all(r["verified"] for r in runs),
        "runs": runs,
    })


if __name__ == "__main__":
    main()
