"""AuditService: non-blocking recording, drop-oldest overflow with a gap record, draining."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.factories import event
from trailkeeper.errors import ConflictError
from trailkeeper.ingest.service import AuditService
from trailkeeper.query.ast import AuditQuery, In, MatchAll
from trailkeeper.storage.base import AppendResult, Storage
from trailkeeper.storage.rows import Batch


class GatedStorage:
    """A real store whose writes wait for a gate: lets a test hold the writer still."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()

    def append(self, batches: Sequence[Batch]) -> list[AppendResult | ConflictError]:
        assert self.gate.wait(30), "test gate never opened"
        return self.inner.append(batches)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def wait_until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_audit_returns_at_once_and_close_drains_everything(storage: Storage) -> None:
    service = AuditService(storage)
    for i in range(2500):
        service.audit(event(minutes=i, uid=None))
    service.close()
    assert storage.count(MatchAll()) == 2500


def test_events_without_timestamp_get_the_time_they_were_recorded(storage: Storage) -> None:
    service = AuditService(storage, clock=lambda: 1_700_000_000_123)
    from dataclasses import replace

    service.audit(replace(event(), timestamp=None, author=None))
    service.flush()
    stored = service.search(limit=1).events[0]
    assert stored.timestamp_ms == 1_700_000_000_123
    assert stored.author is not None and stored.author.name == "System"
    service.close()


def test_overflow_drops_the_oldest_and_records_how_many(storage: Storage) -> None:
    gated = GatedStorage(storage)
    service = AuditService(gated, queue_size=10)  # type: ignore[arg-type]
    gated.gate.clear()
    # Let the encoder take two batches, which then wait on the gate.
    for first in range(2):
        service.audit(event(f"early {first}"))
        wait_until(lambda: service._writer.depth() == 0)
    for i in range(25):
        service.audit(event(f"late {i}"))
    assert service._writer.depth() == 10
    gated.gate.set()
    service.close()
    actions = [e.type.action for e in _all(storage)]
    survivors = {f"late {i}" for i in range(15, 25)}
    assert set(actions) == {"early 0", "early 1", "Audit events discarded"} | survivors
    [gap] = [e for e in _all(storage) if e.type.action == "Audit events discarded"]
    attributes = {a.name: a.value for a in gap.extra_attributes}
    assert attributes["number of events"] == "15"
    assert gap.type.category == "Auditing" and gap.type.area == "AUDIT_LOG"
    assert service.metrics.events_dropped._value.get() == 15


def test_block_mode_waits_instead_of_dropping(storage: Storage) -> None:
    gated = GatedStorage(storage)
    service = AuditService(gated, queue_size=5, overflow="block")  # type: ignore[arg-type]
    gated.gate.clear()
    producer = threading.Thread(target=lambda: [service.audit(event(f"e{i}"))
                                                for i in range(40)])
    producer.start()
    time.sleep(0.3)
    assert producer.is_alive()  # blocked on the full queue
    gated.gate.set()
    producer.join(10)
    service.close()
    assert storage.count(MatchAll()) == 40


def test_events_recorded_during_a_store_outage_are_written_later(storage: Storage) -> None:
    class Flaky(GatedStorage):
        failures = 3

        def append(self, batches: Sequence[Batch]) -> list[AppendResult | ConflictError]:
            if self.failures:
                self.failures -= 1
                raise OSError("disk unplugged")
            return super().append(batches)

    service = AuditService(Flaky(storage))  # type: ignore[arg-type]
    for i in range(100):
        service.audit(event(f"e{i}"))
    service.close()
    assert storage.count(MatchAll()) == 100


def test_submit_waits_for_the_commit_and_reports_conflicts(storage: Storage) -> None:
    service = AuditService(storage)
    result = service.submit([event(uid="a"), event(uid="b")])
    assert result.created == 2
    assert storage.count(MatchAll()) == 2
    assert service.submit([event(uid="a")]).ids == result.ids[:1]
    with pytest.raises(ConflictError):
        service.submit([event("changed", uid="a")])
    service.close()


def test_search_pages_and_counts_with_audit_query(storage: Storage) -> None:
    service = AuditService(storage)
    service.submit([event("A", minutes=i) for i in range(5)] + [event("B", minutes=9)])
    page = service.search(AuditQuery(actions=["A"]), limit=3)
    assert [e.timestamp_ms for e in page.events] == sorted(
        (e.timestamp_ms for e in page.events), reverse=True)
    assert page.next_cursor is not None
    rest = service.search(AuditQuery(actions=["A"]), limit=3, cursor=str(page.next_cursor))
    assert len(rest.events) == 2 and rest.next_cursor is None
    assert service.count(AuditQuery(actions=["A"])) == 5
    assert service.count(In("action", ("B",))) == 1
    first_id = page.events[0].id
    assert first_id is not None and service.get(first_id) == page.events[0]
    service.close()


def test_audit_after_close_is_an_error(storage: Storage) -> None:
    service = AuditService(storage)
    service.close()
    with pytest.raises(RuntimeError, match="closed"):
        service.audit(event())


def _all(storage: Storage) -> list[Any]:
    return [row.to_event() for row in storage.stream(MatchAll())]


def test_an_in_process_uid_conflict_drops_only_that_event(storage: Storage) -> None:
    service = AuditService(storage)
    service.audit(event("first", uid="same"))
    service.flush()
    service.audit(event("second", uid="same"))  # other content, same uid
    service.audit(event("third", uid="other"))
    service.audit(event("fourth"))
    service.close()
    assert sorted(e.type.action for e in _all(storage)) == ["first", "fourth", "third"]
    assert service.metrics.events_rejected.labels("conflict")._value.get() == 1


def test_a_program_that_forgets_close_still_writes_its_events(tmp_path: Path) -> None:
    """Queued events are drained at interpreter exit."""
    db = tmp_path / "forgot.db"
    script = textwrap.dedent(f"""
        from tests.factories import event
        from trailkeeper import AuditService
        service = AuditService.open("sqlite://{db}")
        for i in range(3000):
            service.audit(event(f"e{{i}}"))
        # no close(): the interpreter exits with the events queued
    """)
    repository = Path(__file__).parents[2]
    subprocess.run([sys.executable, "-c", script], check=True, cwd=repository)
    with AuditService.open(f"sqlite://{db}") as service:
        assert service.count() == 3000
