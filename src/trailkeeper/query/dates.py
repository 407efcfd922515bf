"""Time values in queries: dates, instants and date math, each as the span it names.

``2011/05/23`` names a whole day, ``2011-05-23T10:00`` a minute, ``now-7d`` an instant and
``now/d`` today, so ``audit.stamp:[2011/05/23 TO 2011/05/27]`` runs from the start of the
23rd to the end of the 27th, as bfauditlog documents. Dates and times without a zone are
read in the caller's zone (``tz``, UTC by default); an explicit ``Z`` or offset wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from trailkeeper.model.timestamps import MAX_MS, datetime_to_ms, ms_to_datetime

_DATE = re.compile(
    r"(?P<y>\d{4})[/-](?P<mo>\d{1,2})(?:[/-](?P<d>\d{1,2})"
    r"(?:[T ](?P<h>\d{1,2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?)?)?",
    re.IGNORECASE,
)
_MATH = re.compile(r"now(?P<steps>(?:[+-]\d+[yMwdhHms])*)(?:/(?P<round>[yMwdhHms]))?")
_STEP = re.compile(r"([+-])(\d+)([yMwdhHms])")
_FIXED_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1),
                "H": timedelta(hours=1), "m": timedelta(minutes=1), "s": timedelta(seconds=1)}


class TimeValueError(ValueError):
    """A value that is not a date, an instant or date math."""


@dataclass(frozen=True, slots=True)
class Span:
    """Epoch milliseconds from ``start`` (inclusive) to ``end`` (exclusive)."""

    start: int
    end: int


def zone(name: str | None) -> tzinfo:
    """The zone of an IANA name (``Europe/Paris``), or UTC."""
    if not name or name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeValueError(f"unknown time zone {name!r}; give an IANA name such as "
                             "Europe/Berlin") from None


def parse_span(text: str, *, now_ms: int, tz: tzinfo = UTC) -> Span:
    """The span a query's time value names."""
    value = text.strip()
    if value.lower().startswith("now"):
        return _date_math(value, now_ms, tz)
    if value.isdigit() and len(value) > 8:  # epoch milliseconds
        ms = int(value)
        if ms > MAX_MS:
            raise TimeValueError(f"{text!r} is out of range")
        return Span(ms, ms + 1)
    match = _DATE.fullmatch(value)
    if match is None:
        raise TimeValueError(
            f"{text!r} is not a time; give a date (2011/05/23), an ISO-8601 time "
            "(2011-05-23T10:00:00Z), epoch milliseconds or date math (now-7d, now/d)")
    return _date(match, text, tz)


def _date(m: re.Match[str], text: str, tz: tzinfo) -> Span:
    parts = [m["y"], m["mo"], m["d"], m["h"], m["mi"], m["s"]]
    given = sum(p is not None for p in parts)
    fraction = (m["f"] or "").ljust(3, "0")[:3]
    try:
        start = datetime(int(m["y"]), int(m["mo"]), int(m["d"] or 1), int(m["h"] or 0),
                         int(m["mi"] or 0), int(m["s"] or 0), int(fraction or 0) * 1000)
    except ValueError as exc:
        raise TimeValueError(f"{text!r} is not a valid date: {exc}") from None
    zone_text = m["zone"]
    if zone_text:
        start = datetime.fromisoformat(start.isoformat() + ("+00:00" if zone_text.upper() == "Z"
                                                            else _offset(zone_text)))
    else:
        start = start.replace(tzinfo=tz)
    if m["f"]:
        end = start + timedelta(milliseconds=1)
    else:
        end = _add(start, *[("y", 1), ("M", 1), ("d", 1), ("h", 1), ("m", 1), ("s", 1)][given - 1])
    return Span(_ms(start, text), _ms(end, text))


def _offset(text: str) -> str:
    digits = text[1:].replace(":", "")
    return f"{text[0]}{digits[:2]}:{digits[2:]}"


def _date_math(text: str, now_ms: int, tz: tzinfo) -> Span:
    m = _MATH.fullmatch(text)
    if m is None:
        raise TimeValueError(f"{text!r} is not date math; write e.g. now, now-7d, now-1h/h "
                             "(units y M w d h m s)")
    moment = ms_to_datetime(now_ms).astimezone(tz)
    for sign, count, unit in _STEP.findall(m["steps"]):
        moment = _add(moment, unit, int(count) if sign == "+" else -int(count))
    unit = m["round"]
    if unit is None:
        ms = _ms(moment, text)
        return Span(ms, ms + 1)
    start = _round_down(moment, unit)
    return Span(_ms(start, text), _ms(_add(start, unit, 1), text))


def _round_down(moment: datetime, unit: str) -> datetime:
    moment = moment.replace(microsecond=0)
    if unit == "s":
        return moment
    moment = moment.replace(second=0)
    if unit == "m":
        return moment
    moment = moment.replace(minute=0)
    if unit in "hH":
        return moment
    moment = moment.replace(hour=0)
    if unit == "w":
        return moment - timedelta(days=moment.weekday())
    if unit == "d":
        return moment
    moment = moment.replace(day=1)
    return moment if unit == "M" else moment.replace(month=1)


def _add(moment: datetime, unit: str, count: int) -> datetime:
    """Calendar arithmetic: months and years keep the day where they can (Jan 31 + 1M is
    the last day of February); the rest are fixed durations in UTC."""
    if unit in ("y", "M"):
        months = moment.year * 12 + moment.month - 1 + (count * 12 if unit == "y" else count)
        year, month = divmod(months, 12)
        if not 1 <= year <= 9999:
            raise TimeValueError("date math leaves the years 1..9999")
        day = min(moment.day, _days_in(year, month + 1))
        return moment.replace(year=year, month=month + 1, day=day)
    try:
        shifted = moment.astimezone(UTC) + _FIXED_UNITS[unit] * count
    except OverflowError:
        raise TimeValueError("date math leaves the years 1..9999") from None
    return shifted.astimezone(moment.tzinfo)


def _days_in(year: int, month: int) -> int:
    following = datetime(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _ms(moment: datetime, text: str) -> int:
    try:
        return datetime_to_ms(moment)
    except ValueError:
        raise TimeValueError(f"{text!r} is before 1970 or after 9999") from None
