"""`Detector`: the rules over a stream of stored events, as alerts to record.

One code path for the live consumer and for `rules hunt`, so that a hunt over history finds
the alerts the live path would have found: each event in id order goes through the
single-event engine; rules that alert on their own give one alert per event, and the
matches also feed the correlations, whose hits give one alert per window. Deterministic: the
same events in the same order give the same alerts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from trailkeeper.alerts.model import AlertOrigin, NewAlert
from trailkeeper.detection.correlation import CorrelationHit, Correlator
from trailkeeper.detection.document import matchable
from trailkeeper.detection.engine import Engine
from trailkeeper.detection.model import LoadedRule, RuleSet
from trailkeeper.storage.base import StoredEvent


class Detector:
    """Matches events against a rule set; `process` returns the alerts to record."""

    def __init__(self, ruleset: RuleSet, *, origin: AlertOrigin = "live") -> None:
        self.ruleset = ruleset
        self.origin: AlertOrigin = origin
        self.engine = Engine(ruleset.rules)
        self.correlator = Correlator(ruleset.correlations)
        self.events_seen = 0
        self.matches = 0

    @property
    def rule_count(self) -> int:
        return len(self.ruleset.rules) + len(self.ruleset.correlations)

    @property
    def window_ms(self) -> int:
        """How far back a restart must replay to rebuild the correlation windows."""
        return self.correlator.max_timespan_ms if self.ruleset.correlations else 0

    def document(self, event: StoredEvent) -> dict[str, Any]:
        doc: dict[str, Any] = orjson.loads(event.doc)
        doc["id"] = event.id
        return matchable(doc)

    def process(self, events: Iterable[StoredEvent]) -> list[NewAlert]:
        """The alerts these events raise, in order."""
        alerts: list[NewAlert] = []
        for event in events:
            doc = self.document(event)
            matched = self.engine.match(doc)
            self.events_seen += 1
            if not matched and not self.ruleset.correlations:
                continue
            self.matches += len(matched)
            alerts.extend(self._rule_alert(rule, event) for rule in matched if rule.generate)
            if self.ruleset.correlations:
                hits = self.correlator.observe(matched, doc, event.id, event.timestamp_ms)
                alerts.extend(self._hit_alert(hit, event) for hit in hits)
        return alerts

    def warm_up(self, events: Iterable[StoredEvent]) -> None:
        """Feed events already processed (before a restart) to the correlations only, to
        rebuild their windows; the alerts they raised were recorded then."""
        if not self.ruleset.correlations:
            return
        for event in events:
            doc = self.document(event)
            self.events_seen += 1
            self.correlator.observe(self.engine.match(doc), doc, event.id, event.timestamp_ms)

    def _rule_alert(self, rule: LoadedRule, event: StoredEvent) -> NewAlert:
        return NewAlert(rule_id=rule.id, rule_title=rule.title, level=rule.level,
                        timestamp_ms=event.timestamp_ms, trigger_id=event.id,
                        event_ids=(event.id,), tags=rule.tags, origin=self.origin)

    def _hit_alert(self, hit: CorrelationHit, event: StoredEvent) -> NewAlert:
        rule = hit.correlation
        return NewAlert(rule_id=rule.id, rule_title=rule.title, level=rule.level,
                        timestamp_ms=event.timestamp_ms, trigger_id=event.id,
                        event_ids=hit.event_ids, group=hit.group, tags=rule.tags,
                        origin=self.origin)
