"""Audit log files as Atlassian writes them, the command line, and what a store holds."""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner, Result

from trailkeeper.cli.main import cli
from trailkeeper.demo import demo_events
from trailkeeper.model.event import AuditEvent
from trailkeeper.query.ast import MatchAll
from trailkeeper.storage import open_storage

END_MS = 1_717_200_000_000  # 2024-06-01T00:00:00Z


def sample_events(count: int, *, seed: int = 3) -> list[AuditEvent]:
    """Realistic events without uids, as an Atlassian product logs them."""
    return [dataclasses.replace(event, uid=None) for event in
            itertools.islice(demo_events(count, end_ms=END_MS, seed=seed), count)]


def log_lines(events: Iterable[AuditEvent]) -> bytes:
    return b"".join(event.file_line().encode() + b"\n" for event in events)


def write_log(path: Path, events: Iterable[AuditEvent]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(log_lines(events))
    return path


def stored(db_url: str) -> list[dict[str, Any]]:
    """Every stored event's REST document, oldest first."""
    storage = open_storage(db_url)
    try:
        return [orjson.loads(row.rest_json())
                for row in storage.stream(MatchAll(), descending=False)]
    finally:
        storage.close()


def uid_counts(db_url: str) -> collections.Counter[str]:
    return collections.Counter(doc.get("uid") for doc in stored(db_url))


def content(doc: dict[str, Any]) -> bytes:
    """A stored event without what the store and the importer add (comparable to input)."""
    return orjson.dumps({k: v for k, v in doc.items() if k not in ("id", "uid")},
                        option=orjson.OPT_SORT_KEYS)


def event_content(event: AuditEvent) -> bytes:
    rest = event.to_rest()
    return content(rest)


def invoke(*args: str, input: str | None = None) -> Result:
    """``trailkeeper ARGS`` in this process."""
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
