"""The directory of Atlassian audit log files: names, the next file, pruning, durability.

Names are ``YYYYMMDD.NNNNN.audit.log`` (Atlassian's §3.5): the local date and a 5-digit
sequence that starts at ``00000`` each day, so names sort in writing order. Each change to
the directory (a file created or deleted) is made durable with an fsync of the directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from pathlib import Path

log = logging.getLogger("trailkeeper.consumers.files")

SUFFIX = ".audit.log"
LOCK_NAME = ".sink.lock"
_NAME = re.compile(r"^(\d{8})\.(\d{5,})\.audit\.log$")
_FILE_MODE = 0o640  # audit trails are not for every local user


def audit_log_dir(home: Path) -> Path:
    """Where a node writes its files: ``$TRAILKEEPER_HOME/log/audit``."""
    return home / "log" / "audit"


def date_of(name: str) -> str | None:
    """``YYYYMMDD`` of a file name of ours, None for other names."""
    match = _NAME.match(name)
    return match.group(1) if match else None


class LogDirectory:
    """One node's audit log directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def names(self) -> list[str]:
        """Every ``*.audit.log`` file, oldest (smallest name) first."""
        return sorted(entry.name for entry in os.scandir(self.path)
                      if entry.name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False))

    def next_name(self, date: str) -> str:
        """The name of a new file on ``date``: after every file of that day."""
        used = [int(m.group(2)) for name in self.names()
                if (m := _NAME.match(name)) and m.group(1) == date]
        return f"{date}.{max(used, default=-1) + 1:05d}{SUFFIX}"

    def open_append(self, name: str) -> int:
        """A descriptor appending to ``name`` (created when missing)."""
        return os.open(self.path / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                       _FILE_MODE)

    def prune(self, keep: int, current: str) -> list[str]:
        """Delete the oldest files by name until at most ``keep`` remain; never ``current``."""
        names = self.names()
        excess = len(names) - max(keep, 1)
        deleted: list[str] = []
        for name in names:
            if excess <= 0:
                break
            if name == current:
                continue
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
                deleted.append(name)
            excess -= 1
        if deleted:
            log.info("deleted %d old audit log file(s): %s", len(deleted), ", ".join(deleted))
            self.sync()
        return deleted

    def remove_empty_after(self, name: str) -> None:
        """Delete empty files that sort after ``name``: files started after the last saved
        position that never got a line (a crash between creating one and recording it)."""
        removed = False
        for other in self.names():
            if other <= name or date_of(other) is None:
                continue
            if (self.path / other).stat().st_size == 0:
                (self.path / other).unlink()
                removed = True
            else:
                log.warning("audit log file %s is newer than the recorded position (%s);"
                            " leaving it alone", other, name)
        if removed:
            self.sync()

    def sync(self) -> None:
        """fsync the directory, so that created and deleted names survive a power cut."""
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SinkLock:
    """The exclusive, non-blocking ``flock`` on ``.sink.lock``: one writer per directory,
    whatever the number of worker processes; released by the kernel when its holder dies."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self._fd: int | None = None
        self.held = False

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.held = True
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
        self._fd = None
        self.held = False


def write_all(fd: int, data: bytes) -> None:
    """Write every byte (os.write may write fewer than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
