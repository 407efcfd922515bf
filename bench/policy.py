"""The audit policy alone: µs per event of `Policy.screen` (denylist, coverage, redaction).

Events come from the demo generator (varied actions, objects, changed values, attributes),
plus variants that exercise each branch: an event on the denylist, one above its area's
coverage, and one whose values must be hashed (a sensitive key and an over-long value).
The policy is the default one with a 1,000-action denylist (Atlassian's maximum), so the
set lookup is realistic. Best of ``--repeat`` runs. Target (issue 5): <= 5 µs per event.

Usage: ``.venv/bin/python bench/policy.py [--events 100000] [--repeat 5]``
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import time
from collections.abc import Callable
from typing import Any

from benchlib import emit, log, machine, parser, target

from trailkeeper.demo import demo_events
from trailkeeper.governance.config import GovernanceConfig
from trailkeeper.governance.policy import Policy
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import AuditAttribute, AuditEvent, ChangedValue

TARGET_US = 5.0


def variants(events: list[AuditEvent]) -> dict[str, list[AuditEvent]]:
    """The demo events as they are, and turned into each kind the policy treats apart."""
    def denied(e: AuditEvent) -> AuditEvent:
        return dataclasses.replace(e, type=dataclasses.replace(e.type, action="Denied 7"))

    def detailed(e: AuditEvent) -> AuditEvent:
        return dataclasses.replace(e, type=dataclasses.replace(
            e.type, area=CoverageArea.SECURITY, level=CoverageLevel.FULL))

    def secret(e: AuditEvent) -> AuditEvent:
        return dataclasses.replace(
            e, changed_values=(*e.changed_values, ChangedValue("password", "old", "new")),
            extra_attributes=(*e.extra_attributes, AuditAttribute("Body", "x" * 2000)))

    return {"demo_mix": events, "denylisted": [denied(e) for e in events],
            "above_coverage": [detailed(e) for e in events],
            "redacted": [secret(e) for e in events]}


def best_us(step: Callable[[AuditEvent], Any], events: list[AuditEvent], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        began = time.perf_counter()
        for event in events:
            step(event)
        best = min(best, time.perf_counter() - began)
    return round(best / len(events) * 1e6, 3)


def main() -> None:
    p = parser(__doc__.split("\n", 1)[0])  # --backend and the rest are accepted, unused
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    log(f"building {args.events:,} demo events")
    events = list(itertools.islice(demo_events(args.events, seed=7), args.events))
    config = GovernanceConfig(
        coverage={area: CoverageLevel.ADVANCED for area in CoverageArea},
        denylist=frozenset(f"Denied {n}" for n in range(1000)))
    policy = Policy(config)
    figures = {}
    for name, batch in variants(events).items():
        figures[f"{name}_us_per_event"] = best_us(policy.screen, batch, args.repeat)
        log(f"{name}: {figures[f'{name}_us_per_event']} µs/event")
    worst = max(v for k, v in figures.items() if k != "redacted_us_per_event")
    emit({"benchmark": "policy", "machine": machine("none", ""), "events": args.events,
          **figures,
          "targets": [target("policy µs per event (demo mix, denied, skipped)", worst,
                             TARGET_US, at_least=False),
                      target("policy µs per event when values are hashed",
                             figures["redacted_us_per_event"], TARGET_US, at_least=False)]})


if __name__ == "__main__":
    main()
