"""What an alert action is: something that delivers one alert somewhere (e-mail, a signed
webhook, syslog), and the message it delivers.

A dispatcher (`trailkeeper.alerts.dispatch`) reads new alerts in id order by a durable
cursor per action, routes each to the actions whose rules, tags or level match, and calls
`Action.deliver`; a `DeliveryError` with ``retryable`` set is retried with back-off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from trailkeeper.alerts.model import AlertRecord
from trailkeeper.model.timestamps import format_iso


class DeliveryError(Exception):
    """The action could not deliver. ``retryable``: try again later (the receiver was
    down or busy); otherwise the alert is given up for this action and logged.
    ``retry_after_s``: the receiver asked for this pause (HTTP ``Retry-After``)."""

    def __init__(self, message: str, *, retryable: bool = True,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class AlertMessage:
    """An alert with what a reader needs to act on it: the first matched events (REST
    shape, with ``id``) and a link to it in the web UI when a public URL is configured."""

    alert: AlertRecord
    events: list[dict[str, Any]] = field(default_factory=list)
    link: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON body of webhooks and syslog alert messages (`docs/detection.md`)."""
        a = self.alert
        return {
            "id": a.id,
            "rule_id": a.rule_id,
            "rule_title": a.rule_title,
            "level": a.level,
            "tags": list(a.tags),
            "timestamp": format_iso(a.timestamp_ms),
            "last_timestamp": format_iso(a.last_ms),
            "event_ids": list(a.event_ids),
            "group": a.group,
            "count": a.count,
            "status": a.status,
            "link": self.link,
            "events": self.events,
        }


class Action(Protocol):
    """One configured action (``[[action]]`` in trailkeeper.toml)."""

    @property
    def name(self) -> str:
        """Unique among actions: the key of its cursor (``alert-action:<name>``)."""
        ...

    def deliver(self, message: AlertMessage) -> None:
        """Deliver or raise `DeliveryError`; must not log secrets or message bodies at
        INFO or above."""
        ...

    def close(self) -> None: ...
