"""Sigma correlations alone: events/s through `Correlator.observe` for a realistic mix.

Four correlations (pySigma-parsed YAML) over two base rules, grouped by ``author.name``:
many failed logins (event_count, >= 10 in 5m), logins from many sources (value_count, >= 5
distinct in 1h), a failed/successful login pair (temporal, 15m) and "many failed logins, then a
success" (temporal_ordered over the first one, 1h: a chain). ``--events`` (500,000) file-shape
events from ``--authors`` (10,000) users, 50 ms apart in event time (about 7 hours) with 2%
arriving up to 10 minutes late. ``--failed`` (10%) match the failed-login rule (30% of them
aimed at 10 attacked users), ``--succeeded`` (20%) the successful-login one, the rest match
nothing (the caller's engine decides that, so the matched lists are built before the clock
starts). Best of ``--repeat`` runs, each on a fresh
correlator. No target in the issue; the matching target is >= 200,000 events/s.

``hits`` counts correlation hits, not alerts: a window is kept after a hit, so every event
that enters it while the condition holds is a hit again (the alert throttle merges the hits
of one rule and group into one alert); a hit lists at most 1,000 event ids.

Usage: ``.venv/bin/python bench/sigma_correlation.py [--events 500000] [--authors 10000]``
"""

from __future__ import annotations

import gc
import random
import time
from typing import Any

from benchlib import emit, log, machine, parser
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule

from trailkeeper.detection.correlation import Correlator
from trailkeeper.detection.model import LoadedCorrelation, LoadedRule

RULES = """
title: Failed login
name: failed_login
logsource: {product: bitbucket, service: audit}
detection: {sel: {auditType.action: Login failed}, condition: sel}
---
title: Successful login
name: successful_login
logsource: {product: bitbucket, service: audit}
detection: {sel: {auditType.action: Login succeeded}, condition: sel}
---
title: Many failed logins
name: many_failed_logins
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [author.name]
  timespan: 5m
  condition: {gte: 10}
---
title: Logins from many sources
name: many_sources
correlation:
  type: value_count
  rules: [failed_login, successful_login]
  group-by: [author.name]
  timespan: 1h
  condition: {gte: 5, field: source}
---
title: Failed and successful login
name: failed_and_succeeded
correlation:
  type: temporal
  rules: [failed_login, successful_login]
  group-by: [author.name]
  timespan: 15m
---
title: Success after many failed logins
name: brute_force_success
correlation:
  type: temporal_ordered
  rules: [many_failed_logins, successful_login]
  group-by: [author.name]
  timespan: 1h
  generate: true
"""


def load() -> tuple[dict[str, LoadedRule], list[LoadedCorrelation]]:
    collection = SigmaCollection.from_yaml(RULES)
    collection.resolve_rule_references()
    rules: dict[str, LoadedRule] = {}
    correlations: list[LoadedCorrelation] = []
    for r in collection:
        assert r.name is not None
        if isinstance(r, SigmaRule):
            rules[r.name] = LoadedRule(id=r.name, title=r.title, sigma=r, name=r.name)
        elif isinstance(r, SigmaCorrelationRule):
            correlations.append(LoadedCorrelation(id=r.name, title=r.title, sigma=r,
                                                  name=r.name))
    return rules, correlations


def workload(args: Any, rules: dict[str, LoadedRule]) -> list[tuple[list[LoadedRule],
                                                                    dict[str, Any], int, int]]:
    rnd = random.Random(7)
    authors = [f"user{i:05d}" for i in range(args.authors)]
    # a few users are attacked: their failed logins come in bursts
    hot = authors[:10]
    failed, succeeded = [rules["failed_login"]], [rules["successful_login"]]
    out = []
    clock = 1_700_000_000_000
    for event_id in range(1, args.events + 1):
        clock += 50
        ts = clock - rnd.randrange(600_000) if rnd.random() < 0.02 else clock
        roll = rnd.random()
        if roll < args.failed:
            matched, action = failed, "Login failed"
            user = rnd.choice(hot) if rnd.random() < 0.3 else rnd.choice(authors)
        elif roll < args.failed + args.succeeded:
            matched, action, user = succeeded, "Login succeeded", rnd.choice(authors)
        else:
            matched, action, user = [], "Repository viewed", rnd.choice(authors)
        doc = {"auditType": {"action": action, "category": "Authentication"},
               "author": {"name": user, "type": "NORMAL", "id": event_id % 9973},
               "source": f"10.0.{rnd.randrange(4)}.{rnd.randrange(8)}",
               "affectedObjects": [{"type": "USER", "name": user}]}
        out.append((matched, doc, event_id, ts))
    return out


def main() -> None:
    p = parser(__doc__.split("\n", 1)[0])  # --backend and the rest are accepted, unused
    p.add_argument("--events", type=int, default=500_000)
    p.add_argument("--authors", type=int, default=10_000)
    p.add_argument("--failed", type=float, default=0.10)
    p.add_argument("--succeeded", type=float, default=0.20)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    rules, correlations = load()
    log(f"building {args.events:,} events from {args.authors:,} authors")
    events = workload(args, rules)
    matched_events = sum(1 for m, *_ in events if m)
    best, hits_by = float("inf"), {}
    correlator = Correlator(correlations)
    for run in range(args.repeat):
        correlator = Correlator(correlations)
        hits: dict[str, int] = {c.id: 0 for c in correlations}
        gc.collect()
        began = time.perf_counter()
        observe = correlator.observe
        for matched, doc, event_id, ts in events:
            for hit in observe(matched, doc, event_id, ts):
                hits[hit.correlation.id] += 1
        elapsed = time.perf_counter() - began
        log(f"run {run + 1}: {args.events / elapsed:,.0f} events/s")
        best, hits_by = min(best, elapsed), hits
    emit({"benchmark": "sigma_correlation", "machine": machine("none", ""),
          "events": args.events, "authors": args.authors, "correlations": len(correlations),
          "matched_events": matched_events,
          "events_per_s": round(args.events / best),
          "matched_events_per_s": round(matched_events / best),
          "us_per_matched_event": round(best / max(matched_events, 1) * 1e6, 3),
          "hits": hits_by, "state_entries": correlator.state_size(),
          "groups_evicted": correlator.evicted, "targets": []})


if __name__ == "__main__":
    main()
