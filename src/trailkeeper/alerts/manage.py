"""What the API and the CLI do with stored alerts: show them and acknowledge them.

An acknowledgement is a management change, recorded as "Alert acknowledged" (AUDIT_LOG,
BASE) naming each alert it closed, authored by whoever acknowledged (a user of the API, or
the operating-system user of ``trailkeeper alerts ack``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trailkeeper.alerts.model import AlertRecord
from trailkeeper.auth.audit_events import Actor, Trail
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import (
    MAX_NAME,
    NOT_ONE_LINE,
    AuditAttribute,
    AuditEvent,
    AuditResource,
    AuditType,
)
from trailkeeper.model.timestamps import format_iso
from trailkeeper.storage.base import Storage

ALERT_ACKNOWLEDGED = AuditType(
    "Alerts", "Alert acknowledged", CoverageArea.AUDIT_LOG, CoverageLevel.BASE,
    category_i18n_key="trailkeeper.audit.category.alerts",
    action_i18n_key="trailkeeper.audit.action.alerts.alertacknowledged")

# The most alerts one acknowledgement may name (the bulk API's limit too).
MAX_ACKNOWLEDGE = 1000


def alert_json(alert: AlertRecord) -> dict[str, Any]:
    """An alert as ``/api/v1/alerts`` and ``trailkeeper alerts --json`` show it."""
    return {
        "id": alert.id,
        "rule_id": alert.rule_id,
        "rule_title": alert.rule_title,
        "level": alert.level,
        "tags": list(alert.tags),
        "timestamp": format_iso(alert.timestamp_ms),
        "last_timestamp": format_iso(alert.last_ms),
        "created": format_iso(alert.created_ms),
        "event_ids": list(alert.event_ids),
        "group": alert.group,
        "count": alert.count,
        "status": alert.status,
        "origin": alert.origin,
        "acknowledged_by": alert.acknowledged_by,
        "acknowledged_at": (format_iso(alert.acknowledged_ms)
                            if alert.acknowledged_ms is not None else None),
    }


def alert_acknowledged(actor: Actor, alerts: Sequence[AlertRecord]) -> AuditEvent:
    """The record of an acknowledgement: one ALERT object per alert it closed."""
    return AuditEvent(
        type=ALERT_ACKNOWLEDGED, author=actor.author, source=actor.source, method=actor.method,
        affected_objects=[AuditResource("ALERT", _name(a), id=str(a.id)) for a in alerts],
        extra_attributes=[AuditAttribute("Alerts acknowledged", str(len(alerts)))])


def _name(alert: AlertRecord) -> str:
    """The rule's title as an object name: one line, bounded, never blank."""
    name = NOT_ONE_LINE.sub("?", alert.rule_title[:MAX_NAME]).strip()
    return name or f"alert {alert.id}"


def acknowledge(storage: Storage, ids: Sequence[int], *, by: str, now_ms: int,
                trail: Trail) -> int:
    """Acknowledge the open ones of ``ids``; how many changed. Recorded when any did."""
    count = storage.acknowledge_alerts(ids, by, now_ms)
    if count:
        # The alerts this call closed: acknowledged by ``by`` at ``now_ms`` (a concurrent
        # acknowledgement of the same alert would have left it unchanged here).
        closed = [a for a in (storage.get_alert(i) for i in sorted(set(ids)))
                  if a is not None and a.acknowledged_by == by and a.acknowledged_ms == now_ms]
        trail.add(alert_acknowledged(trail.actor, closed))
    return count
