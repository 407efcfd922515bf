"""TEXT: an aligned table for people at a terminal, as ``bfauditlog`` prints by default.

Not bare (here with ``fields`` author, action, object; the padding at line ends not shown)::

    author  action            object
    ------  ----------------  ------------------
    admin   Username changed  test.user (USER 3)
    1 matching entry

Default columns: timestamp, author, category, action, object and source (the field
catalogue's names); with ``fields``, those. The last line is ``N matching entries`` (or
``entries 101-150 of N`` after an offset) when ``total`` is given. Bare: the rows alone.

Rows are streamed, so widths cannot wait for the last row: they are taken from the header
and the first `SAMPLE_ROWS` rows, at most `MAX_WIDTH` cells each, and kept for the rest;
a longer value is cut and ends in "…". Every line of the table is padded to the full width
(columns are separated by two spaces), so all lines have the same display width; wide East
Asian characters count as two cells (``rich.cells``).

No control character reaches the terminal: see `escaping.terminal_text` (tabs and line
breaks in values become spaces, other C0/C1 controls ``\\xNN``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence

from rich.cells import cell_len, set_cell_size

from trailkeeper.export.documents import values_of
from trailkeeper.export.escaping import terminal_text
from trailkeeper.export.options import CHUNK_ROWS, ExportOptions, count_line
from trailkeeper.query.fields import Field, resolve
from trailkeeper.storage.base import StoredEvent

SAMPLE_ROWS = 500
MAX_WIDTH = 40
GAP = "  "


def _field(name: str) -> Field:
    field = resolve(name)
    assert field is not None, name
    return field


DEFAULT_FIELDS = tuple(_field(name) for name in (
    "timestamp", "author", "category", "action", "object", "source"))


def write_text(rows: Iterable[StoredEvent], options: ExportOptions) -> Iterator[bytes]:
    fields = options.fields or DEFAULT_FIELDS
    remaining = iter(rows)
    sample = [_cells(row, fields) for row in itertools.islice(remaining, SAMPLE_ROWS)]
    header = [terminal_text(f.name) for f in fields]
    widths = [min(MAX_WIDTH, max([1, *(_width(cells[i]) for cells in sample),
                                  *([] if options.bare else [_width(header[i])])]))
              for i in range(len(fields))]
    lines = [] if options.bare else [
        _line(header, widths), _line(["-" * w for w in widths], widths)]
    written = 0
    for cells in itertools.chain(sample, (_cells(row, fields) for row in remaining)):
        lines.append(_line(cells, widths))
        written += 1
        if len(lines) >= CHUNK_ROWS:
            yield _chunk(lines)
            lines.clear()
    footer = count_line(options, written)
    if footer is not None:
        lines.append(footer)
    if lines:
        yield _chunk(lines)


def _cells(row: StoredEvent, fields: Sequence[Field]) -> list[str]:
    return [terminal_text(value) for value in values_of(row, fields)]


def _width(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _fit(text: str, width: int) -> str:
    """Exactly ``width`` cells: padded, or cut with an ellipsis."""
    size = _width(text)
    if size <= width:
        return text + " " * (width - size)
    if text.isascii():
        return text[:width - 1] + "…"
    return set_cell_size(text, width - 1) + "…"  # pads when a wide character straddles


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return GAP.join([_fit(text, width) for text, width in zip(cells, widths, strict=True)])


def _chunk(lines: list[str]) -> bytes:
    lines.append("")
    return "\n".join(lines).encode("utf-8")
