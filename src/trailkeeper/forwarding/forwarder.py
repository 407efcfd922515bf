"""`Forwarder`: the committed log sent to a SIEM (syslog or Splunk HEC), at least once.

A forwarder reads events in id order from its durable position (`LogCursor`
``forward:<name>``, shared by the cluster), hands each batch to its sink, and saves the
position once the sink has accepted the batch. A failed batch is sent again after a pause
that doubles up to ``max_backoff_s`` (or what the receiver asked for); nothing is skipped.
A crash between the sink's acceptance and the save repeats that one batch; a graceful stop
repeats nothing. One process in the cluster forwards at a time: the holder of the lease
``forward:<name>``; the others stand by and take over when it dies.

On its first start (no saved position) a forwarder sends the whole log (``start_at =
"beginning"``), or only what is committed from then on (``"end"``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Literal, Protocol

from trailkeeper.consumers.base import Poller, backoff_s
from trailkeeper.consumers.cursor import LogCursor
from trailkeeper.consumers.fileline import file_line
from trailkeeper.consumers.lease import Lease
from trailkeeper.errors import TrailkeeperError
from trailkeeper.forwarding import cef
from trailkeeper.forwarding.errors import SendError
from trailkeeper.forwarding.splunk import HecClient, hec_event
from trailkeeper.forwarding.syslog import SyslogSender, format_rfc5424
from trailkeeper.metrics import Metrics
from trailkeeper.storage.base import Storage, StoredEvent

log = logging.getLogger("trailkeeper.forwarding")

StartAt = Literal["beginning", "end"]
_FIRST_BACKOFF_S = 0.5
_STANDBY_RETRY_S = 5.0


class ForwarderBusyError(TrailkeeperError):
    """Another process holds the forwarder's lease."""

    http_status = 409
    exit_code = 1


class Sink(Protocol):
    """Where a forwarder sends: renders a batch and delivers it, or raises (`SendError`
    for a receiver that failed; anything else is retried the same way)."""

    def send(self, events: Sequence[StoredEvent]) -> None: ...

    def close(self) -> None: ...


