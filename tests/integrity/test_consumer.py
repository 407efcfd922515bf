"""The tree builder on the real stores: every committed event becomes a leaf in id order,
checkpoints are signed when due, and a restart or a second builder loses nothing and
duplicates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import event
from trailkeeper.errors import StateError
from trailkeeper.ingest.service import AuditService
from trailkeeper.integrity import merkle
from trailkeeper.integrity.canonical import stored_record
from trailkeeper.integrity.consumer import IntegrityConsumer
from trailkeeper.integrity.keys import read_verifier_key_file
from trailkeeper.integrity.note import verify_checkpoint
from trailkeeper.integrity.proofs import stored_tree, tree_size
from trailkeeper.integrity.record import ACTION, claim_of
from trailkeeper.query.ast import Compare
from trailkeeper.storage.base import Storage


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


def store(service: AuditService, count: int, start: int = 0) -> None:
    service.submit([event(minutes=start + n) for n in range(count)], screen=False)


def leaves(storage: Storage) -> list[bytes]:
    """The leaf hashes every stored event should have, in id order."""
    rows = storage.events_after(0, 1_000_000)
    return [merkle.leaf_hash(stored_record(e.id, e.timestamp_ms, e.doc)) for e in rows]


def builder(service: AuditService, tmp_path: Path, **options: object) -> IntegrityConsumer:
    return IntegrityConsumer(service.storage, tmp_path / "integrity" / "checkpoint.key",
                             **options)  # type: ignore[arg-type]


def test_every_event_becomes_a_leaf_and_the_checkpoint_signs_the_root(
        service: AuditService, tmp_path: Path) -> None:
    """After a drain the tree holds every event in id order, and the signed checkpoint's root
    is the RFC 9162 root of their leaves, verifiable with the public key written beside the
    private one."""
    store(service, 700)
    consumer = builder(service, tmp_path, batch_size=300, origin="audit.test/log")
    consumer.drain(checkpoint=True)
    storage = service.storage
    expected = leaves(storage)
    assert tree_size(storage) == (700, storage.max_id())
    latest = storage.checkpoint()
    assert latest is not None and latest.size == 700
    assert latest.root == merkle.root(expected)
    assert merkle.fold(latest.compact_range) == latest.root
    key = read_verifier_key_file(tmp_path / "integrity" / "checkpoint.key.pub")
    body = verify_checkpoint(latest.note, [key], origin="audit.test/log")
    assert (body.size, body.root) == (700, latest.root)
    assert storage.signing_keys() == [key.key_string]
    assert (tmp_path / "integrity" / "checkpoint.key").stat().st_mode & 0o077 == 0


def test_checkpoints_are_signed_every_n_events_and_after_an_idle_interval(
        service: AuditService, tmp_path: Path) -> None:
    """A checkpoint follows the first batch, then each `every_events`; an interval passing
    signs one only when something other than checkpoint records was added."""
    clock = Clock()
    recorded = []
    consumer = builder(service, tmp_path, batch_size=100, every_events=250, every_s=60,
                       clock=clock, record_event=lambda e: (recorded.append(e),
                                                            service.submit([e], screen=False)))
    store(service, 1000)
    consumer.drain()
    sizes = [c.size for c in service.storage.checkpoints()]
    assert sizes == [100, 400, 700, 1000]
    assert len(recorded) == 4  # each one also recorded as an event ...
    consumer.drain()  # ... which the tree takes in; being a checkpoint record, it waits
    clock.now += 61_000
    consumer.process_batch()
    assert [c.size for c in service.storage.checkpoints()][-1] == 1000
    store(service, 1, start=5000)
    consumer.process_batch()  # a real event: the interval has passed, so sign
    # 1,000 events, the 4 checkpoint records, and the new one.
    assert [c.size for c in service.storage.checkpoints()][-1] == 1005


def test_a_checkpoint_event_carries_the_signed_note_and_the_compact_range(
        service: AuditService, tmp_path: Path) -> None:
    """The recorded event lets anyone holding the log files rebuild and check the note."""
    store(service, 300)
    consumer = builder(service, tmp_path, node="node-7",
                       record_event=lambda e: service.submit([e], screen=False))
    consumer.drain(checkpoint=True)
    latest = service.storage.checkpoint()
    assert latest is not None
    found = service.storage.search(Compare("action", "=", ACTION), limit=5).events
    assert len(found) == 1
    recorded = found[0].to_event()
    assert recorded.node == "node-7" and recorded.author is not None \
        and recorded.author.id == "-1"
    claim = claim_of([{"name": a.name, "value": a.value} for a in recorded.extra_attributes])
    assert (claim.note, claim.size, claim.last_id) == (latest.note, 300, latest.last_id)
    assert claim.compact_range == latest.compact_range


def test_a_restart_resumes_from_the_saved_tiles(service: AuditService, tmp_path: Path) -> None:
    """A new builder (a restart) continues the same tree: no leaf lost or repeated."""
    store(service, 450)
    builder(service, tmp_path, batch_size=200).drain(checkpoint=True)
    store(service, 333, start=1000)
    builder(service, tmp_path, batch_size=200).drain(checkpoint=True)
    expected = leaves(service.storage)
    latest = service.storage.checkpoint()
    assert latest is not None and latest.size == 783 == len(expected)
    assert latest.root == merkle.root(expected)
    assert stored_tree(service.storage).root(450) == merkle.root(expected[:450])


def test_a_second_builder_cannot_interleave_leaves(service: AuditService,
                                                   tmp_path: Path) -> None:
    """Two builders that both think they hold the lease: the one behind is refused (its
    position is stale) and, reloaded, continues where the other stopped."""
    store(service, 100)
    first = builder(service, tmp_path, batch_size=50)
    second = builder(service, tmp_path, batch_size=50)
    first.process_batch()
    second.process_batch()  # loads the position first.process_batch saved
    with pytest.raises(StateError, match="another process"):
        first.process_batch()
    first.drain(checkpoint=True)  # reloaded: picks up after the second
    assert tree_size(service.storage)[0] == 100
    latest = service.storage.checkpoint()
    assert latest is not None and latest.root == merkle.root(leaves(service.storage))


def test_the_origin_stays_with_the_log(service: AuditService, tmp_path: Path) -> None:
    """Without a configured origin a new one is made once; later builders reuse it."""
    store(service, 10)
    builder(service, tmp_path).drain(checkpoint=True)
    store(service, 10, start=100)
    other_home = tmp_path / "other"
    builder(service, other_home).drain(checkpoint=True)
    origins = {c.origin for c in service.storage.checkpoints()}
    assert len(origins) == 1 and next(iter(origins)).startswith("trailkeeper/")


def test_an_empty_store_signs_nothing(service: AuditService, tmp_path: Path) -> None:
    """No events, no checkpoint (a tree of size 0 proves nothing)."""
    consumer = builder(service, tmp_path)
    consumer.drain(checkpoint=True)
    assert service.storage.checkpoint() is None and consumer.sign() is None


def test_tiles_are_read_many_at_once(service: AuditService, tmp_path: Path) -> None:
    """`merkle_tiles_at` returns the stored tiles among the keys asked, at every level."""
    store(service, 300)
    builder(service, tmp_path).drain()
    found = service.storage.merkle_tiles_at([(0, 0), (0, 1), (1, 0), (0, 7), (2, 0)])
    assert sorted((t.level, t.index, t.width) for t in found) == [(0, 0, 256), (0, 1, 44),
                                                                 (1, 0, 1)]
    assert service.storage.merkle_tiles_at([]) == []
