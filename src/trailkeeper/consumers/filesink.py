"""`FileSink`: the committed log as Atlassian-format audit log files, each event exactly once.

Events are written in id order, one JSON line each (`fileline.file_line`: the file shape of
Atlassian's §2.2, plus our ``id`` and ``uid``), to ``YYYYMMDD.NNNNN.audit.log`` files in the
node's ``log/audit`` directory (`logfiles`). A new file starts at the first write after local
midnight, or when the current file has reached ``max_file_bytes`` (checked before each batch,
as Atlassian does, so a file can overshoot by one batch); the oldest files are then deleted
so that at most ``max_file_count()`` remain.

Exactly once, across crashes. The position saved in the store (consumer ``file-sink:<node>``)
is ``{"id": last id written, "file": name, "offset": bytes}``, saved only after the lines
before it are written and fsynced (after each batch, or with a backlog after the batches of
about a second: saving waits for the store's writers), and saved with offset 0 as soon as a
new file is created, before any line goes in. So every byte beyond the saved offset of the
saved file belongs to events after the saved id: on start, or after any failure, the sink
truncates the file to the offset (removing a partial line, or whole lines written but not
recorded) and writes again from the saved id. Files created after the saved position are
empty and removed.

One sink per directory: with ``serve --workers N`` every worker runs one, but only the holder
of the ``flock`` on ``log/audit/.sink.lock`` writes; the others stay on standby and try again
every few seconds, so a surviving worker takes over when the holder dies.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from pathlib import Path

from trailkeeper.consumers.base import Poller
from trailkeeper.consumers.cursor import LogCursor
from trailkeeper.consumers.fileline import file_line
from trailkeeper.consumers.logfiles import LogDirectory, SinkLock, date_of, write_all
from trailkeeper.errors import TrailkeeperError
from trailkeeper.metrics import Metrics
from trailkeeper.storage.base import Storage, StoredEvent

log = logging.getLogger("trailkeeper.consumers.files")

DEFAULT_MAX_FILE_COUNT = 100
DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024
DEFAULT_BATCH = 5000


class FileSinkBusyError(TrailkeeperError):
    """Another process writes this node's audit log files (it holds the sink lock)."""

    http_status = 409
    exit_code = 1


def _default_file_count() -> int:
    return DEFAULT_MAX_FILE_COUNT


