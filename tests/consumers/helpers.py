"""What the consumer tests share: events in a store, the files' lines, what they should be."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.factories import REPO, batch, rich_event
from trailkeeper.model.event import AuditAttribute, ChangedValue
from trailkeeper.storage.base import Storage, StoredEvent


def add_events(storage: Storage, count: int, *, first: int = 0, per_batch: int = 500) -> None:
    """``count`` varied events (numbered from ``first``), appended in batches."""
    for start in range(first, first + count, per_batch):
        stop = min(start + per_batch, first + count)
        storage.append([batch(storage, *(
            rich_event(
                minutes=n / 7, uid=f"evt-{n}",
                action=("Repository created", "Branch deleted", "Zugriff verweigert ✓")[n % 3],
                changed_values=(ChangedValue("name", f"old-{n}", f"nëw-{n}"),),
                extra_attributes=(AuditAttribute("n", str(n)), AuditAttribute("repo", REPO.name)),
            )
            for n in range(start, stop)))])


def model_line(row: StoredEvent) -> bytes:
    """The reference line: the model's file shape of the stored event, keys sorted."""
    return orjson.dumps(row.to_event().to_file(), option=orjson.OPT_SORT_KEYS) + b"\n"


def expected_lines(storage: Storage) -> list[bytes]:
    """The line of every stored event, in id order."""
    lines: list[bytes] = []
    last = 0
    while rows := storage.events_after(last, 10_000):
        lines += [model_line(r) for r in rows]
        last = rows[-1].id
    return lines


def log_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.audit.log"))


def written_lines(directory: Path) -> list[bytes]:
    """Every line of every file, files in name order; a partial last line stays partial."""
    return [line for path in log_files(directory)
            for line in path.read_bytes().splitlines(keepends=True)]


def ids_of(lines: list[bytes]) -> list[int]:
    return [int(orjson.loads(line)["id"]) for line in lines]
