"""Timestamps: parsed from the three accepted forms, stored as epoch milliseconds (UTC).

Accepted on input: an ISO-8601 string in UTC (``Z`` or ``+00:00``), epoch milliseconds as an
integer, or the Atlassian file form ``{"epochSecond": s, "nano": n}``. Precision is the
millisecond, as in Atlassian's store; finer digits are truncated.
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

MIN_MS = 0  # 1970-01-01
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_FORMS = "must be an ISO-8601 UTC string, epoch milliseconds or {epochSecond, nano}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_timestamp(value: Any) -> int:
    """Epoch milliseconds from any accepted form; `ValueError` says what is wrong."""
    if isinstance(value, bool):
        raise ValueError(_FORMS)
    if isinstance(value, int):
        return _check_range(value)
    if isinstance(value, str):
        return parse_iso(value)
    if isinstance(value, dict):
        return _parse_epoch_nano(value)
    raise ValueError(_FORMS)


def parse_iso(text: str) -> int:
    """Epoch ms from an ISO-8601 instant that states UTC explicitly."""
    if not text or len(text) > 40:
        raise ValueError(f"{text!r} is not an ISO-8601 timestamp")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 timestamp") from None
    if "T" not in text.upper() and " " not in text:
        raise ValueError(f"{text!r} has no time of day; give e.g. 2024-01-31T12:00:00Z")
    offset = parsed.utcoffset()
    if offset is None:
        raise ValueError(f"{text!r} has no time zone; give UTC with a 'Z' suffix")
    if offset != timedelta(0):
        raise ValueError(f"{text!r} is not UTC; give UTC with a 'Z' suffix")
    return datetime_to_ms(parsed)


def _parse_epoch_nano(value: dict[str, Any]) -> int:
    extra = set(value) - {"epochSecond", "nano"}
    if extra:
        raise ValueError(f"unexpected key(s) {sorted(extra)} in {{epochSecond, nano}}")
    seconds = value.get("epochSecond")
    nano = value.get("nano", 0)
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise ValueError("epochSecond must be an integer")
    if not isinstance(nano, int) or isinstance(nano, bool) or not 0 <= nano < 1_000_000_000:
        raise ValueError("nano must be an integer from 0 to 999999999")
    return _check_range(seconds * 1000 + nano // 1_000_000)


def _check_range(ms: int) -> int:
    if not MIN_MS <= ms <= MAX_MS:
        raise ValueError(f"{ms} is outside 1970-01-01..9999-12-31 in epoch milliseconds")
    return ms


def datetime_to_ms(moment: datetime) -> int:
    """Epoch ms of an aware datetime (naive ones are refused: their zone is a guess)."""
    if moment.tzinfo is not UTC and (moment.tzinfo is None or moment.utcoffset() is None):
        raise ValueError("datetime must be timezone-aware (UTC)")
    return _check_range((moment - _EPOCH) // _ONE_MS)


def ms_to_datetime(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def format_iso(ms: int) -> str:
    """As Java's ``ISO_INSTANT`` prints: ``…:53.360Z``, or ``…:53Z`` at whole seconds."""
    days, ms_of_day = divmod(ms, 86_400_000)
    seconds, millis = divmod(ms_of_day, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    two = _TWO_DIGITS
    return (f"{_date(_EPOCH_ORDINAL + days)}{two[hour]}:{two[minute]}:{two[second]}"
            f"{_FRACTIONS[millis]}Z")


def format_instant(moment: datetime) -> str:
    """`format_iso` of an aware datetime, without the detour through epoch ms (it is on the
    ingest path)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    two = _TWO_DIGITS
    return (f"{_date(moment.toordinal())}{two[moment.hour]}:{two[moment.minute]}:"
            f"{two[moment.second]}{_FRACTIONS[moment.microsecond // 1000]}Z")


def ms_and_iso(moment: datetime) -> tuple[int, str]:
    """`datetime_to_ms` and `format_instant` at once: storing an event needs both, and
    they share the reading of the datetime's fields (half the cost of the two calls)."""
    if moment.tzinfo is not UTC:
        datetime_to_ms(moment)  # refuses a naive datetime
        moment = moment.astimezone(UTC)
    ordinal, hour, minute, second = moment.toordinal(), moment.hour, moment.minute, moment.second
    millis = moment.microsecond // 1000
    ms = ((((ordinal - _EPOCH_ORDINAL) * 24 + hour) * 60 + minute) * 60 + second) * 1000 + millis
    two = _TWO_DIGITS
    return _check_range(ms), (f"{_date(ordinal)}{two[hour]}:{two[minute]}:{two[second]}"
                              f"{_FRACTIONS[millis]}Z")


# Rendering indexes these tables: formatting numbers (strftime, isoformat, ``:02d``) cost
# three times as much, and timestamps are rendered for every event stored or exported.
_EPOCH_ORDINAL = _EPOCH.toordinal()
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(100))
_FRACTIONS = ("", *(f".{n:03d}" for n in range(1, 1000)))  # none at whole seconds


@functools.lru_cache(maxsize=4096)
def _date(ordinal: int) -> str:
    return f"{date.fromordinal(ordinal).isoformat()}T"


def to_epoch_nano(ms: int) -> dict[str, int]:
    seconds, millis = divmod(ms, 1000)
    return {"epochSecond": seconds, "nano": millis * 1_000_000}
