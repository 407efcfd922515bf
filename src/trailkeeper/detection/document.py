"""The event as rules see it: the Atlassian audit-log FILE shape.

Stored events are in the REST shape (``type`` instead of ``auditType``, an ISO-8601
``timestamp``). `matchable` renames ``type`` to ``auditType``, in place. An ISO ``timestamp``
is left as it is: parsing it costs more than the rest of matching an event, and few rules
read it, so the field lookups do it when a rule asks (`fields.resolver`, `fields.event_strings`
see ``{"epochSecond", "nano"}`` through `epoch_nano`). A dict already in the file shape is
returned unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["epoch_nano", "event_time", "matchable"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_nano(iso: str) -> dict[str, int] | None:
    """An ISO-8601 time as the file shape's ``{"epochSecond", "nano"}`` (UTC when it has no
    offset), or None when it does not parse."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if moment.tzinfo is None:  # the REST shape always has an offset; assume UTC otherwise
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return {"epochSecond": delta.days * 86_400 + delta.seconds,
            "nano": delta.microseconds * 1000}


def matchable(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (REST or file shape) as rules read it, changed in place; returns ``doc``.

    ``type`` becomes ``auditType``; an ISO ``timestamp`` stays a string, which rules see as
    ``{"epochSecond", "nano"}`` (converted when a rule reads it)."""
    if "auditType" not in doc:
        kind = doc.get("type")
        if isinstance(kind, dict):
            doc["auditType"] = doc.pop("type")
    return doc


def event_time(value: Any) -> datetime | None:
    """A timestamp value as an aware UTC datetime: ``{"epochSecond", "nano"}``, an ISO-8601
    string, or epoch seconds (milliseconds when above 10^11); None when it is none of these."""
    try:
        if isinstance(value, dict):
            seconds = value.get("epochSecond")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                return None
            nano = value.get("nano", 0)
            nano = nano if isinstance(nano, int) and not isinstance(nano, bool) else 0
            return datetime.fromtimestamp(seconds + nano / 1e9, UTC)
        if isinstance(value, str):
            moment = datetime.fromisoformat(value)
            return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None
