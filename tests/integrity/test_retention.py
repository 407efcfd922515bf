"""Retention and the verifiable log: pruning old events keeps what verifying the rest needs,
and what retention removed is told apart from what someone deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import ms, rich_event
from tests.integrity.helpers import run_sql
from trailkeeper.governance.period import Period
from trailkeeper.governance.retention import RetentionJob
from trailkeeper.ingest.service import AuditService
from trailkeeper.integrity import merkle
from trailkeeper.integrity.consumer import IntegrityConsumer
from trailkeeper.integrity.keys import read_verifier_key_file
from trailkeeper.integrity.proofs import NotCoveredError, consistency, inclusion, stored_tree
from trailkeeper.integrity.report import Report
from trailkeeper.integrity.sources import StoreSource
from trailkeeper.integrity.verify import Trust, verify_source
from trailkeeper.model.event import AuditEvent

DAY = 24 * 3600 * 1000
OLD, NEW = 400, 200  # events from March 2024 (expired after a year) and from 2025


class Pruned:
    def __init__(self, service: AuditService, consumer: IntegrityConsumer, trust: Trust,
                 db_url: str) -> None:
        self.service, self.consumer, self.trust, self.db_url = service, consumer, trust, db_url

    def verify(self) -> Report:
        return verify_source(StoreSource(self.service.storage, "store"), self.trust)


@pytest.fixture
def pruned(service: AuditService, tmp_path: Path, db_url: str) -> Pruned:
    """A hashed store whose oldest 400 events a retention run removed, then hashed again."""
    consumer = IntegrityConsumer(service.storage, tmp_path / "checkpoint.key", batch_size=100,
                                 every_events=500,
                                 record_event=lambda e: service.submit([e], screen=False))
    service.submit([rich_event(minutes=n) for n in range(OLD)], screen=False)
    service.submit([rich_event(minutes=400 * 24 * 60 + n) for n in range(NEW)], screen=False)
    consumer.drain(checkpoint=True)

    def record(e: AuditEvent) -> None:
        service.submit([e], screen=False)

    now = ms(0) + 400 * DAY  # a year's retention expires 2024-04-05
    report = RetentionJob(service.storage, period=lambda: Period(years=1),
                          max_rows=lambda: 10_000_000, record=record, clock=lambda: now).run()
    assert report is not None and report.deleted_by_age == OLD
    consumer.drain(checkpoint=True)  # the run's record triggers a checkpoint over it
    trust = Trust([read_verifier_key_file(tmp_path / "checkpoint.key.pub")])
    return Pruned(service, consumer, trust, db_url)


def test_after_retention_the_rest_of_the_log_still_verifies(pruned: Pruned) -> None:
    """The leaf tile whose events are all gone is removed; the expired events of the tile
    kept are counted as removed by retention; nothing is a problem."""
    storage = pruned.service.storage
    assert storage.merkle_first_leaf_tile() == 1
    report = pruned.verify()
    assert report.ok, report.problems
    assert report.pruned == OLD - 256  # those whose leaf records are still kept
    assert any("retention removed the leaves" in note for note in report.notes)
    assert report.events_verified >= NEW


def test_proofs_of_remaining_events_and_later_checkpoints_still_work(pruned: Pruned) -> None:
    """Inclusion of a kept event and consistency between checkpoints after the pruned leaves
    verify; a proof that needs the removed tile is refused with a reason."""
    storage = pruned.service.storage
    latest = storage.checkpoint()
    assert latest is not None
    survivor = storage.events_after(0, 1)[0]
    proof = inclusion(storage, survivor.id)
    tree = stored_tree(storage)
    assert merkle.verify_inclusion(merkle.leaf_hash(proof.leaf.record), proof.leaf.index,
                                   proof.tree_size, proof.path, latest.root)
    sizes = [c.size for c in storage.checkpoints()]
    old_root, new_root, path = consistency(storage, sizes[-2], latest.size)
    assert merkle.verify_consistency(sizes[-2], latest.size, old_root, new_root, path)
    assert tree.root(sizes[-2]) == old_root
    with pytest.raises(NotCoveredError, match="Retention removed"):
        consistency(storage, 10, latest.size)


def test_deleting_an_event_retention_did_not_expire_is_still_caught(
        pruned: Pruned, backend: str) -> None:
    """A 2025 event removed by hand is a deletion, not an expiry."""
    storage = pruned.service.storage
    victim = storage.events_after(OLD, 1)[0].id
    run_sql(pruned.db_url, backend, f"DELETE FROM events WHERE id = {victim}")
    report = pruned.verify()
    assert not report.ok
    assert (report.problems[0].kind, report.problems[0].event_id) == ("deleted", victim)


def test_removing_leaves_no_retention_run_recorded_is_caught(pruned: Pruned,
                                                             backend: str) -> None:
    """Deleting the next leaf tile too (with or without its events) is not explained by any
    recorded retention run."""
    run_sql(pruned.db_url, backend, "DELETE FROM merkle_leaves WHERE tile = 1")
    report = pruned.verify()
    assert not report.ok
    assert report.problems[0].kind in {"deleted", "inserted"}