class Forwarder:
    """Sends every committed event to ``sink`` (see the module's docstring)."""

    def __init__(self, storage: Storage, name: str, sink: Sink, *, metrics: Metrics,
                 batch_size: int = 500, poll_interval_s: float = 1.0,
                 max_backoff_s: float = 60.0, lease: bool = True,
                 start_at: StartAt = "beginning") -> None:
        self.storage = storage
        self.sink = sink
        self._cursor = LogCursor(storage, f"forward:{name}")
        self._lease = Lease(storage, f"forward:{name}") if lease else None
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._max_backoff_s = max_backoff_s
        self._start_at = start_at
        self._label = name
        self._loaded = False
        self._failures = 0
        self._step_lock = threading.Lock()
        self._poller = Poller(self.name, self._step, finish=self._finish,
                              max_backoff_s=max_backoff_s)
        metrics.forwarded_events.labels(forwarder=name).inc(0)
        metrics.forward_failures.labels(forwarder=name).inc(0)

    # -- the public surface ----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The key of its position and lease: ``forward:<name>``."""
        return self._cursor.name

    @property
    def last_id(self) -> int:
        """The id of the last event accepted by the receiver and recorded."""
        return self._cursor.last_id

    @property
    def failures(self) -> int:
        """Consecutive failed sends (0 after a success)."""
        return self._failures

    def start(self) -> None:
        """Forward in the background: poll every ``poll_interval_s``, sooner on `notify`."""
        self._poller.start()

    def notify(self) -> None:
        self._poller.notify()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Forward what is committed (one try per batch, for up to ``timeout`` seconds),
        release the lease and close the sink; the rest goes at the next start."""
        if self._poller.running:
            self._poller.stop(timeout)
        else:
            self._close()

    def drain(self) -> int:
        """Forward every event committed so far, now, in this thread: the events sent.
        Raises `ForwarderBusyError` when another process holds the lease, and the sink's
        error when a batch is not accepted (what came before it stays recorded)."""
        with self._step_lock:
            if self._lease is not None and not self._lease.hold():
                raise ForwarderBusyError(f"another process runs the forwarder {self.name}")
            total = 0
            while True:
                sent = self._send_batch()
                total += sent
                if sent < self._batch_size:
                    return total

    # -- the background thread -------------------------------------------------------------

    def _step(self) -> float:
        with self._step_lock:
            if self._lease is not None and not self._lease.hold():
                self._loaded = False  # another holder may have moved the position
                return _STANDBY_RETRY_S
            try:
                sent = self._send_batch()
            except Exception as exc:
                self._failures += 1
                delay = backoff_s(
                    self._failures, first_s=_FIRST_BACKOFF_S, max_s=self._max_backoff_s,
                    retry_after_s=exc.retry_after_s if isinstance(exc, SendError) else None)
                if isinstance(exc, SendError):
                    log.error("%s: %s (attempt %d; next in %.1f s)", self.name, exc,
                              self._failures, delay)
                else:
                    log.exception("%s failed (attempt %d; next in %.1f s)", self.name,
                                  self._failures, delay)
                return delay
            self._failures = 0
        return 0.0 if sent == self._batch_size else self._poll_interval_s

    def _finish(self, deadline: float | None) -> None:
        with self._step_lock:
            try:
                held = self._lease is None or self._lease.held
                while held and self._failures == 0 \
                        and (deadline is None or time.monotonic() < deadline):
                    if self._send_batch() < self._batch_size:
                        break
            except Exception as exc:
                log.warning("%s: stopping with events not yet forwarded: %s", self.name, exc)
            finally:
                self._close_locked()

    def _close(self) -> None:
        with self._step_lock:
            self._close_locked()

    def _close_locked(self) -> None:
        try:
            self.sink.close()
        finally:
            if self._lease is not None:
                self._lease.release()

    # -- forwarding ------------------------------------------------------------------------

    def _load(self) -> None:
        saved = self.storage.get_position(self.name)
        self._cursor.load()
        if saved is None and self._start_at == "end":
            last = self.storage.max_id()
            self._cursor.save(last)
            log.info("%s starts after event %d (start_at = end)", self.name, last)
        self._loaded = True

    def _send_batch(self) -> int:
        """One batch sent and recorded: its size (0 when there was nothing to send)."""
        if not self._loaded:
            self._load()
        events = self._cursor.read(self._batch_size)
        if events:
            try:
                self.sink.send(events)
            except Exception:
                self._metrics.forward_failures.labels(forwarder=self._label).inc()
                raise
            self._cursor.save(events[-1].id)
            self._metrics.forwarded_events.labels(forwarder=self._label).inc(len(events))
        self._metrics.consumer_lag.labels(consumer=self.name).set(self._cursor.lag())
        return len(events)


# -- sinks ---------------------------------------------------------------------------------


def _file_shape(event: StoredEvent) -> bytes | None:
    """The event's Atlassian file shape as JSON without the line break; None (logged) for
    a damaged document, which would otherwise stop the forwarder for good."""
    try:
        return file_line(event)[:-1]
    except Exception:
        log.exception("event %d cannot be rendered; it is not forwarded", event.id)
        return None


class SyslogSink:
    """Audit events as RFC 5424 messages: JSON (the file shape) or CEF in MSG, MSGID
    ``audit``, severity ``notice`` (CEF carries its own 0-10 severity)."""

    def __init__(self, sender: SyslogSender, *, facility: int, hostname: str, app_name: str,
                 format: Literal["json", "cef"] = "json", severity: int = 5,
                 metrics: Metrics | None = None, forwarder: str = "") -> None:
        self.sender = sender
        self._facility = facility
        self._severity = severity
        self._hostname = hostname
        self._app_name = app_name
        self._format = format
        self._metrics = metrics
        self._forwarder = forwarder
        self._max_length = sender.max_datagram if sender.datagrams else None

    def frame(self, event: StoredEvent) -> bytes | None:
        if self._format == "cef":
            message, bom = cef.event_cef(event), False
        else:
            shape = _file_shape(event)
            if shape is None:
                return None
            message, bom = shape.decode(), True
        frame = format_rfc5424(
            pri_facility=self._facility, severity=self._severity,
            timestamp_ms=event.timestamp_ms, hostname=self._hostname,
            app_name=self._app_name, procid=None, msgid="audit", message=message, bom=bom)
        if self._max_length is not None and len(frame) > self._max_length:
            log.warning("event %d is longer than a datagram (%d > %d bytes): truncated",
                        event.id, len(frame), self._max_length)
            if self._metrics is not None:
                self._metrics.forward_truncated.labels(forwarder=self._forwarder).inc()
            frame = format_rfc5424(
                pri_facility=self._facility, severity=self._severity,
                timestamp_ms=event.timestamp_ms, hostname=self._hostname,
                app_name=self._app_name, procid=None, msgid="audit", message=message,
                bom=bom, max_length=self._max_length)
        return frame

    def send(self, events: Sequence[StoredEvent]) -> None:
        frames = [f for f in map(self.frame, events) if f is not None]
        self.sender.send(frames)

    def close(self) -> None:
        self.sender.close()


class SplunkSink:
    """Audit events as HEC event objects whose ``event`` is the file shape."""

    def __init__(self, client: HecClient, *, host: str | None, source: str | None,
                 sourcetype: str | None, index: str | None) -> None:
        self.client = client
        self._host = host
        self._source = source
        self._sourcetype = sourcetype
        self._index = index

    def render(self, event: StoredEvent) -> bytes | None:
        shape = _file_shape(event)
        if shape is None:
            return None
        return hec_event(shape, event.timestamp_ms, host=self._host,
                         source=self._source, sourcetype=self._sourcetype, index=self._index)

    def send(self, events: Sequence[StoredEvent]) -> None:
        self.client.post([b for b in map(self.render, events) if b is not None])

    def close(self) -> None:
        self.client.close()
