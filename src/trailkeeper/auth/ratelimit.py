"""Per-token rate limits shared by the worker processes of one node.

"N requests within M minutes" is enforced exactly, as a sliding window: a request is let
through when fewer than N requests were let through in the M minutes before it. The state is
one small file per token under ``$TRAILKEEPER_HOME/run/ratelimit/``: a ring of the times of
the last N accepted requests and the ring's head. The slot at the head holds the N-th most
recent acceptance; if it lies inside the window the request is refused and the slot frees
(``Retry-After``) when it leaves the window. One check is an ``flock``, two ``pread`` and two
``pwrite`` of 8 bytes (microseconds), so every ``serve --workers N`` process of the node
counts against the same budget. Refused requests are not recorded.

Across nodes (several servers on one PostgreSQL store) each node counts separately: a token
may make N requests per window *per node*. Route a token's clients to one node, or divide the
limit by the number of nodes.
"""

from __future__ import annotations

import fcntl
import math
import os
import struct
import threading
from pathlib import Path

_HEAD = struct.Struct("<QQ")  # head index, ring size
_SLOT = struct.Struct("<d")  # accepted at (epoch seconds)


class RateLimiter:
    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._fds: dict[str, int] = {}
        # flock() excludes other processes; threads of this one share the descriptor.
        self._lock = threading.Lock()

    def acquire(self, key: str, requests: int, window_s: float, now: float) -> int | None:
        """Record one request for ``key``; None when allowed, else the seconds to wait."""
        with self._lock:
            fd = self._fd(key)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                head, size = _HEAD.unpack(os.pread(fd, _HEAD.size, 0))
                if size != requests:  # new file, or the limit changed: start afresh
                    os.ftruncate(fd, 0)
                    os.ftruncate(fd, _HEAD.size + requests * _SLOT.size)
                    head, size = 0, requests
                    os.pwrite(fd, _HEAD.pack(head, size), 0)
                offset = _HEAD.size + head * _SLOT.size
                (oldest,) = _SLOT.unpack(os.pread(fd, _SLOT.size, offset))
                wait = _wait(oldest, window_s, now)
                if wait is not None:
                    return wait
                os.pwrite(fd, _SLOT.pack(now), offset)
                os.pwrite(fd, _HEAD.pack((head + 1) % size, size), 0)
                return None
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def blocked(self, key: str, requests: int, window_s: float, now: float) -> int | None:
        """Like `acquire` without recording anything: the seconds to wait when ``requests``
        were recorded for ``key`` within the window, else None. With `acquire` called only
        on failures, this limits failures (the web sign-in's N failed attempts in M min)."""
        with self._lock:
            fd = self._fd(key)
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                head, size = _HEAD.unpack(os.pread(fd, _HEAD.size, 0))
                if size != requests:
                    return None
                (oldest,) = _SLOT.unpack(os.pread(fd, _SLOT.size, _HEAD.size + head * _SLOT.size))
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        return _wait(oldest, window_s, now)

    def _fd(self, key: str) -> int:
        fd = self._fds.get(key)
        if fd is None:
            if not key.isalnum():
                raise ValueError(f"bad rate-limit key {key!r}")
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self._dir / f"{key}.ring", os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(fd).st_size < _HEAD.size:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    if os.fstat(fd).st_size < _HEAD.size:
                        os.pwrite(fd, _HEAD.pack(0, 0), 0)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            self._fds[key] = fd
        return fd

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


def _wait(oldest: float, window_s: float, now: float) -> int | None:
    """Whole seconds until the N-th most recent entry leaves the window (None: it has)."""
    if oldest > now - window_s:
        return max(1, math.ceil(float(oldest) + window_s - now))
    return None
