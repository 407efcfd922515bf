"""Constant memory: an export's peak does not grow with the number of rows."""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Iterator

import pytest

from trailkeeper.demo import demo_events
from trailkeeper.export.formats import FORMATS, ExportOptions, export, format_named
from trailkeeper.storage.base import StoredEvent

from .strategies import row_of

TEMPLATES = [row_of(e).doc for e in itertools.islice(demo_events(50, seed=11), 50)]
ROWS = {"csv": 200_000, "ndjson": 200_000}  # the bulk formats; the others are slower
OTHER_ROWS = 20_000


def rows(count: int) -> Iterator[StoredEvent]:
    """Rows made as they are read, like a store's cursor."""
    for n in range(count):
        yield StoredEvent(n + 1, 1_700_000_000_000 + n, TEMPLATES[n % len(TEMPLATES)])


def peak_bytes(fmt: str, count: int) -> tuple[int, int]:
    """The traced peak while exporting ``count`` rows, and the bytes written."""
    written = 0
    tracemalloc.start()
    try:
        for chunk in export(rows(count), format_named(fmt), ExportOptions(total=count)):
            written += len(chunk)
        return tracemalloc.get_traced_memory()[1], written
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", FORMATS)
def test_peak_memory_does_not_grow_with_rows(fmt: str) -> None:
    """Ten times the rows: the same peak, a small fraction of the output's size."""
    count = ROWS.get(fmt, OTHER_ROWS)
    small, _ = peak_bytes(fmt, count // 10)
    large, written = peak_bytes(fmt, count)
    assert written > 20_000_000 if fmt in ROWS else written > 2_000_000
    assert large < small * 1.5 + 256_000, (small, large)
    assert large < 4_000_000, large
