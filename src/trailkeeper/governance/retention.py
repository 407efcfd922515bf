"""Database retention: events past the retention period, and the oldest beyond the row
limit, are deleted in small batches by a job that runs once per cluster; every run is
itself an audit event ("Audit Log retention run"). No API deletes events; this does.

Atlassian's rules (reference §3.4), which these follow:

- by age: events older than ``now - period`` (default 3 years), at most once every 23 hours
  (the scheduler checks every few minutes, so the first node to look after 23 h runs it);
- by row limit: hourly, when more than ``max_rows`` (default 10,000,000) events are stored,
  the oldest are deleted down to ``max_rows - 1,000`` (a buffer, so the next hour's events
  do not trip it again at once), never below 10,000. A limit under 10,000 acts as 10,000.

"Once per cluster" is a lease in the ``job_runs`` table (`Storage.claim_job`): the run
renews it between batches and stops if another node has taken it over. Deleting happens in
batches of `DEFAULT_BATCH_SIZE` events, each its own short transaction, with a pause after
each so that ingest keeps the writer (see bench/retention.py for the figures).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from trailkeeper.governance.config import MIN_ROWS
from trailkeeper.governance.period import Period
from trailkeeper.metrics import Metrics
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import AuditAttribute, AuditAuthor, AuditEvent, AuditType
from trailkeeper.model.timestamps import format_iso, now_ms
from trailkeeper.query.ast import MatchAll
from trailkeeper.storage.base import Storage

log = logging.getLogger("trailkeeper.retention")

ROW_LIMIT_BUFFER = 1_000
DEFAULT_BATCH_SIZE = 2_000
DEFAULT_PAUSE_S = 0.05
# After each batch, rest at least this many times as long as the batch took: retention then
# holds the writer a bounded share of the time, less on a busy store (its batches wait).
DEFAULT_PAUSE_RATIO = 2.0

AGE_JOB = "retention.age"
ROW_LIMIT_JOB = "retention.row-limit"
AGE_INTERVAL_MS = 23 * 3600 * 1000
ROW_LIMIT_INTERVAL_MS = 3600 * 1000
LEASE_MS = 10 * 60 * 1000  # renewed between batches; a node that died loses it after this

ACTION = "Audit Log retention run"
CATEGORY = "Auditing"
CATEGORY_KEY = "atlassian.audit.event.category.audit"

# Who started a run (the "Trigger" attribute of its event).
SCHEDULE = "schedule"
MANUAL = "manual"
ROW_LIMIT_CHECK = "row limit check"


def row_limit_bounds(max_rows: int) -> tuple[int, int]:
    """(limit, keep): above ``limit`` stored events the oldest are deleted until ``keep``
    remain."""
    limit = max(max_rows, MIN_ROWS)
    return limit, max(limit - ROW_LIMIT_BUFFER, MIN_ROWS)


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one run did. ``period``/``cutoff_ms`` are None for the hourly row-limit check;
    ``completed`` is False when it stopped early (asked to stop, lease lost, or an error,
    then in ``error``)."""

    trigger: str
    started_ms: int
    finished_ms: int
    period: Period | None
    cutoff_ms: int | None
    max_rows: int
    keep_rows: int
    deleted_by_age: int
    deleted_by_row_limit: int
    batches: int
    completed: bool
    error: str | None = None
    started_by: str | None = None  # who forced a manual run (e.g. ``os:alice``)
    # For verifiers (docs/integrity.md): no event deleted was newer than this; and the
    # Merkle tree's leaf records are kept from this event id on.
    deleted_up_to_ms: int | None = None
    merkle_kept_from_id: int | None = None

    @property
    def deleted(self) -> int:
        return self.deleted_by_age + self.deleted_by_row_limit

    @property
    def duration_ms(self) -> int:
        return self.finished_ms - self.started_ms

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return f"failed: {self.error}"
        return "completed" if self.completed else "stopped before the end"

    def attributes(self) -> list[tuple[str, str]]:
        """The event's extra attributes, as (name, value)."""
        out = [("Trigger", self.trigger), ("Outcome", self.outcome)]
        if self.started_by is not None:
            out.append(("Started by", self.started_by))
        if self.period is not None and self.cutoff_ms is not None:
            out += [("Retention period", f"{self.period.describe()} ({self.period.iso()})"),
                    ("Deleted events older than", format_iso(self.cutoff_ms)),
                    ("Events deleted by age", str(self.deleted_by_age))]
        out += [("Row limit", str(self.max_rows)),
                ("Rows kept when over the limit", str(self.keep_rows)),
                ("Events deleted by row limit", str(self.deleted_by_row_limit)),
                ("Events deleted", str(self.deleted)),
                ("Duration (ms)", str(self.duration_ms))]
        if self.deleted_up_to_ms is not None:
            out.append(("Deleted events up to", format_iso(self.deleted_up_to_ms)))
        if self.merkle_kept_from_id is not None:
            out.append(("Merkle leaves kept from event ID", str(self.merkle_kept_from_id)))
        return out

    def event(self, node: str | None = None) -> AuditEvent:
        """The audit event recording this run (category "Auditing", area AUDIT_LOG)."""
        return AuditEvent(
            type=AuditType(category=CATEGORY, action=ACTION, area=CoverageArea.AUDIT_LOG,
                           level=CoverageLevel.BASE, category_i18n_key=CATEGORY_KEY),
            author=AuditAuthor.SYSTEM,
            extra_attributes=tuple(AuditAttribute(name, value)
                                   for name, value in self.attributes()),
            node=node,
        )


