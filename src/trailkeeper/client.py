"""`Client`: record audit events in a Trailkeeper server from another process.

    with Client("https://audit.example.com", auth=("svc-audit", password)) as trail:
        trail.audit(AuditEvent(type=AuditType("Repositories", "Repository created"), ...))

`audit` buffers; one background thread sends NDJSON batches to ``POST /api/v1/events``. Each
event gets its uid and timestamp before the first send, so every retry is byte-identical and the
server stores it once however often it arrives (exactly-once storage over at-least-once
delivery). Transient failures are retried without limit; refusals are reported in `errors`.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import email.utils
import logging
import math
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx
import orjson

from trailkeeper.model.event import AuditEvent

log = logging.getLogger("trailkeeper.client")

_BACKOFF_FIRST_S = 0.2
_BACKOFF_CAP_S = 30.0
_EXIT_TIMEOUT_S = 30.0  # how long interpreter exit waits for a client nobody closed


@dataclass(frozen=True, slots=True)
class EventError:
    """An event the server refused for good, or that was still undelivered at `close`.

    ``status`` is the HTTP status of the refusal, 0 when the event was never acknowledged.
    """

    uid: str
    status: int
    message: str


@dataclass(slots=True)
class _Item:
    uid: str
    line: bytes  # the NDJSON line, fixed once so that retries resend identical bytes
    queued_at: float = 0.0


class Client:
    """Buffers audit events and delivers each of them once, retrying until acknowledged."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        auth: tuple[str, str] | None = None,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_buffer: int = 100_000,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        on_error: Callable[[EventError], Any] | None = None,
    ) -> None:
        if batch_size < 1 or max_buffer < 1:
            raise ValueError("batch_size and max_buffer must be at least 1")
        if token is not None and auth is not None:
            raise ValueError("give either token or auth, not both")
        self.errors: list[EventError] = []
        self._on_error = on_error
        self._endpoint = url.rstrip("/") + "/api/v1/events"
        headers = {"content-type": "application/x-ndjson", "accept": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(headers=headers, auth=auth, timeout=timeout,
                                  transport=transport)
        self._timeout = timeout
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._queue: collections.deque[_Item] = collections.deque()
        self._changed = threading.Condition(threading.Lock())
        self._given = 0  # events accepted by audit()
        self._settled = 0  # events acknowledged or reported; batches settle in order
        self._flush_to = 0  # send without waiting for flush_interval until this many settle
        self._closing = False
        self._abort = threading.Event()  # close() timed out: stop retrying
        self._thread = threading.Thread(target=self._run, name="trailkeeper-client",
                                        daemon=True)
        self._thread.start()
        # Daemon, so a forgotten close() cannot hang interpreter exit; the hook still flushes.
        atexit.register(self._at_exit)

    # -- producers -----------------------------------------------------------------------------

    def audit(self, event: AuditEvent) -> str:
        """Buffer an event and return its uid; blocks while the buffer is full."""
        changes: dict[str, Any] = {}
        if event.uid is None:
            changes["uid"] = time_ordered_uid()
        if event.timestamp is None:
            now = datetime.now(UTC)
            changes["timestamp"] = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if changes:
            event = dataclasses.replace(event, **changes)
        rest = event.to_rest()
        rest.pop("id", None)  # the server assigns ids
        uid: str = rest["uid"]
        item = _Item(uid, orjson.dumps(rest) + b"\n")
        with self._changed:
            while self._given - self._settled >= self._max_buffer and not self._closing:
                self._changed.wait()
            if self._closing:
                raise RuntimeError("the audit client is closed")
            item.queued_at = time.monotonic()
            self._queue.append(item)
            self._given += 1
            if len(self._queue) in (1, self._batch_size):
                self._changed.notify_all()
        return uid

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event given so far is acknowledged (or reported in `errors`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            target = self._given
            self._flush_to = max(self._flush_to, target)
            self._changed.notify_all()
            while self._settled < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Deliver everything, then stop. After ``timeout`` seconds retries stop and what is
        left is reported in `errors` with status 0; returns False in that case."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join(timeout)
        delivered = not self._thread.is_alive()
        if not delivered:
            self._abort.set()
            self._thread.join()  # at most one request timeout away
        atexit.unregister(self._at_exit)
        return delivered

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _at_exit(self) -> None:
        self.close(_EXIT_TIMEOUT_S)

    # -- sender thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                try:
                    self._deliver(batch)
                except Exception:  # a bug must not stop delivery of later events
                    log.exception("unexpected error while sending %d events", len(batch))
                    self._report(batch, 0, "unexpected client error")
                with self._changed:
                    self._settled += len(batch)
                    self._changed.notify_all()
        finally:
            self._http.close()

    def _next_batch(self) -> list[_Item] | None:
        """A full batch, or what is waiting once the oldest event is flush_interval old."""
        with self._changed:
            while True:
                queued = len(self._queue)
                if queued >= self._batch_size or (queued and (
                        self._closing or self._flush_to > self._settled)):
                    break
                if not queued:
                    if self._closing:
                        return None
                    self._changed.wait()
                    continue
                wait = self._queue[0].queued_at + self._flush_interval - time.monotonic()
                if wait <= 0:
                    break
                self._changed.wait(wait)
            size = queued if self._abort.is_set() else min(queued, self._batch_size)
            return [self._queue.popleft() for _ in range(size)]

    def _deliver(self, batch: list[_Item]) -> None:
        """Send until every event is acknowledged or refused for good."""
        pending = [batch]  # a stack of parts still to send
        attempt = 0
        while pending:
            items = pending.pop()
            if self._abort.is_set():
                self._report(items, 0, "not delivered before the client was closed")
                continue
            try:
                response = self._http.post(self._endpoint,
                                           content=b"".join(item.line for item in items))
            except httpx.TransportError as exc:
                # Connection refused or reset, timeout: the server may or may not have stored
                # the batch, and resending the same uids is harmless either way.
                delay = _backoff(attempt)
                attempt += 1
                log.warning("sending %d events failed (%s); retrying in %.1f s",
                            len(items), type(exc).__name__, delay)
                pending.append(items)
                self._abort.wait(delay)
                continue
            status = response.status_code
            if status < 300:
                attempt = 0
                continue
            if status in (408, 429) or status >= 500:
                told = _retry_after(response) if status in (429, 503) else None
                if told is None:
                    delay = _backoff(attempt)
                    attempt += 1
                else:
                    delay = told
                log.warning("server answered %d to %d events; retrying in %.1f s",
                            status, len(items), delay)
                pending.append(items)
                self._abort.wait(delay)
                continue
            named, message = _problems(response, len(items))
            if status in (400, 409) and named:
                for index, text in named.items():
                    self._report([items[index]], status, text)
                rest = [item for i, item in enumerate(items) if i not in named]
                if rest:
                    pending.append(rest)
            elif status in (400, 409, 413) and len(items) > 1:
                # Too large, or refused without naming the culprit: halve until it is found.
                half = len(items) // 2
                pending += [items[half:], items[:half]]
            else:
                # A single event too large, or 401/403/404...: retrying cannot help.
                self._report(items, status, message)

    def _report(self, items: list[_Item], status: int, message: str) -> None:
        if len(items) == 1:
            log.error("audit event %s not stored (HTTP %d): %s", items[0].uid, status, message)
        else:
            log.error("%d audit events not stored (HTTP %d), first uid %s: %s",
                      len(items), status, items[0].uid, message)
        for item in items:
            error = EventError(item.uid, status, message)
            self.errors.append(error)
            if self._on_error is not None:
                try:
                    self._on_error(error)
                except Exception:
                    log.exception("the on_error callback failed")


def time_ordered_uid() -> str:
    """A UUID version 7 (RFC 9562): milliseconds since the epoch, then 74 random bits.

    Random version-4 uids land anywhere in the store's uid index, so every insert touches
    another page; time-ordered ones go to its end, as the events themselves do.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = ((ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 \
        | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def _backoff(attempt: int) -> float:
    """Exponential back-off with full jitter, so many clients do not retry in step."""
    ceiling = min(_BACKOFF_CAP_S, _BACKOFF_FIRST_S * 2 ** min(attempt, 16))
    return random.uniform(0, ceiling)  # noqa: S311 (jitter, not a secret)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from ``Retry-After``: delta-seconds or an HTTP-date (RFC 9110)."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _problems(response: httpx.Response, size: int) -> tuple[dict[int, str], str]:
    """The batch positions an error body names, with their messages, and its summary."""
    try:
        body = response.json()
    except ValueError:
        return {}, f"HTTP {response.status_code}"
    if not isinstance(body, dict):
        return {}, f"HTTP {response.status_code}"
    message = str(body.get("message") or f"HTTP {response.status_code}")
    named: dict[int, list[str]] = {}
    errors = body.get("errors")
    for problem in errors if isinstance(errors, list) else []:
        if not isinstance(problem, dict):
            continue
        index = problem.get("index")
        if type(index) is int and 0 <= index < size:
            where = f"{problem['field']}: " if problem.get("field") else ""
            named.setdefault(index, []).append(f"{where}{problem.get('message', '')}")
    return {i: "; ".join(texts) for i, texts in named.items()}, message
