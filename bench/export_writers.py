"""The export writers alone: µs per event of each format, over stored demo documents.

Rows are built once, in memory, from the demo generator (`trailkeeper.demo.demo_events`,
encoded as the store encodes them), so the figures are the writers' own cost: no store, no
network. Each format runs over all rows ``--repeat`` times and the best run counts (the
machine is shared; the best run is the least disturbed). The end-to-end target (export of
1,000,000 events >= 100,000 events/s, reading included) leaves the writers well under
10 µs an event; NDJSON and CSV aim at <= 5 µs.

Usage: ``.venv/bin/python bench/export_writers.py [--events 100000] [--repeat 3]``
"""

from __future__ import annotations

import gc
import itertools
import time
from typing import Any

from benchlib import emit, log, machine, parser, target

from trailkeeper.demo import demo_events
from trailkeeper.export.documents import decode
from trailkeeper.export.formats import FORMATS, ExportOptions, export, format_named
from trailkeeper.model.event import AuditAuthor
from trailkeeper.query.fields import Field, resolve
from trailkeeper.storage.base import StoredEvent
from trailkeeper.storage.rows import encode

END_MS = 1_717_200_000_000  # 2024-06-01T00:00:00Z, as the read benchmark's store
# bfauditlog's example 7: -f audit.class,audit.type,audit.target,audit.user,audit.stamp
BFAUDITLOG_FIELDS = ("audit.class", "audit.type", "audit.target", "audit.user", "audit.stamp")
TARGET_US = {"ndjson": 5.0, "csv": 5.0}


def build_rows(count: int) -> list[StoredEvent]:
    rows = []
    events = demo_events(count, end_ms=END_MS, seed=7)
    for n, event in enumerate(itertools.islice(events, count), start=1):
        new = encode(event, END_MS, AuditAuthor.SYSTEM)
        rows.append(StoredEvent(n, new.timestamp_ms, new.doc))
    return rows


def best_run(rows: list[StoredEvent], fmt: str, options: ExportOptions,
             repeat: int) -> tuple[float, int]:
    """The fastest of ``repeat`` full exports (seconds) and the bytes one writes."""
    best = float("inf")
    written = 0
    for _ in range(repeat):
        gc.collect()
        began = time.perf_counter()
        written = sum(len(chunk) for chunk in export(rows, format_named(fmt), options))
        best = min(best, time.perf_counter() - began)
    return best, written


def floor(rows: list[StoredEvent], repeat: int) -> dict[str, float]:
    """What any writer pays at least: decoding the document, or splicing the id in."""
    figures = {}
    for name, step in (("decode_doc", lambda r: decode(r.doc)),
                       ("rest_json", StoredEvent.rest_json)):
        best = float("inf")
        for _ in range(repeat):
            began = time.perf_counter()
            for row in rows:
                step(row)
            best = min(best, time.perf_counter() - began)
        figures[f"{name}_us_per_event"] = round(best / len(rows) * 1e6, 3)
    return figures


def main() -> None:
    p = parser(__doc__.split("\n", 1)[0])  # --backend and the rest are accepted, unused
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    result: dict[str, Any] = {"benchmark": "export_writers", "machine": machine("none", ""),
                              "events": args.events, "repeat": args.repeat}
    log(f"building {args.events:,} stored demo documents")
    rows = build_rows(args.events)
    result["doc_bytes_mean"] = round(sum(len(r.doc) for r in rows) / len(rows), 1)
    chosen: tuple[Field, ...] = tuple(f for f in map(resolve, BFAUDITLOG_FIELDS) if f)
    runs = [(fmt, "default", ExportOptions(total=len(rows))) for fmt in FORMATS]
    runs += [(fmt, "bfauditlog_fields", ExportOptions(fields=chosen, total=len(rows)))
             for fmt in ("csv", "ndjson", "text")]
    writers: dict[str, Any] = {}
    targets = []
    for fmt, columns, options in runs:
        seconds, written = best_run(rows, fmt, options, args.repeat)
        us = round(seconds / len(rows) * 1e6, 3)
        log(f"  {fmt:7} {columns:18} {us:7.3f} µs/event")
        writers[f"{fmt}_{columns}"] = {
            "us_per_event": us,
            "events_per_s": round(len(rows) / seconds),
            "bytes_per_event": round(written / len(rows), 1),
        }
        if columns == "default" and fmt in TARGET_US:
            targets.append(target(f"{fmt}_us_per_event", us, TARGET_US[fmt], at_least=False))
    result["writers"] = writers
    result["floor"] = floor(rows, args.repeat)
    result["targets"] = targets
    emit(result)


if __name__ == "__main__":
    main()