class RetentionJob:
    """Deletes expired events from one store; `run` and `enforce_row_limit` are safe to call
    on every node (only one wins the lease). ``period`` and ``max_rows`` are read at each
    run, so a changed setting applies to the next one; ``record`` stores the run's event."""

    def __init__(
        self,
        storage: Storage,
        *,
        period: Callable[[], Period],
        max_rows: Callable[[], int],
        record: Callable[[AuditEvent], None],
        clock: Callable[[], int] = now_ms,
        batch_size: int = DEFAULT_BATCH_SIZE,
        pause_s: float = DEFAULT_PAUSE_S,
        pause_ratio: float = DEFAULT_PAUSE_RATIO,
        metrics: Metrics | None = None,
        node: str | None = None,
        owner: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.storage = storage
        self._period = period
        self._max_rows = max_rows
        self._record = record
        self._clock = clock
        self.batch_size = batch_size
        self.pause_s = pause_s
        self.pause_ratio = pause_ratio
        self._metrics = metrics
        self._node = node
        # Unique per job object: a second process on the same host is another owner.
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stopping = threading.Event()
        self._running = threading.Lock()  # one run at a time in this process

    def stop(self) -> None:
        """Make a run in progress end after its current batch (for good: for shutdown)."""
        self._stopping.set()

    def run(self, force: bool = False, *, started_by: str | None = None
            ) -> RetentionReport | None:
        """Delete by age, then by row limit, and record the run; None when another node
        holds the lease or (unless ``force``) the last run was less than 23 h ago.
        ``started_by`` names who forced it, for the record."""
        return self._run(AGE_JOB, AGE_INTERVAL_MS, MANUAL if force else SCHEDULE,
                         force=force, by_age=True, started_by=started_by)

    def enforce_row_limit(self) -> RetentionReport | None:
        """The hourly check: delete the oldest events when over the row limit. Recorded as
        an event only when it deleted something; None when it was not this node's turn."""
        return self._run(ROW_LIMIT_JOB, ROW_LIMIT_INTERVAL_MS, ROW_LIMIT_CHECK,
                         force=False, by_age=False)

    # -- one run ---------------------------------------------------------------------------

    def _run(self, job: str, interval_ms: int, trigger: str, *, force: bool,
             by_age: bool, started_by: str | None = None) -> RetentionReport | None:
        with self._running:
            # Settings first: nothing can fail between taking the lease and the try below.
            period = self._period() if by_age else None
            max_rows = self._max_rows()
            limit, keep = row_limit_bounds(max_rows)
            started = self._clock()
            if not self.storage.claim_job(job, self.owner, started, LEASE_MS,
                                          0 if force else interval_ms):
                return None
            run = _Run(job, started + LEASE_MS // 3)
            cutoff = period.cutoff_ms(started) if period is not None else None
            error: BaseException | None = None
            try:
                if cutoff is not None:
                    self._drain(run, "age",
                                lambda n: self.storage.delete_events_before(cutoff, n))
                if run.going and self._over(limit):
                    self._drain(run, "row_limit",
                                lambda n: self.storage.delete_oldest_events(keep, n))
            except BaseException as exc:  # recorded, then raised again
                error = exc
            up_to, kept_from = (self._aftermath(cutoff, run) if run.deleted and error is None
                                else (None, None))
            report = RetentionReport(
                trigger=trigger, started_ms=started, finished_ms=self._clock(), period=period,
                cutoff_ms=cutoff, max_rows=max_rows, keep_rows=keep,
                deleted_by_age=run.deleted.get("age", 0),
                deleted_by_row_limit=run.deleted.get("row_limit", 0), batches=run.batches,
                completed=run.going and error is None,
                error=None if error is None else (str(error) or type(error).__name__),
                started_by=started_by, deleted_up_to_ms=up_to, merkle_kept_from_id=kept_from)
            try:
                if by_age or report.deleted:
                    self._record(report.event(self._node))
            finally:
                if run.leased:
                    self.storage.finish_job(job, self.owner, report.finished_ms,
                                            completed=report.completed)
            log.log(logging.WARNING if error else logging.INFO,
                    "retention (%s): %s; deleted %d by age, %d by row limit in %d ms",
                    trigger, report.outcome, report.deleted_by_age,
                    report.deleted_by_row_limit, report.duration_ms)
            if error is not None:
                raise error
            return report

    def _aftermath(self, cutoff: int | None, run: _Run) -> tuple[int | None, int | None]:
        """After deleting: the newest time a deleted event can have, and the first event id
        whose Merkle leaf is kept, once the leaf tiles of deleted events are removed."""
        up_to = cutoff - 1 if cutoff is not None and run.deleted.get("age") else None
        if run.deleted.get("row_limit"):
            # The oldest events went first, in (time, id) order: none was newer than the
            # oldest one left.
            oldest = self.storage.search(MatchAll(), limit=1, descending=False).events
            if oldest:
                up_to = max(up_to or 0, oldest[0].timestamp_ms)
        first = self.storage.events_after(0, 1)
        if not first:
            return up_to, None
        self.storage.merkle_prune(first[0].id)
        return up_to, first[0].id

    def _over(self, limit: int) -> bool:
        """Whether more than ``limit`` events are stored: counted exactly only when the
        fast estimate is not clearly below (a full count of a large store is slow)."""
        if self.storage.estimated_count() <= limit * 0.9:
            return False
        return self.storage.count(MatchAll()) > limit

    def _drain(self, run: _Run, reason: str, delete: Callable[[int], int]) -> None:
        """Call ``delete(batch_size)`` until it deletes less than a full batch, resting
        between batches and renewing the lease as it goes."""
        counter = self._metrics.events_deleted.labels(reason=reason) if self._metrics else None
        while run.going:
            if self._stopping.is_set() or not self._renew(run):
                run.going = False
                return
            began = time.monotonic()
            count = delete(self.batch_size)
            took = time.monotonic() - began
            if count:
                run.batches += 1
                run.deleted[reason] = run.deleted.get(reason, 0) + count
                if counter is not None:
                    counter.inc(count)
            if count < self.batch_size:
                return
            self._stopping.wait(max(self.pause_s, took * self.pause_ratio))

    def _renew(self, run: _Run) -> bool:
        """Extend the lease when a third of it has passed; False when another node has
        taken it over (this one was presumed dead)."""
        now = self._clock()
        if now < run.renew_at_ms:
            return True
        if self.storage.claim_job(run.job, self.owner, now, LEASE_MS, 0):
            run.renew_at_ms = now + LEASE_MS // 3
            return True
        log.warning("retention: another node took over job %s; stopping", run.job)
        run.leased = False
        return False


@dataclass(slots=True)
class _Run:
    """The state of one run's batch loop."""

    job: str
    renew_at_ms: int
    deleted: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    going: bool = True  # False once asked to stop or the lease was lost
    leased: bool = True


class RetentionScheduler:
    """Checks every ``check_every_s`` (first after ``first_check_s``) whether the age job is
    due (23 h after the cluster's last run) and the row limit check (hourly), on a daemon
    thread. Safe on every node of a cluster."""

    def __init__(self, job: RetentionJob, *, check_every_s: float = 300.0,
                 first_check_s: float = 60.0) -> None:
        self.job = job
        self.check_every_s = check_every_s
        self.first_check_s = first_check_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the retention scheduler was started already")
        self._thread = threading.Thread(target=self._loop, name="trailkeeper-retention",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop checking; a run in progress ends after its current batch (and is recorded)."""
        self._stop.set()
        self.job.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def check(self) -> list[RetentionReport]:
        """One check: run whichever job is due (the scheduler's step, callable directly)."""
        done = []
        for step in (self.job.run, self.job.enforce_row_limit):
            if self._stop.is_set():
                break
            report = step()
            if report is not None:
                done.append(report)
        return done

    def _loop(self) -> None:
        wait = self.first_check_s
        while not self._stop.wait(wait):
            began = time.monotonic()
            try:
                self.check()
            except Exception:
                log.exception("retention check failed; trying again at the next check")
            wait = max(self.check_every_s - (time.monotonic() - began), 1.0)
