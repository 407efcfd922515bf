"""The cached store the read benchmark queries: built once per backend and size, then reused.

SQLite: ``bench/.data/read-sqlite-<n>.db``; PostgreSQL: database
``trailkeeper_bench_<n>_<schema hash>`` (see `_pg_name`).
Beside each, ``bench/.data/read-<backend>-<n>.json`` describes what it holds (how often each
action, user and repository occurs), so the benchmark can pick filter values without asking
the store. Events are the demo generator's, ending at a fixed instant, so every build of a
size is identical.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from benchlib import (
    DATA_DIR,
    log,
    pg_create_database,
    pg_database_exists,
    pg_drop_database,
    pg_url_for,
)

from trailkeeper.demo import demo_events
from trailkeeper.model.event import AuditAuthor, AuditEvent
from trailkeeper.query.ast import MatchAll
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import NewEvent, Storage
from trailkeeper.storage.migrations import migrations
from trailkeeper.storage.rows import Batch, encode

FORMAT = 1  # bump when the content of the store changes
END_MS = 1_717_200_000_000  # 2024-06-01T00:00:00Z
DAYS = 21
SEED = 7
BATCH = 5000


@dataclass
class StoreFacts:
    """What a cached store holds: enough to choose realistic filter values."""

    events: int
    backend: str
    location: str
    format: int = FORMAT
    migrations: int = 0
    first_ms: int = 0
    last_ms: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    authors: dict[str, list[Any]] = field(default_factory=dict)  # id -> [name, count]
    repositories: dict[str, list[Any]] = field(default_factory=dict)  # id -> [name, count]
    build_s: float | None = None


class _Tally:
    def __init__(self) -> None:
        self.actions: Counter[str] = Counter()
        self.authors: Counter[str] = Counter()
        self.author_names: dict[str, str] = {}
        self.repositories: Counter[str] = Counter()
        self.repository_names: dict[str, str] = {}
        self.first_ms = 2**62
        self.last_ms = 0

    def add(self, new: NewEvent) -> None:
        self.actions[new.event.type.action] += 1
        self.authors[new.author.id] += 1
        self.author_names[new.author.id] = new.author.name
        for obj in new.event.affected_objects:
            if obj.type == "REPOSITORY" and obj.id is not None:
                self.repositories[obj.id] += 1
                self.repository_names[obj.id] = obj.name
        self.first_ms = min(self.first_ms, new.timestamp_ms)
        self.last_ms = max(self.last_ms, new.timestamp_ms)

    def facts(self, backend: str, location: str) -> StoreFacts:
        return StoreFacts(
            events=sum(self.actions.values()), backend=backend, location=location,
            migrations=len(migrations(backend)), first_ms=self.first_ms, last_ms=self.last_ms,
            actions=dict(self.actions.most_common()),
            authors={a: [self.author_names[a], n] for a, n in self.authors.most_common()},
            repositories={r: [self.repository_names[r], n]
                          for r, n in self.repositories.most_common()},
        )


def _batches(events: Iterable[AuditEvent], tally: _Tally) -> Iterable[list[NewEvent]]:
    batch: list[NewEvent] = []
    for event in events:
        assert event.timestamp_ms is not None
        new = encode(event, event.timestamp_ms, AuditAuthor.SYSTEM)
        tally.add(new)
        batch.append(new)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(storage: Storage, count: int) -> _Tally:
    """Append ``count`` demo events (plus the demo's episodes) in batches of `BATCH`."""
    tally = _Tally()
    began = time.perf_counter()
    done = 0
    for batch in _batches(demo_events(count, days=DAYS, end_ms=END_MS, seed=SEED), tally):
        storage.append([Batch.of(batch, storage.prepare(batch))])
        done += len(batch)
        if done % 100_000 < BATCH:
            rate = done / (time.perf_counter() - began)
            log(f"  {done:,} events stored ({rate:,.0f}/s)")
    return tally


# -- where the store lives ------------------------------------------------------------------


def facts_path(backend: str, count: int) -> Path:
    return DATA_DIR / f"read-{backend}-{count}.json"


def _sqlite_file(count: int, suffix: str = "") -> Path:
    return DATA_DIR / f"read-sqlite-{count}{suffix}.db"


def _remove_sqlite(path: Path) -> None:
    for extra in ("", "-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)


def _pg_name(count: int) -> str:
    """``trailkeeper_bench_<n>_<schema>``: the PostgreSQL server is shared by every checkout
    on the machine, so the name says which migrations built it; a branch with other
    migrations builds its own database instead of replacing (or using) this one."""
    schema = "|".join(f"{m.version}_{m.name}" for m in migrations("postgres"))
    return f"trailkeeper_bench_{count}_{hashlib.sha256(schema.encode()).hexdigest()[:8]}"


def _location(backend: str, count: int, pg_url: str) -> str:
    if backend == "sqlite":
        return f"sqlite://{_sqlite_file(count)}"
    return pg_url_for(pg_url, _pg_name(count))


def _exists(backend: str, count: int, pg_url: str) -> bool:
    if backend == "sqlite":
        return _sqlite_file(count).exists()
    return pg_database_exists(pg_url, _pg_name(count))


def _load_facts(backend: str, count: int) -> StoreFacts | None:
    path = facts_path(backend, count)
    if not path.exists():
        return None
    return StoreFacts(**json.loads(path.read_text()))


def cached(backend: str, count: int, pg_url: str) -> StoreFacts | None:
    """The facts of a usable cached store, or None when it must be (re)built."""
    facts = _load_facts(backend, count)
    if facts is None or not _exists(backend, count, pg_url):
        return None
    if (facts.format != FORMAT or facts.location != _location(backend, count, pg_url)
            or facts.migrations != len(migrations(backend))):
        return None
    storage = open_storage(facts.location)
    try:
        stored = storage.count(MatchAll())
    finally:
        storage.close()
    return facts if stored >= facts.events else None


# -- building -------------------------------------------------------------------------------


def _analyze_postgres(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("VACUUM ANALYZE")


def _build_into(url: str, count: int) -> _Tally:
    storage = open_storage(url)
    try:
        tally = fill(storage, count)
        log("  gathering planner statistics")
        optimize = getattr(storage, "optimize", None)
        if optimize is not None:
            optimize()
    finally:
        storage.close()
    if url.startswith("postgres"):
        _analyze_postgres(url)
    return tally


def build(backend: str, count: int, pg_url: str) -> StoreFacts:
    """Build the store under a temporary name and move it into place when complete."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    facts_path(backend, count).unlink(missing_ok=True)
    began = time.perf_counter()
    log(f"building the {backend} read store of {count:,} events")
    if backend == "sqlite":
        partial = _sqlite_file(count, ".building")
        _remove_sqlite(partial)
        tally = _build_into(f"sqlite://{partial}", count)
        _remove_sqlite(_sqlite_file(count))
        partial.rename(_sqlite_file(count))
        _remove_sqlite(partial)
    else:
        partial_name = _pg_name(count) + "_building"
        pg_create_database(pg_url, partial_name)
        tally = _build_into(pg_url_for(pg_url, partial_name), count)
        pg_drop_database(pg_url, _pg_name(count))
        with psycopg.connect(pg_url, autocommit=True) as con:
            con.execute(f'ALTER DATABASE "{partial_name}" RENAME TO "{_pg_name(count)}"')
    facts = tally.facts(backend, _location(backend, count, pg_url))
    facts.build_s = round(time.perf_counter() - began, 1)
    facts_path(backend, count).write_text(json.dumps(asdict(facts), indent=1))
    log(f"built {facts.events:,} events in {facts.build_s:,} s")
    return facts


def read_store(backend: str, count: int, pg_url: str, *, rebuild: bool) -> tuple[StoreFacts,
                                                                                 bool]:
    """The store's facts, and whether it was built by this call."""
    facts = None if rebuild else cached(backend, count, pg_url)
    if facts is not None:
        log(f"using the cached read store {facts.location} ({facts.events:,} events)")
        return facts, False
    return build(backend, count, pg_url), True
