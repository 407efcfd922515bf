"""`hunt`: the rules over stored history, as `trailkeeper rules hunt` runs them.

The events of a time range are read in id order, the order the live consumer saw them in,
and go through the same `Detector`; so a hunt finds the alerts the live path would have
found (correlation windows start empty at the range's start). Alerts are recorded with
origin ``hunt``; one that the live path (or an earlier hunt) recorded already — the same
rule on the same trigger event — is not recorded twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace

from trailkeeper.alerts.model import NewAlert
from trailkeeper.detection.detector import Detector
from trailkeeper.detection.model import LoadedCorrelation, LoadedRule, RuleSet
from trailkeeper.errors import BadRequestError
from trailkeeper.query.ast import And, Compare, Node
from trailkeeper.storage.base import Storage, StoredEvent

BATCH = 1000


@dataclass
class HuntReport:
    events: int = 0
    alerts: list[NewAlert] = field(default_factory=list)
    created: list[int] = field(default_factory=list)  # ids of alerts recorded now
    seconds: float = 0.0


def _names(rule: LoadedRule | LoadedCorrelation) -> set[str]:
    return {n.casefold() for n in (rule.id, rule.name, rule.title) if n}


def select(ruleset: RuleSet, wanted: Collection[str]) -> RuleSet:
    """The rules named (by id, name or title; case-insensitive) and what their correlations
    need; the rules a selected correlation refers to raise no alert of their own unless
    they were selected too. `BadRequestError` names any name that matches nothing."""
    if not wanted:
        return ruleset
    keys = {w.casefold() for w in wanted}
    everything: list[LoadedRule | LoadedCorrelation] = [*ruleset.rules, *ruleset.correlations]
    unknown = sorted(w for w in wanted if not any(w.casefold() in _names(r) for r in everything))
    if unknown:
        raise BadRequestError(f"no loaded rule is called {', '.join(map(repr, unknown))}")
    chosen_corr = [c for c in ruleset.correlations if _names(c) & keys]
    needed = _referenced(chosen_corr, ruleset)
    rules = [r if _names(r) & keys else replace(r, generate=False)
             for r in ruleset.rules if _names(r) & keys or r.id in needed]
    correlations = [c if _names(c) & keys else replace(c, generate=False)
                    for c in ruleset.correlations if _names(c) & keys or c.id in needed]
    return RuleSet(rules, correlations, list(ruleset.problems))


def _referenced(correlations: list[LoadedCorrelation], ruleset: RuleSet) -> set[str]:
    """Ids of every rule and correlation the given correlations need, transitively."""
    by_name: dict[str, LoadedRule | LoadedCorrelation] = {}
    everything: list[LoadedRule | LoadedCorrelation] = [*ruleset.rules, *ruleset.correlations]
    for r in everything:
        for n in (r.id, r.name):
            if n:
                by_name[n] = r
    needed: set[str] = set()
    todo = list(correlations)
    while todo:
        correlation = todo.pop()
        for ref in correlation.sigma.rules or ():
            target = by_name.get(str(ref.reference))
            if target is not None and target.id not in needed:
                needed.add(target.id)
                if isinstance(target, LoadedCorrelation):
                    todo.append(target)
    return needed


def time_range(from_ms: int | None, to_ms: int | None) -> Node:
    parts: list[Node] = [Compare("id", ">", 0)]
    if from_ms is not None:
        parts.append(Compare("timestamp", ">=", from_ms))
    if to_ms is not None:
        parts.append(Compare("timestamp", "<", to_ms))
    return And(tuple(parts))


def _batches(events: Iterator[StoredEvent]) -> Iterator[list[StoredEvent]]:
    batch: list[StoredEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def hunt(storage: Storage, ruleset: RuleSet, *, from_ms: int | None = None,
         to_ms: int | None = None, throttle_ms: int = 0, record: bool = True,
         progress: Callable[[int], None] | None = None,
         clock: Callable[[], float] = time.time) -> HuntReport:
    """Run ``ruleset`` over the events of [from_ms, to_ms) in id order; ``record`` stores
    the alerts (origin ``hunt``); ``progress`` is called with each batch's size."""
    started = time.monotonic()
    detector = Detector(ruleset, origin="hunt")
    report = HuntReport()
    events = storage.stream(time_range(from_ms, to_ms), order=(("id", False),))
    for batch in _batches(events):
        alerts = detector.process(batch)
        report.events += len(batch)
        report.alerts.extend(alerts)
        if record and alerts:
            report.created.extend(storage.record_alerts(
                alerts, throttle_ms=throttle_ms, now_ms=int(clock() * 1000)))
        if progress is not None:
            progress(len(batch))
    report.seconds = time.monotonic() - started
    return report
