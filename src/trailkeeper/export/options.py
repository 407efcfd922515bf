"""What an export is asked for, and what every writer shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trailkeeper.query.fields import Field

# Rows per yielded chunk: big enough that per-chunk work (joins, scans, the transport's write)
# is amortised, small enough that a chunk stays well under a megabyte.
CHUNK_ROWS = 256

NextCursor = str | Callable[[], str | None] | None


@dataclass(frozen=True)
class ExportOptions:
    """Options of `trailkeeper.export.formats.export`.

    ``fields``: the columns to write; None (or empty) means the format's default columns.
    ``bare``: bfauditlog's ``-b``: no header, no count, no enclosing element.
    ``total``: the number of matching entries, written when given and not bare.
    ``offset``: how many matching rows precede these (for "entries 101-150 of N").
    ``next_cursor``: ``json`` only: the cursor of the next page, or a function without
    arguments that returns it, called once after the last row (None: no ``next_cursor``).
    """

    fields: tuple[Field, ...] | None = None
    bare: bool = False
    total: int | None = None
    offset: int = 0
    next_cursor: NextCursor = None

    def resolved_cursor(self) -> str | None:
        cursor = self.next_cursor
        return cursor() if callable(cursor) else cursor


def count_line(options: ExportOptions, written: int) -> str | None:
    """``N matching entries`` / ``entries 101-150 of N``, or None when none is due."""
    total = options.total
    if options.bare or total is None:
        return None
    offset = options.offset
    if offset <= 0:
        return f"{total} matching {'entry' if total == 1 else 'entries'}"
    if written:
        return f"entries {offset + 1}-{offset + written} of {total}"
    return f"no entries after the first {offset} of {total}"
