"""Writers with integrity on store each event's leaf digest, computed from what they encoded:
the tree built from them is the tree built from the stored documents, and events without one
(written before, or by a writer with integrity off) are derived from their documents."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.factories import event
from tests.integrity.test_consumer import builder, leaves
from trailkeeper.ingest.service import AuditService
from trailkeeper.integrity import merkle
from trailkeeper.metrics import Metrics
from trailkeeper.model.document import CanonicalDigest
from trailkeeper.model.event import AuditAuthor
from trailkeeper.storage.base import Storage


def from_digests(metrics: Metrics) -> float:
    return metrics.merkle_leaves_stored_digest._value.get()


def built_root(storage: Storage) -> bytes:
    latest = storage.checkpoint()
    assert latest is not None
    return latest.root


def digests(storage: Storage) -> list[bytes | None]:
    return [row[3] for row in storage.leaf_rows_after(0, 1_000_000)]


def test_stored_digests_build_the_tree_the_stored_documents_build(
        service: AuditService, tmp_path: Path) -> None:
    """Events from both write paths (a batch and the in-process queue) carry their digest,
    every one, and the signed root is that of the stored documents."""
    service.digest_leaves()
    service.submit([event(minutes=n) for n in range(700)], screen=False)
    for n in range(300):
        service.audit(event(minutes=1000 + n))
    assert service.flush(30)
    assert all(d is not None and len(d) == 32 for d in digests(service.storage))
    metrics = Metrics()
    consumer = builder(service, tmp_path, batch_size=250, metrics=metrics)
    consumer.drain(checkpoint=True)
    assert from_digests(metrics) == 1000
    assert metrics.merkle_build_cpu._value.get() > 0  # the builder's thread CPU, counted
    assert built_root(service.storage) == merkle.root(leaves(service.storage))


def test_events_without_a_digest_are_derived_from_their_documents(
        service: AuditService, tmp_path: Path) -> None:
    """Events stored before digests were switched on, or by another writer without them,
    are read whole and derived; the tree is the same."""
    service.submit([event(minutes=n) for n in range(150)], screen=False)  # ids 1-150
    service.digest_leaves()
    service.submit([event(minutes=200 + n) for n in range(250)], screen=False)  # 151-400
    other = AuditService(service.storage)  # another writer, integrity off
    try:
        other.submit([event(minutes=500 + n) for n in range(60)], screen=False)  # 401-460
    finally:
        other.close()
    service.submit([event(minutes=600 + n) for n in range(40)], screen=False)  # 461-500
    stored = digests(service.storage)
    assert stored.count(None) == 210
    metrics = Metrics()
    consumer = builder(service, tmp_path, batch_size=7, metrics=metrics)  # batches mix both
    consumer.drain(checkpoint=True)
    assert from_digests(metrics) == 290
    assert consumer.size == 500
    assert built_root(service.storage) == merkle.root(leaves(service.storage))


def test_a_retried_event_keeps_the_digest_of_what_was_stored(storage: Storage,
                                                             tmp_path: Path) -> None:
    """A retry of an event without a timestamp, received later, matches the stored event
    by uid and stores nothing: the stored digest is that of the first receipt."""
    now = [1_800_000_000_000]
    service = AuditService(storage, clock=lambda: now[0])
    try:
        service.digest_leaves()
        sent = dataclasses.replace(event(minutes=0), timestamp=None, uid="retried-1")
        first = service.submit([sent], screen=False)
        now[0] += 60_000
        again = service.submit([event(minutes=1), sent, sent], screen=False)
        assert again.ids[1] == again.ids[2] == first.ids[0] and again.created == 1
        metrics = Metrics()
        consumer = builder(service, tmp_path, batch_size=1, metrics=metrics)
        consumer.drain(checkpoint=True)
        assert from_digests(metrics) == 2
        assert built_root(storage) == merkle.root(leaves(storage))
    finally:
        service.close()


def test_encoders_compute_digests_only_when_asked(service: AuditService) -> None:
    assert service.prepare([event()], AuditAuthor.SYSTEM).events[0].canonical is None
    service.digest_leaves()
    assert service.prepare([event()], AuditAuthor.SYSTEM).events[0].canonical is not None
    service.digest_leaves(False)
    assert service.prepare([event()], AuditAuthor.SYSTEM).events[0].canonical is None


def test_canonical_bytes_join_around_the_id() -> None:
    parts = CanonicalDigest(b'{"affectedObjects":[]', b'{"version":"1.0"}')
    assert parts.canonical(42) == b'{"affectedObjects":[],"id":42,"version":"1.0"}'


def test_one_commit_may_hold_batches_with_and_without_digests(
        service: AuditService, tmp_path: Path) -> None:
    plain = service.prepare([event(minutes=n) for n in range(30)], AuditAuthor.SYSTEM,
                            screen=False)
    service.digest_leaves()
    digested = service.prepare([event(minutes=100 + n) for n in range(40)],
                               AuditAuthor.SYSTEM, screen=False)
    later = service.prepare([event(minutes=200 + n) for n in range(20)], AuditAuthor.SYSTEM,
                            screen=False)
    service.digest_leaves(False)
    last = service.prepare([event(minutes=300 + n) for n in range(10)], AuditAuthor.SYSTEM,
                           screen=False)
    service.storage.append([plain, digested, later, last])
    stored = digests(service.storage)
    assert [d is not None for d in stored] == [False] * 30 + [True] * 60 + [False] * 10
    metrics = Metrics()
    builder(service, tmp_path, metrics=metrics).drain(checkpoint=True)
    assert from_digests(metrics) == 60
    assert built_root(service.storage) == merkle.root(leaves(service.storage))


def test_the_builder_reads_which_events_have_its_marked_actions(service: AuditService) -> None:
    """`leaf_rows_after` marks an event whose action is one of those asked for with its
    place among them (from 1), every other one with 0, in id order from after the id."""
    actions = ["Repository created", "Audit Log checkpoint signed", "User logged in",
               "Audit Log retention run", "Repository created"]
    service.submit([event(action, minutes=n) for n, action in enumerate(actions)],
                   screen=False)
    storage = service.storage
    marked = ("Audit Log checkpoint signed", "Audit Log retention run")
    assert [(row[0], row[2]) for row in storage.leaf_rows_after(0, 10, marked)] == [
        (1, 0), (2, 1), (3, 0), (4, 2), (5, 0)]
    assert [row[2] for row in storage.leaf_rows_after(2, 2, marked)] == [0, 2]
    assert [row[2] for row in storage.leaf_rows_after(0, 10)] == [0] * 5
