"""Where `tail` stands in a directory, kept in a small JSON state file.

The position is a file name, a byte offset at a line boundary and the line number there, plus
what identifies the file: its inode and a hash of its first bytes, so that a file replaced
under the same name (restored from a backup, re-created) is noticed and read from its start.

It is written atomically (temporary file, fsync, rename, fsync of the directory) and only
after the events before it are durably stored, so after any crash it is at or behind what
was stored: a restart reads again at most what it had already sent, and the events' uids
make that harmless.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from trailkeeper.errors import AlreadyFollowingError, StateError

HEAD_BYTES = 1024
_VERSION = 1


@dataclass(frozen=True, slots=True)
class Position:
    file: str  # name within the directory
    offset: int  # bytes read and stored; always just after a line break
    line: int  # lines read; the next one has number line + 1
    inode: int
    head: str  # SHA-256 of the file's first head_length bytes
    head_length: int

    def same_file(self, path: Path, inode: int) -> bool:
        """Whether ``path`` (with ``inode``) is still the file this position was taken in."""
        if inode != self.inode:
            return False
        with path.open("rb") as file:
            return head_digest(file.read(self.head_length)) == self.head


def head_digest(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()


class StateFile:
    """The saved position of one (directory, target) pair, locked while a tail follows it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: IO[bytes] | None = None

    def lock(self) -> None:
        """Hold the state for this process; `AlreadyFollowingError` if another holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(f"{self.path}.lock", "ab")  # noqa: SIM115 (held until unlock)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise AlreadyFollowingError(
                f"another trailkeeper tail is using the state file {self.path}") from None
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def load(self) -> Position | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot read the state file {self.path}: {exc}") from None
        try:
            if data.get("version") != _VERSION:
                raise ValueError(f"version {data.get('version')!r} is not {_VERSION}")
            return Position(**{k: data[k] for k in Position.__dataclass_fields__})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"the state file {self.path} is not valid ({exc}); "
                             "move it away to start over") from None

    def save(self, position: Position, **about: str) -> None:
        """Replace the saved position atomically and durably."""
        body = json.dumps({"version": _VERSION, **asdict(position), **about}, indent=2)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(body + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def __enter__(self) -> StateFile:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.unlock()
