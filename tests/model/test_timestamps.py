"""Timestamp rendering: the fast datetime path must print exactly what the epoch-ms path does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trailkeeper.model.timestamps import (
    MAX_MS,
    MIN_MS,
    datetime_to_ms,
    format_instant,
    format_iso,
    ms_and_iso,
    ms_to_datetime,
)

DAY_MS = 86_400_000


@given(st.integers(min_value=DAY_MS, max_value=MAX_MS - DAY_MS),
       st.integers(min_value=-12 * 60, max_value=14 * 60))
def test_format_instant_matches_format_iso_in_any_zone(ms: int, offset_minutes: int) -> None:
    moment = ms_to_datetime(ms)
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    assert format_instant(moment) == format_iso(ms)
    assert format_instant(local) == format_iso(ms)
    assert datetime_to_ms(local) == ms


def test_whole_seconds_drop_the_fraction() -> None:
    assert format_instant(ms_to_datetime(1_700_000_000_000)) == "2023-11-14T22:13:20Z"
    assert format_instant(ms_to_datetime(1_700_000_000_007)) == "2023-11-14T22:13:20.007Z"


@given(st.integers(min_value=MIN_MS, max_value=MAX_MS))
def test_format_iso_prints_what_strftime_prints(ms: int) -> None:
    text = ms_to_datetime(ms).strftime("%Y-%m-%dT%H:%M:%S")
    assert format_iso(ms) == (f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z")


def test_the_first_and_last_instants() -> None:
    assert format_iso(MIN_MS) == "1970-01-01T00:00:00Z"
    assert format_iso(MAX_MS) == "9999-12-31T23:59:59.999Z"
    assert format_instant(ms_to_datetime(MAX_MS)) == "9999-12-31T23:59:59.999Z"


@given(st.integers(min_value=DAY_MS, max_value=MAX_MS - DAY_MS),
       st.integers(min_value=-12 * 60, max_value=14 * 60))
def test_ms_and_iso_is_datetime_to_ms_and_format_instant(ms: int, offset_minutes: int) -> None:
    local = ms_to_datetime(ms).astimezone(timezone(timedelta(minutes=offset_minutes)))
    assert ms_and_iso(local) == (datetime_to_ms(local), format_instant(local)) \
        == (ms, format_iso(ms))


def test_ms_and_iso_refuses_what_datetime_to_ms_refuses() -> None:
    for moment in (datetime(1969, 12, 31, 23, 59, tzinfo=UTC), datetime(2024, 1, 1)):
        with pytest.raises(ValueError):
            datetime_to_ms(moment)
        with pytest.raises(ValueError):
            ms_and_iso(moment)
