"""Retention periods: ``{"years":3,"months":0,"days":0}`` on the wire, ISO ``P3Y`` in the store."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_ISO = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?")
_PARTS = ("years", "months", "days")
# A period beyond this is certainly a mistake (and would overflow date arithmetic).
MAX_YEARS = 1000


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar period, as Java's ``java.time.Period`` (years, months, days)."""

    years: int = 0
    months: int = 0
    days: int = 0

    def __post_init__(self) -> None:
        for name in _PARTS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a whole number of 0 or more")
        if self.total_days_estimate() > MAX_YEARS * 366:
            raise ValueError(f"the period may not exceed {MAX_YEARS} years")
        if self.total_days_estimate() == 0:
            raise ValueError("the period must be at least one day")

    def total_days_estimate(self) -> int:
        return self.years * 366 + self.months * 31 + self.days

    @classmethod
    def parse_iso(cls, text: str) -> Period:
        match = _ISO.fullmatch(text)
        if not match or text == "P":
            raise ValueError(f"not an ISO-8601 period: {text!r}")
        years, months, days = (int(g) if g else 0 for g in match.groups())
        return cls(years, months, days)

    @classmethod
    def from_json(cls, body: Any) -> Period:
        """``{"years":3,"months":0,"days":0}``; missing parts are 0. Raises ValueError."""
        if not isinstance(body, dict):
            raise ValueError("period must be an object with years, months and days")
        unknown = sorted(set(body) - set(_PARTS))
        if unknown:
            raise ValueError(f"unknown period field {unknown[0]!r} (use years, months, days)")
        values = {}
        for name in _PARTS:
            value = body.get(name, 0)
            if value is None:
                value = 0
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"period.{name} must be a whole number, not {value!r}")
            if value < 0:
                raise ValueError(f"period.{name} may not be negative")
            if value > MAX_YEARS * 366:
                raise ValueError(f"period.{name} is too large")
            values[name] = value
        return cls(**values)

    def iso(self) -> str:
        text = "P" + "".join(f"{value}{unit}" for value, unit in
                             ((self.years, "Y"), (self.months, "M"), (self.days, "D")) if value)
        return text if text != "P" else "P0D"

    def to_json(self) -> dict[str, int]:
        return {"years": self.years, "months": self.months, "days": self.days}

    def describe(self) -> str:
        """Atlassian's change-record text: ``3 Years``, ``1 Year 6 Months``."""
        words = []
        for value, unit in ((self.years, "Year"), (self.months, "Month"), (self.days, "Day")):
            if value:
                words.append(f"{value} {unit}{'s' if value != 1 else ''}")
        return " ".join(words)

    def before(self, moment: datetime) -> datetime:
        """``moment`` minus this period, calendar-aware (31 March - 1 month = 28/29 February)."""
        month_index = moment.year * 12 + (moment.month - 1) - self.years * 12 - self.months
        year, month = divmod(month_index, 12)
        year = max(year, 1)
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        shifted = moment.replace(year=year, month=month + 1, day=day)
        return shifted - timedelta(days=self.days)

    def cutoff_ms(self, now_ms: int) -> int:
        """Epoch ms before which events have outlived this period (computed in UTC)."""
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        return int(self.before(now).timestamp() * 1000)


DEFAULT_RETENTION = Period(years=3)