class FileSink:
    """Writes every committed event to the Atlassian-format audit log files of one node.

    ``max_file_count`` is read at every new file (a live setting); ``clock`` (epoch seconds)
    and ``tz`` (None: the system's local time) decide the date in file names.
    """

    def __init__(
        self,
        storage: Storage,
        directory: Path,
        node: str,
        *,
        max_file_count: Callable[[], int] = _default_file_count,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
        batch_size: int = DEFAULT_BATCH,
        poll_interval_s: float = 0.2,
        standby_retry_s: float = 5.0,
        save_interval_s: float = 1.0,
    ) -> None:
        self.storage = storage
        self.directory = LogDirectory(Path(directory))
        self.node = node
        self._cursor = LogCursor(storage, f"file-sink:{node}")
        self._max_file_count = max_file_count
        self._max_file_bytes = max_file_bytes
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._tz = tz
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._standby_retry_s = standby_retry_s
        self._save_interval_s = save_interval_s
        self._lock = SinkLock(self.directory.path)
        self._step_lock = threading.Lock()  # one batch at a time (thread, drain, stop)
        self._fd: int | None = None
        self._file: str | None = None
        self._offset = 0
        self._recovered = False  # the file on disk matches the saved position
        self._poller = Poller(self.name, self._step, finish=self._finish)

    # -- the public surface ----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The key of the saved position: ``file-sink:<node>``."""
        return self._cursor.name

    @property
    def active(self) -> bool:
        """Whether this sink holds the lock (the others are on standby)."""
        return self._lock.held

    @property
    def current_file(self) -> str | None:
        return self._file

    @property
    def last_id(self) -> int:
        """The id of the last event written and recorded."""
        return self._cursor.last_id

    def start(self) -> None:
        """Write in the background: poll every ``poll_interval_s``, sooner on `notify`."""
        self.directory.create()
        self._poller.start()

    def notify(self) -> None:
        """Events were committed: write them now rather than at the next poll."""
        self._poller.notify()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Write what is committed (for up to ``timeout`` seconds), release the lock, close.

        Call it after the service's writer has drained, so its last events are included;
        whatever is left is written at the next start.
        """
        if self._poller.running:
            self._poller.stop(timeout)
        else:
            self.close()

    def drain(self) -> int:
        """Write every event committed so far, now, in this thread; the events written.

        Takes the lock first if needed; `FileSinkBusyError` when another process holds it.
        """
        with self._step_lock:
            if not self._lock.held and not self._take_over():
                raise FileSinkBusyError(
                    f"another process writes the audit log files in {self.directory.path}")
            total, more = 0, True
            while more:
                written, more = self._write_round()
                total += written
            return total

    def close(self) -> None:
        """Close the current file and release the lock (nothing is lost: see `stop`)."""
        with self._step_lock:
            self._release()

    # -- the background thread -------------------------------------------------------------

    def _step(self) -> float:
        with self._step_lock:
            if not self._lock.held and not self._take_over():
                return self._standby_retry_s
            _, more = self._write_round()
        return 0.0 if more else self._poll_interval_s

    def _finish(self, deadline: float | None) -> None:
        with self._step_lock:
            try:
                while self._lock.held and (deadline is None or time.monotonic() < deadline):
                    if not self._write_round()[1]:
                        break
            finally:
                self._release()

    def _take_over(self) -> bool:
        self.directory.create()
        if not self._lock.try_acquire():
            return False
        log.info("writing the audit log files in %s", self.directory.path)
        self._recovered = False
        return True

    def _release(self) -> None:
        self._close_file()
        if self._lock.held:
            log.info("stopped writing the audit log files in %s", self.directory.path)
        self._lock.release()
        self._recovered = False

    # -- writing ---------------------------------------------------------------------------

    def _write_round(self) -> tuple[int, bool]:
        """Events after the saved position, written batch by batch until none are left or
        ``save_interval_s`` passed, then fsynced and recorded: (events written, whether
        more may be waiting).

        Saving is the slow part under load (it waits for the store's writers), so with a
        backlog one save covers several batches; a crash rewrites at most those.
        """
        written = lines = 0
        more = False
        began = time.monotonic()
        try:
            if not self._recovered:
                self._recover()
            last_id = self._cursor.last_id
            while True:
                events = self._cursor.read(self._batch_size, after=last_id)
                if not events:
                    break
                rendered = _render(events)
                data = b"".join(rendered)
                self._ensure_file(last_id)  # checked before each batch
                assert self._fd is not None
                write_all(self._fd, data)
                self._offset += len(data)
                last_id = events[-1].id
                written += len(events)
                lines += len(rendered)
                more = len(events) == self._batch_size
                if not more or time.monotonic() - began >= self._save_interval_s:
                    break
            if written:
                assert self._fd is not None
                os.fsync(self._fd)
                self._cursor.save(last_id, file=self._file, offset=self._offset)
        except BaseException:
            # Whatever reached the file after the saved offset is cut off before going on.
            self._recovered = False
            raise
        self._metrics.file_sink_lines.inc(lines)
        lag = self._cursor.lag() if written else 0
        self._metrics.consumer_lag.labels(consumer=self.name).set(lag)
        return written, more

    def _recover(self) -> None:
        """Bring the files back to the saved position (see the module's docstring)."""
        state = self._cursor.load()
        self._close_file()
        name, offset = state.get("file"), state.get("offset", 0)
        if isinstance(name, str) and date_of(name) is None:
            log.warning("ignoring the recorded audit log file name %r", name)
            name = None
        if isinstance(name, str) and (self.directory.path / name).is_file():
            fd = self.directory.open_append(name)
            try:
                size = os.fstat(fd).st_size
                if size > offset:
                    log.info("%s: removing %d bytes written after the last recorded position;"
                             " they are written again", name, size - offset)
                    os.ftruncate(fd, offset)
                    os.fsync(fd)
                    size = offset
                elif size < offset:
                    log.warning("%s is %d bytes shorter than recorded: it was changed by"
                                " someone else", name, offset - size)
            except BaseException:
                os.close(fd)
                raise
            self._fd, self._file, self._offset = fd, name, size
            self.directory.remove_empty_after(name)
        elif isinstance(name, str):
            log.warning("the audit log file %s is gone; starting a new one", name)
        self._recovered = True

    def _ensure_file(self, last_id: int) -> None:
        """Start a new file when there is none, the local date changed or it is full;
        ``last_id``: the last event written so far."""
        today = datetime.fromtimestamp(self._clock(), self._tz).strftime("%Y%m%d")
        current = date_of(self._file) if self._file else None
        if self._fd is None or current is None:
            self._start_file(today, last_id)
        elif today > current or self._offset >= self._max_file_bytes:
            # A clock set back keeps the newest date, so that names keep sorting in order.
            self._start_file(max(today, current), last_id)

    def _start_file(self, date: str, last_id: int) -> None:
        """A new current file, recorded (with ``last_id``) before anything is written to it."""
        if self._fd is not None:
            os.fsync(self._fd)  # the lines up to last_id are in the files for good
        name = self.directory.next_name(date)
        fd = self.directory.open_append(name)
        try:
            self.directory.sync()
            self._cursor.save(last_id, file=name, offset=0)
        except BaseException:
            os.close(fd)
            raise
        self._close_file()
        self._fd, self._file, self._offset = fd, name, 0
        log.info("started the audit log file %s", name)
        try:
            keep = self._max_file_count()
        except Exception:
            log.exception("cannot read the audit log file count; keeping %d files",
                          DEFAULT_MAX_FILE_COUNT)
            keep = DEFAULT_MAX_FILE_COUNT
        self.directory.prune(keep, name)

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._file, self._offset = None, None, 0


def _render(events: Sequence[StoredEvent]) -> list[bytes]:
    """The batch's lines. A row that cannot be rendered (a damaged document) is logged and
    left out rather than stopping the sink for good."""
    lines: list[bytes] = []
    for event in events:
        try:
            lines.append(file_line(event))
        except Exception:
            log.exception("event %d cannot be written to the audit log file; skipped", event.id)
    return lines
