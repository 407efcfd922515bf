"""`IntegrityConsumer`: grows the Merkle tree over the committed log and signs checkpoints.

A consumer of the committed log like the file sink and detection (`trailkeeper.consumers`):
it reads events in id order after its position, appends each one's leaf record
(`trailkeeper.integrity.canonical`) to the tree, and saves the changed tiles with its new
position in ONE transaction — only if the stored position is still the one it read, so two
builders can never interleave leaves (`Storage.merkle_save`). One process per cluster builds
(the ``integrity`` lease).

A checkpoint (the C2SP signed note of origin, size and root) is signed once ``every_events``
leaves were added since the last one, or ``every_s`` seconds passed and something other than
checkpoint records was added, and at once after a retention run was hashed (so that the
pruning is itself covered). It is saved in the same transaction as the tiles it covers, and
then recorded as an audit event ("Audit Log checkpoint signed", `trailkeeper.integrity.record`)
that reaches the audit log files and every SIEM like any other.

Hashing happens here, off the ingest path: a commit does not wait for it. Events are in the
tree a fraction of a second after they commit (the lag is the ``consumer_lag{consumer=
"integrity"}`` gauge); what the log proves is what the checkpoints cover. Most events come
with the leaf digest their writer stored (`AuditService.digest_leaves`); the others' are
derived from their documents, as the verifier derives every one.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from trailkeeper.consumers.base import Poller
from trailkeeper.consumers.lease import Lease
from trailkeeper.errors import StateError
from trailkeeper.governance.retention import ACTION as RETENTION_ACTION
from trailkeeper.integrity import record
from trailkeeper.integrity.canonical import digest_record, stored_record
from trailkeeper.integrity.keys import Signer, load_or_create_signer
from trailkeeper.integrity.note import signed_checkpoint
from trailkeeper.integrity.tree import TreeBuilder, edge_tiles
from trailkeeper.metrics import Metrics
from trailkeeper.model.event import AuditEvent
from trailkeeper.storage.base import LeafRow, Storage
from trailkeeper.storage.merkle import POSITION, CheckpointRecord

log = logging.getLogger("trailkeeper.integrity")

CONSUMER = POSITION
DEFAULT_BATCH = 5_000
DEFAULT_EVERY_EVENTS = 10_000
DEFAULT_EVERY_S = 60.0
# The actions the builder looks out for, marked 1 and 2 in the rows it reads: a batch of
# nothing but our own checkpoint records does not call for another checkpoint; a retention
# run calls for one at once.
_MARKED = (record.ACTION, RETENTION_ACTION)
_CHECKPOINT_MARK, _RETENTION_MARK = 1, 2


def _now_ms() -> int:
    return int(time.time() * 1000)


class IntegrityConsumer:
    """Builds the tree and signs its checkpoints (see the module's description)."""

    def __init__(self, storage: Storage, key_path: Path, *, origin: str | None = None,
                 record_event: Callable[[AuditEvent], object] | None = None,
                 node: str | None = None, every_events: int = DEFAULT_EVERY_EVENTS,
                 every_s: float = DEFAULT_EVERY_S, metrics: Metrics | None = None,
                 lease: Lease | None = None, batch_size: int = DEFAULT_BATCH,
                 poll_interval_s: float = 0.5, standby_retry_s: float = 5.0,
                 clock: Callable[[], int] = _now_ms) -> None:
        self.storage = storage
        self.key_path = key_path
        self.configured_origin = origin
        self.origin = origin or ""  # settled when the tree is loaded (see _resume)
        self.signer: Signer | None = None
        self.every_events = every_events
        self.every_ms = int(every_s * 1000)
        self._record_event = record_event
        self._node = node
        self._metrics = metrics or Metrics()
        self._lease = lease
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._standby_retry_s = standby_retry_s
        self._clock = clock
        self._ready = False
        self._tree = TreeBuilder()
        self._last_id = 0
        self._state: str | None = None  # the stored position, as saved
        self._checkpoint: CheckpointRecord | None = None  # the latest
        self._grew = False  # leaves other than checkpoint records since the latest
        self._poller = Poller(CONSUMER, self._step, finish=self._finish)

    @property
    def name(self) -> str:
        return CONSUMER

    @property
    def size(self) -> int:
        return self._tree.size

    @property
    def latest(self) -> CheckpointRecord | None:
        return self._checkpoint

    def start(self) -> None:
        self._poller.start()

    def notify(self) -> None:
        self._poller.notify()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Hash what is committed and sign a last checkpoint (for up to ``timeout``
        seconds), then stop."""
        if self._poller.running:
            self._poller.stop(timeout)
        elif self._lease is not None:
            self._lease.release()

    def drain(self, *, checkpoint: bool = False) -> int:
        """Hash every event committed so far, now, in this thread (and sign a checkpoint of
        the result when ``checkpoint`` and the tree grew); the events read."""
        total = 0
        while True:
            read = self.process_batch()
            total += read
            if read < self._batch_size:
                break
        if checkpoint:
            self.sign(force=False)
        return total

    # -- the work --------------------------------------------------------------------------

    def _step(self) -> float:
        if self._lease is not None:
            was_held = self._lease.held
            if not self._lease.hold():
                self._ready = False
                return self._standby_retry_s
            if not was_held:
                self._ready = False  # another node may have moved on: start from its position
        read = self.process_batch()
        return 0.0 if read == self._batch_size else self._poll_interval_s

    def _finish(self, deadline: float | None) -> None:
        try:
            if self._lease is None or self._lease.held:
                while deadline is None or time.monotonic() < deadline:
                    if self.process_batch() < self._batch_size:
                        break
                self.sign(force=False)
        finally:
            if self._lease is not None:
                self._lease.release()

    def process_batch(self) -> int:
        """Hash one batch of committed events now, in this thread, signing a checkpoint when
        one is due; the events read (0: none waiting)."""
        cpu = time.thread_time()
        try:
            read = self._hash_batch()
        finally:
            self._metrics.merkle_build_cpu.inc(time.thread_time() - cpu)
        self._metrics.merkle_leaves.inc(read)
        self._metrics.consumer_lag.labels(consumer=CONSUMER).set(
            max(0, self.storage.max_id() - self._last_id) if read else 0)
        return read

    def _hash_batch(self) -> int:
        try:
            if not self._ready:
                self._resume()
            rows = self.storage.leaf_rows_after(self._last_id, self._batch_size, _MARKED)
            retention_run = self._append(rows)
            due = self._due(retention_run)
            self._save(rows[-1][0] if rows else self._last_id, due)
        except BaseException:
            self._ready = False  # the tree in memory may be ahead of the store: reload
            raise
        return len(rows)

    def sign(self, *, force: bool = True) -> CheckpointRecord | None:
        """Sign a checkpoint of the tree as it is now (unless ``force`` is False and nothing
        but checkpoint records was added since the latest); the checkpoint, or None."""
        if not self._ready:
            self._resume()
        if not force and not self._grew:
            return None
        if self._tree.size == 0 or (self._checkpoint is not None
                                    and self._checkpoint.size == self._tree.size):
            return None
        self._save(self._last_id, True)
        return self._checkpoint

    def _append(self, rows: list[LeafRow]) -> bool:
        """Add the events' leaves; whether one of them records a retention run."""
        if not rows:
            return False
        # Columns at C speed (zip, map): this runs for every event the log takes.
        ids, times, marks, digests, _ = zip(*rows, strict=True)  # see `leaf_rows_after`
        from_docs = digests.count(None)
        if from_docs:
            records = [digest_record(r[0], r[1], r[3]) if r[3] is not None
                       else _record_of_doc(r) for r in rows]
        else:
            records = list(map(digest_record, ids, times, digests))
        self._tree.extend(records)
        self._metrics.merkle_leaves_stored_digest.inc(len(rows) - from_docs)
        kinds = set(marks)
        if kinds - {_CHECKPOINT_MARK}:
            self._grew = True
        return _RETENTION_MARK in kinds

    def _due(self, retention_run: bool) -> bool:
        size = self._tree.size
        latest = self._checkpoint
        if size == 0 or (latest is not None and latest.size == size) or not self._grew:
            return False
        if latest is None or retention_run or size - latest.size >= self.every_events:
            return True
        return self._clock() - latest.created_ms >= self.every_ms

    def _save(self, last_id: int, checkpoint_now: bool) -> None:
        tiles = self._tree.take_dirty()
        size = self._tree.size
        checkpoint = self._make_checkpoint(last_id) if checkpoint_now else None
        if not tiles and checkpoint is None and last_id == self._last_id:
            return
        state = orjson.dumps({"id": last_id, "size": size}).decode()
        if not self.storage.merkle_save(tiles, state, self._state, checkpoint):
            raise StateError("another process extended the Merkle tree (the integrity lease"
                             " changed hands); reloading")
        self._state, self._last_id = state, last_id
        if checkpoint is not None:
            self._checkpoint, self._grew = checkpoint, False
            self._metrics.checkpoints_signed.inc()
            self._metrics.checkpoint_size.set(checkpoint.size)
            log.info("checkpoint signed: %d events, root %s", checkpoint.size,
                     checkpoint.root.hex())
            self._announce(checkpoint)

    def _announce(self, checkpoint: CheckpointRecord) -> None:
        """Record the checkpoint as an audit event; it is stored already, so a failure here
        (the service closing) loses only the copy in the log."""
        if self._record_event is None or self.signer is None:
            return
        try:
            self._record_event(record.checkpoint_event(
                checkpoint, self.signer.verifier().key_string, self._node))
        except Exception:
            log.exception("the checkpoint of %d events was not recorded as an event",
                          checkpoint.size)

    def _make_checkpoint(self, last_id: int) -> CheckpointRecord:
        assert self.signer is not None  # set by _resume
        size, root = self._tree.size, self._tree.root()
        return CheckpointRecord(
            size=size, root=root, last_id=last_id, created_ms=self._clock(),
            origin=self.origin, note=signed_checkpoint(self.origin, size, root, self.signer),
            compact_range=tuple(self._tree.compact_range()))

    def _resume(self) -> None:
        """Load the position and the right edge of the tree from the store."""
        self._state = self.storage.get_position(CONSUMER)
        state: Any = {"id": 0, "size": 0} if self._state is None else orjson.loads(self._state)
        size, last_id = state.get("size"), state.get("id")
        if not isinstance(size, int) or not isinstance(last_id, int) or size < 0:
            raise StateError(f"the saved position of the Merkle tree is not usable: "
                             f"{self._state!r}")
        edge = [tile for level, index, count in edge_tiles(size) if count
                for tile in self.storage.merkle_tiles(level, index, index)]
        self._tree = TreeBuilder(size, edge)
        self._last_id = last_id
        self._checkpoint = self.storage.checkpoint()
        self._grew = self._checkpoint is None or self._checkpoint.size < size
        self.origin = self._settle_origin()
        self.signer = load_or_create_signer(self.key_path, self.origin)
        self.storage.put_signing_key(self.signer.verifier().key_string, self._clock())
        log.info("integrity: Merkle tree of %d events, from event %d", size, last_id + 1)
        self._ready = True

    def _settle_origin(self) -> str:
        """The configured origin, else the one this log's checkpoints already use, else a
        new unique one (a log keeps its name: verifiers check it)."""
        latest = self._checkpoint.origin if self._checkpoint is not None else None
        if self.configured_origin:
            if latest is not None and latest != self.configured_origin:
                log.warning("integrity: checkpoints so far name the log %r; new ones will "
                            "name it %r, as configured", latest, self.configured_origin)
            return self.configured_origin
        return latest or f"trailkeeper/{secrets.token_hex(4)}"


def _record_of_doc(row: LeafRow) -> bytes:
    """The leaf record of an event stored without a leaf digest, from its document."""
    event_id, ts, _, _, doc = row
    if doc is None:  # the store's query asks for one or the other
        raise StateError(f"event {event_id} came without leaf digest and document")
    return stored_record(event_id, ts, doc)
