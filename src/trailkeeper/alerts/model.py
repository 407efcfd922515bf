"""Alerts: what a rule match becomes once stored, and how they are looked up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AlertStatus = Literal["open", "acknowledged"]
AlertOrigin = Literal["live", "hunt"]

# At most this many event ids are kept on one alert (a throttled alert keeps counting).
MAX_EVENT_IDS = 1000


@dataclass(frozen=True)
class NewAlert:
    """A match to record: a rule on one event, or a correlation on a window of events.

    ``trigger_id`` is the event that completed the match (the event itself for a plain
    rule, the last one of the window for a correlation): (``rule_id``, ``trigger_id``) is
    recorded at most once, whichever path (live or hunt) sees it first.
    ``group`` holds the correlation's group-by values (empty for a plain rule); alerts of
    one rule and group within the throttle window are merged into one.
    """

    rule_id: str
    rule_title: str
    level: str | None
    timestamp_ms: int  # the trigger event's time
    trigger_id: int
    event_ids: tuple[int, ...]
    group: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    origin: AlertOrigin = "live"


@dataclass(frozen=True)
class AlertRecord:
    """A stored alert (``/api/v1/alerts``)."""

    id: int
    rule_id: str
    rule_title: str
    level: str | None
    tags: tuple[str, ...]
    timestamp_ms: int  # first trigger event's time
    last_ms: int  # latest merged trigger event's time
    created_ms: int
    event_ids: tuple[int, ...]  # the first MAX_EVENT_IDS
    group: dict[str, str]
    count: int  # matches merged into this alert (1 when not throttled)
    status: AlertStatus
    origin: AlertOrigin
    acknowledged_by: str | None = None
    acknowledged_ms: int | None = None


@dataclass(frozen=True)
class AlertQuery:
    """Filters of `Storage.list_alerts`; newest first, keyset paging by ``before_id``."""

    status: AlertStatus | None = None
    rule_ids: tuple[str, ...] = ()
    min_level: str | None = None  # this level and above
    from_ms: int | None = None  # on timestamp_ms, inclusive
    to_ms: int | None = None  # exclusive
    origin: AlertOrigin | None = None
    before_id: int | None = None
    limit: int = 100
