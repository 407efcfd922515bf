"""`DetectionConsumer`: the rules, live, on every committed event.

A consumer of the committed log like the file sink (`trailkeeper.consumers`): it reads
events in id order from its durable position (consumer ``detection``), runs them through
the `Detector`, and records the alerts together with the new position in ONE transaction
(`Storage.record_alerts`). So a crash or restart neither loses nor repeats an alert: either
both the alerts and the position after them are stored, or neither, and the events are
read again.

Correlations keep windows in memory. On start (and whenever this process takes the lease
over from another node, or a batch failed) the consumer replays the events it had already
processed that lie within the longest correlation timespan of the newest event time it
had seen (saved with the position), without alerting, to rebuild them; the alerts those
events raised were recorded the first time.

One process per cluster runs the rules (the ``detection`` lease); the others stand by.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson

from trailkeeper.consumers.base import Poller
from trailkeeper.consumers.cursor import LogCursor
from trailkeeper.consumers.lease import Lease
from trailkeeper.detection.detector import Detector
from trailkeeper.metrics import Metrics
from trailkeeper.query.ast import And, Compare
from trailkeeper.storage.base import Storage

log = logging.getLogger("trailkeeper.detection")

CONSUMER = "detection"
DEFAULT_BATCH = 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


class DetectionConsumer:
    """Runs a `Detector` over the committed log and records its alerts."""

    def __init__(self, storage: Storage, detector: Detector, *, throttle_ms: int,
                 metrics: Metrics | None = None,
                 on_alerts: Callable[[], None] | None = None,
                 lease: Lease | None = None, batch_size: int = DEFAULT_BATCH,
                 poll_interval_s: float = 0.5, standby_retry_s: float = 5.0,
                 clock: Callable[[], int] = _now_ms) -> None:
        self.storage = storage
        self.detector = detector
        self.throttle_ms = throttle_ms
        self._metrics = metrics or Metrics()
        self._on_alerts = on_alerts
        self._lease = lease
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._standby_retry_s = standby_retry_s
        self._clock = clock
        self._cursor = LogCursor(storage, CONSUMER)
        self._newest_ms = 0  # the newest event time processed (for the warm-up window)
        self._ready = False
        self.alerts_created = 0
        self._poller = Poller(CONSUMER, self._step, finish=self._finish)

    @property
    def name(self) -> str:
        return CONSUMER

    @property
    def last_id(self) -> int:
        return self._cursor.last_id

    def start(self) -> None:
        self._poller.start()

    def notify(self) -> None:
        self._poller.notify()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Process what is committed (for up to ``timeout`` seconds), then stop."""
        if self._poller.running:
            self._poller.stop(timeout)
        elif self._lease is not None:
            self._lease.release()

    def drain(self) -> int:
        """Process every event committed so far, now, in this thread; the events read."""
        total = 0
        while True:
            read = self.process_batch()
            total += read
            if read < self._batch_size:
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
        finally:
            if self._lease is not None:
                self._lease.release()

    def process_batch(self) -> int:
        """Process one batch now, in this thread; the events read (0: none waiting)."""
        try:
            if not self._ready:
                self._resume()
            events = self._cursor.read(self._batch_size)
            if not events:
                self._metrics.consumer_lag.labels(consumer=CONSUMER).set(0)
                return 0
            alerts = self.detector.process(events)
            last = events[-1].id
            newest = max(self._newest_ms, max(e.timestamp_ms for e in events))
            state = orjson.dumps({"id": last, "ts": newest}).decode()
            created = self.storage.record_alerts(alerts, throttle_ms=self.throttle_ms,
                                                 now_ms=self._clock(),
                                                 position=(CONSUMER, state))
        except BaseException:
            # The windows have seen events whose alerts were not recorded: rebuild them
            # from the saved position before the next try.
            self._ready = False
            raise
        self._cursor.last_id = last
        self._newest_ms = newest
        self.alerts_created += len(created)
        self._metrics.detection_events.inc(len(events))
        for alert in alerts:
            self._metrics.alert_matches.labels(level=alert.level or "none").inc()
        self._metrics.consumer_lag.labels(consumer=CONSUMER).set(self._cursor.lag())
        if created:
            log.info("detection: %d new alert%s", len(created), "" if len(created) == 1 else "s")
            if self._on_alerts is not None:
                self._on_alerts()
        return len(events)

    def _resume(self) -> None:
        """Load the saved position and rebuild the correlation windows up to it."""
        state = self._cursor.load()
        self._newest_ms = int(state.get("ts", 0))
        self.detector.correlator.reset()
        window = self.detector.window_ms
        replayed = 0
        if window and self._cursor.last_id:
            where = And((Compare("id", "<=", self._cursor.last_id),
                         Compare("timestamp", ">=", self._newest_ms - window)))
            before = self.detector.events_seen
            self.detector.warm_up(self.storage.stream(where, order=(("id", False),)))
            replayed = self.detector.events_seen - before
        log.info("detection: %d rules from event %d (%d replayed for correlation windows)",
                 self.detector.rule_count, self._cursor.last_id + 1, replayed)
        self._ready = True

