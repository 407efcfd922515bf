"""The chart of events over time: its windows, and the bars the page draws as inline SVG.

The counts come from `Storage.histogram` (SQL, with the page's own condition and scope);
this module only chooses round windows for a time range and lays out the bars. Each bar is
a link to the same view zoomed to its window. Pure: no store, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from trailkeeper.model.timestamps import format_iso, ms_to_datetime

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
STEPS = (MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
         DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 365 * DAY)
MAX_BARS = 61  # an hour of minutes, wherever it starts
WIDTH, HEIGHT = 1000, 120  # the SVG's coordinate system (it scales to the page)
_GAP = 0.15  # of a bar's slot


@dataclass(frozen=True, slots=True)
class Windows:
    """``count`` consecutive windows of ``step_ms`` from ``start_ms`` (UTC-aligned)."""

    start_ms: int
    step_ms: int
    count: int

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.step_ms * self.count


def windows(first_ms: int, end_ms: int) -> Windows:
    """The finest round windows (aligned to their size) that cover ``first_ms``
    (inclusive) to ``end_ms`` (exclusive) in at most `MAX_BARS` bars."""
    end_ms = max(end_ms, first_ms + 1)

    def span(step: int) -> Windows:
        start = first_ms - first_ms % step
        return Windows(start, step, math.ceil((end_ms - start) / step))

    for step in STEPS:
        found = span(step)
        if found.count <= MAX_BARS:
            return found
    # Centuries: whole years, as many as needed per bar.
    return span(STEPS[-1] * math.ceil((end_ms - first_ms) / STEPS[-1] / (MAX_BARS - 1)))


def describe_step(step_ms: int) -> str:
    """``1 hour``, ``15 minutes``, ``7 days``."""
    for unit, name in ((DAY, "day"), (HOUR, "hour"), (MINUTE, "minute")):
        if step_ms % unit == 0:
            n = step_ms // unit
            return f"{n} {name}{'s' if n != 1 else ''}"
    return f"{step_ms} ms"


def moment(ms: int, step_ms: int) -> str:
    """A window boundary in UTC, to the precision of the windows."""
    text = ms_to_datetime(ms).strftime("%Y-%m-%d %H:%M")
    return text[:10] if step_ms % DAY == 0 else text


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    y: float
    height: float
    count: int
    start_ms: int
    end_ms: int
    label: str  # "2024-05-31 10:00 to 11:00 UTC: 1,234 events"
    href: str | None  # the view zoomed to this window (None for an empty one)


@dataclass(frozen=True, slots=True)
class Chart:
    bars: list[Bar]
    total: int
    peak: int
    step: str
    first: str
    last: str
    width: int = WIDTH
    height: int = HEIGHT


def build(span: Windows, counts: Sequence[int], zoom: Callable[[str, str], str]) -> Chart:
    """The bars of ``counts`` (one per window); ``zoom(from_iso, to_iso)`` is the link of a
    window (``to`` inclusive, to the millisecond)."""
    peak = max(counts, default=0)
    slot = WIDTH / max(span.count, 1)
    bars = []
    for index, count in enumerate(counts):
        start = span.start_ms + index * span.step_ms
        end = start + span.step_ms
        height = 0.0 if not count else max(2.0, HEIGHT * count / peak)
        label = (f"{moment(start, span.step_ms)} to {moment(end, span.step_ms)} UTC: "
                 f"{count:,} event{'s' if count != 1 else ''}")
        bars.append(Bar(
            x=round(index * slot + slot * _GAP / 2, 2), width=round(slot * (1 - _GAP), 2),
            y=round(HEIGHT - height, 2), height=round(height, 2), count=count,
            start_ms=start, end_ms=end, label=label,
            href=zoom(format_iso(start), format_iso(end - 1)) if count else None))
    return Chart(bars, sum(counts), peak, describe_step(span.step_ms),
                 moment(span.start_ms, span.step_ms), moment(span.end_ms, span.step_ms))
