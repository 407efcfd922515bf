"""`Follower`: forward a live Atlassian audit log directory, every line exactly once.

Atlassian products append JSON lines to ``YYYYMMDD.NNNNN.audit.log`` and start the next file
at local midnight or at 100 MB; the names sort in writing order. The follower polls the
current file for complete lines (a partial line waits for its newline), stores them, and only
then saves its position (`position.StateFile`). A file is finished when a later one exists
and it has nothing more: the writer moves on only after its last write to the old file.

Restarts resume from the saved position. Lines read again after a crash (stored, but the
position not yet saved) get the same uids as before and are recognised by the store, so the
store holds every line once. Uids count identical records per file (`identity`); on resume the
counters are rebuilt from the part of the file already read.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trailkeeper.errors import AuthenticationError, ConfigurationError, PermissionDeniedError
from trailkeeper.transfer.formats import Format
from trailkeeper.transfer.identity import Occurrences, content
from trailkeeper.transfer.importer import Problem
from trailkeeper.transfer.position import HEAD_BYTES, Position, StateFile, head_digest
from trailkeeper.transfer.processor import Numbering, PieceResult, Processor
from trailkeeper.transfer.readers import CHUNK_BYTES, Work, parse
from trailkeeper.transfer.sinks import Interrupted, Target

log = logging.getLogger("trailkeeper.tail")

DEFAULT_PATTERN = "*.audit.log"
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 30.0


@dataclass
class TailSummary:
    stored: int = 0
    present: int | None = 0
    bad: int = 0
    files: int = 0
    position: Position | None = None


class _Current:
    """The file being followed, open (so that it can be finished even once deleted)."""

    def __init__(self, path: Path, offset: int, line: int) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self.inode = os.fstat(self.fd).st_ino
        self.offset = offset
        self.line = line
        self.occurrences = Occurrences()
        self.seq = 0
        self.stalled: tuple[int, int] | None = None  # an unterminated tail seen once

    @property
    def name(self) -> str:
        return self.path.name

    def read(self, size: int, offset: int | None = None) -> bytes:
        return os.pread(self.fd, size, self.offset if offset is None else offset)

    def read_line_ends(self, size: int, offset: int | None = None) -> bytes:
        """About ``size`` bytes, or more until they hold a line break (a line may be longer
        than a batch) or the file ends."""
        data = self.read(size, offset)
        while b"\n" not in data and len(data) == size:
            size *= 2
            data = self.read(size, offset)
        return data

    def position(self) -> Position:
        length = min(HEAD_BYTES, self.offset)
        head = head_digest(self.read(length, 0))
        return Position(self.name, self.offset, self.line, self.inode, head, length)

    def close(self) -> None:
        os.close(self.fd)


class Follower:
    """Follows one directory into one target, keeping its position in ``state``."""

    def __init__(self, directory: Path, target: Target, state: StateFile, *,
                 from_start: bool = True, interval: float = 0.5,
                 pattern: str = DEFAULT_PATTERN, batch_bytes: int = CHUNK_BYTES,
                 on_problem: Callable[[Problem], None] = lambda problem: None) -> None:
        self.directory = directory
        self.target = target
        self.state = state
        self.from_start = from_start
        self.interval = interval
        self.pattern = pattern
        self.batch_bytes = batch_bytes
        self._on_problem = on_problem
        self.summary = TailSummary(present=0 if target.reports_present else None)
        self._current: _Current | None = None
        self._after = ""  # with no current file: the next file's name must sort after this
        self._processor: Processor | None = None

    def run(self, stop: threading.Event | None = None, *, once: bool = False) -> TailSummary:
        """Follow until ``stop`` is set (or, with ``once``, until everything there is read)."""
        stop = stop or threading.Event()
        self.target.prepare()
        sink = self.target.open()
        self._processor = Processor(sink)
        try:
            self._start()
            while not stop.is_set():
                if self._step(stop, once=once):
                    continue
                if once:
                    break
                stop.wait(self.interval)
        except Interrupted:
            log.info("stopped while waiting for the target; the last batch will be re-read")
        finally:
            if self._current is not None:
                self.summary.position = self._current.position()
                self._current.close()
            sink.close()
        return self.summary

    # -- where to begin ----------------------------------------------------------------------

    def _names(self) -> list[str]:
        return sorted(entry.name for entry in os.scandir(self.directory)
                      if fnmatch.fnmatch(entry.name, self.pattern)
                      and not entry.name.startswith(".") and entry.is_file())

    def _start(self) -> None:
        saved = self.state.load()
        names = self._names()
        if saved is not None:
            self._resume(saved, names)
        elif names and self.from_start:
            self._open(names[0], 0, 0)
        elif names:
            offset, lines = _complete_lines(self.directory / names[-1])
            log.info("first run: starting at the end of %s (line %d)", names[-1], lines)
            self._open(names[-1], offset, lines)
        self._save()

    def _resume(self, saved: Position, names: list[str]) -> None:
        path = self.directory / saved.file
        try:
            status = path.stat()
        except FileNotFoundError:
            later = [name for name in names if name > saved.file]
            log.warning("%s, where the last run stopped, no longer exists; continuing with %s",
                        path, later[0] if later else "the next file to appear")
            if later:
                self._open(later[0], 0, 0)
            else:
                self._after = saved.file
            return
        if status.st_size < saved.offset or not saved.same_file(path, status.st_ino):
            log.warning("%s is not the file the last run read (replaced or truncated); "
                        "reading it from its start", path)
            self._open(saved.file, 0, 0)
        else:
            self._open(saved.file, saved.offset, saved.line)

    def _open(self, name: str, offset: int, line: int) -> None:
        current = _Current(self.directory / name, offset, line)
        if offset:
            _count_occurrences(current, offset)
        self._current = current
        self.summary.files += 1
        log.info("following %s from line %d", current.path, line + 1)

    def _save(self) -> None:
        if self._current is not None:
            self.state.save(self._current.position(), directory=str(self.directory),
                            target=str(self.target))

    # -- following ---------------------------------------------------------------------------

    def _step(self, stop: threading.Event, *, once: bool) -> bool:
        """One read; True when it made progress (so the next one should not wait)."""
        names = self._names()  # before reading: a later file seen now means the old is done
        current = self._current
        if current is None:
            later = [name for name in names if name > self._after]
            if not later:
                return False
            self._open(later[0], 0, 0)
            self._save()
            return True
        data = current.read_line_ends(self.batch_bytes)
        cut = data.rfind(b"\n") + 1
        if cut:
            self._forward(current, data[:cut], stop, last=False)
            return True
        if self._replaced(current):
            return True
        later = [name for name in names if name > current.name]
        if not later:
            return False
        if data:
            # An unterminated last line although the writer has moved on: allow it one more
            # interval, then take it as the file's end (stored if whole, else reported).
            if not once and current.stalled != (current.offset, len(data)):
                current.stalled = (current.offset, len(data))
                return False
            self._forward(current, data, stop, last=True)
        log.info("finished %s at line %d", current.path, current.line)
        current.close()
        self._current = None
        self._open(later[0], 0, 0)
        self._save()
        return True

    def _replaced(self, current: _Current) -> bool:
        """A file replaced or truncated under its name is read again from its start."""
        try:
            status = current.path.stat()
        except FileNotFoundError:
            return False  # deleted: what is left is read through the open descriptor
        if status.st_ino == current.inode and status.st_size >= current.offset:
            return False
        log.warning("%s was replaced or truncated; reading it from its start", current.path)
        current.close()
        self._current = None
        self._open(current.name, 0, 0)
        self._save()
        return True

    def _forward(self, current: _Current, data: bytes, stop: threading.Event, *,
                 last: bool) -> None:
        assert self._processor is not None
        current.seq += 1
        work = Work(0, current.seq, Format.LINES, str(current.path), current.offset,
                    current.offset + len(data), data, last)
        digests = self._processor.parse(work)
        numbering = Numbering(0, current.seq, current.line + 1,
                              current.occurrences.repeats(digests.digests))
        result = self._store(numbering, stop)
        summary = self.summary
        summary.stored += result.stored
        if summary.present is not None:
            summary.present += result.present
        for line, message in result.bad:
            summary.bad += 1
            self._on_problem(Problem(str(current.path), line, message))
        current.offset += len(data)
        current.line += digests.newlines + (0 if data.endswith(b"\n") else 1)
        current.stalled = None
        self._save()

    def _store(self, numbering: Numbering, stop: threading.Event) -> PieceResult:
        """Store the parsed batch, retrying while the target is down (the position waits)."""
        assert self._processor is not None
        delay = _RETRY_FIRST_S
        while True:
            try:
                return self._processor.store(numbering, stop)
            except (Interrupted, AuthenticationError, PermissionDeniedError, ConfigurationError):
                raise  # retrying cannot help: wrong credentials or a wrong URL
            except Exception as exc:
                log.error("storing events failed (%s); retrying in %.1f s", exc, delay)
                if stop.wait(delay):
                    raise Interrupted from None
                delay = min(delay * 2, _RETRY_MAX_S)


def _complete_lines(path: Path) -> tuple[int, int]:
    """The offset after the last line break of a file, and the number of lines before it."""
    offset = lines = 0
    with path.open("rb") as file:
        position = 0
        while block := file.read(CHUNK_BYTES):
            cut = block.rfind(b"\n")
            if cut >= 0:
                lines += block.count(b"\n")
                offset = position + cut + 1
            position += len(block)
    return offset, lines


def _count_occurrences(current: _Current, end: int) -> None:
    """Rebuild the occurrence counters of a file's first ``end`` bytes (already stored)."""
    offset = 0
    while offset < end:
        data = current.read_line_ends(CHUNK_BYTES, offset)[:end - offset]
        cut = data.rfind(b"\n") + 1
        if not cut:
            break  # cannot happen: the end is just after a line break
        for event in parse(Work(0, 1, Format.LINES, str(current.path), offset,
                                offset + cut, data[:cut])).events:
            if event.uid is None:
                current.occurrences.count(content(event)[1])
        offset += cut
