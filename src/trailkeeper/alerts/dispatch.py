"""`Dispatcher`: delivers new alerts to the actions whose routes match them.

Each action has its own worker: a `Poller` thread, a durable position named
``alert-action:<name>`` (table ``consumer_positions``, state ``{"id": <last alert id
handled>}``) and a cluster-wide `Lease` of the same name, so that exactly one process of a
cluster delivers for an action and a slow receiver holds up only its own action. The worker
reads alerts in id order (`Storage.alerts_after`), skips those its route does not match,
and delivers the others one at a time:

- delivered: the position moves past the alert;
- a retryable `DeliveryError`: the same alert is tried again after an exponential back-off
  (``first_backoff_s`` doubling up to ``max_backoff_s``, or longer when the receiver asks
  with ``retry_after_s``, up to ``max_backoff_s``), up to ``max_attempts`` attempts in all;
  then it is given up (logged at ERROR, ``outcome="failed"``) and the worker moves on;
- a permanent `DeliveryError` (a 4xx reply, 5xx SMTP): given up at once
  (``outcome="rejected"``).

The position is saved after every delivery, so a restart neither repeats nor loses one;
a crash between the delivery and the save repeats that one alert (webhook receivers drop it
by its ``X-Trailkeeper-Delivery`` id). Throttled matches merge into an existing alert and
get no new id, so they do not notify again.

An action added to a running installation starts from the newest alert at its first start:
it does not mail out the whole history (``from_start=True`` delivers every stored alert).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from trailkeeper.alerts.actions.base import Action, DeliveryError
from trailkeeper.alerts.message import build_message
from trailkeeper.alerts.model import AlertRecord
from trailkeeper.alerts.routing import RouteConfig
from trailkeeper.consumers.base import Poller, backoff_s
from trailkeeper.consumers.cursor import LogCursor
from trailkeeper.consumers.lease import DEFAULT_LEASE_MS, Lease
from trailkeeper.metrics import Metrics
from trailkeeper.storage.base import Storage

log = logging.getLogger("trailkeeper.alerts.dispatch")

BATCH = 100
POSITION_PREFIX = "alert-action:"


class _Worker:
    """One action's delivery state; its steps run on its poller thread (or in `drain`)."""

    def __init__(self, owner: Dispatcher, route: RouteConfig, action: Action,
                 lease_owner: str | None) -> None:
        self.owner = owner
        self.route = route
        self.action = action
        self.name = f"{POSITION_PREFIX}{action.name}"
        self.cursor = LogCursor(owner.storage, self.name)
        self.lease = Lease(owner.storage, self.name, owner=lease_owner,
                           lease_ms=owner.lease_ms)
        self.loaded = False
        self.attempts = 0  # failed attempts at the alert after the position
        self.retry_at = 0.0  # time.monotonic() of the next attempt
        self.lock = threading.Lock()  # one step at a time (thread, drain, stop)
        self.last_outcome: str | None = None  # of the last `handle` that moved on
        self.poller = Poller(self.name, self.step, finish=self.finish,
                             max_backoff_s=owner.max_backoff_s)
        m = owner.metrics
        for outcome in ("delivered", "rejected", "failed"):
            m.alert_deliveries.labels(action=action.name, outcome=outcome).inc(0)
        m.alert_delivery_retries.labels(action=action.name).inc(0)

    # -- position --------------------------------------------------------------------------

    def load(self) -> None:
        """The saved position; the newest alert on the first start (see the module doc)."""
        if self.loaded:
            return
        if self.owner.storage.get_position(self.name) is None:
            start = 0 if self.owner.from_start else self.owner.storage.last_alert_id()
            self.cursor.save(start)
            log.info("action %s starts after alert %d", self.action.name, start)
        else:
            self.cursor.load()
        self.loaded = True

    def report_lag(self) -> None:
        lag = max(0, self.owner.storage.last_alert_id() - self.cursor.last_id)
        self.owner.metrics.consumer_lag.labels(consumer=self.name).set(lag)

    # -- the thread's step -----------------------------------------------------------------

    def step(self) -> float:
        """Handle what is due; the seconds to wait before the next step."""
        d = self.owner
        with self.lock:
            if d.stopping.is_set():
                return d.poll_interval_s  # the poller calls `finish` next
            if not self.lease.hold():
                return d.lease_wait_s
            self.load()
            wait = self.retry_at - time.monotonic()
            if wait > 0:
                return min(wait, d.lease_wait_s)
            alerts = d.storage.alerts_after(self.cursor.last_id, BATCH)
            for alert in alerts:
                if d.stopping.is_set() or not self.lease.hold():
                    return 0.0
                delay = self.handle(alert)
                if delay is not None:
                    self.retry_at = time.monotonic() + delay
                    return min(delay, d.lease_wait_s)
            self.report_lag()
            return 0.0 if len(alerts) == BATCH else d.poll_interval_s

    def finish(self, deadline: float | None) -> None:
        """At stop: one more attempt at what is due, within the deadline; then the lease
        goes back so that another node can take over at once."""
        try:
            with self.lock:
                while self.lease.held and (deadline is None or time.monotonic() < deadline):
                    self.load()
                    alerts = self.owner.storage.alerts_after(self.cursor.last_id, BATCH)
                    if not alerts:
                        break
                    for alert in alerts:
                        if deadline is not None and time.monotonic() >= deadline:
                            return
                        if self.handle(alert) is not None:
                            return  # the receiver is down: resume there at the next start
        finally:
            self.lease.release()

    def drain(self) -> int:
        """Deliver everything in this thread, waiting out back-offs; alerts delivered."""
        delivered = 0
        with self.lock:
            if not self.lease.hold():
                log.warning("action %s is delivered by another process", self.action.name)
                return 0
            self.load()
            while alerts := self.owner.storage.alerts_after(self.cursor.last_id, BATCH):
                for alert in alerts:
                    while (delay := self.handle(alert)) is not None:
                        time.sleep(delay)
                    delivered += self.last_outcome == "delivered"
            self.report_lag()
        return delivered

    # -- one alert -------------------------------------------------------------------------

    def handle(self, alert: AlertRecord) -> float | None:
        """Deliver ``alert`` if routed here and move past it; or the seconds to wait
        before trying it again (the position stays)."""
        d = self.owner
        name = self.action.name
        self.last_outcome = None
        if not self.route.matches(alert):
            self.cursor.save(alert.id)
            return None
        message = build_message(d.storage, alert, public_url=d.public_url)
        try:
            self.action.deliver(message)
            outcome = "delivered"
            log.info("alert %d (%s) delivered by action %s", alert.id, alert.rule_id, name)
        except Exception as exc:
            retryable = exc.retryable if isinstance(exc, DeliveryError) else True
            if not isinstance(exc, DeliveryError):
                # A bug in the action, not the receiver: keep the traceback.
                log.exception("action %s failed on alert %d", name, alert.id)
            self.attempts += 1
            if retryable and self.attempts < d.max_attempts:
                delay = d.backoff(self.attempts, exc.retry_after_s
                                  if isinstance(exc, DeliveryError) else None)
                d.metrics.alert_delivery_retries.labels(action=name).inc()
                log.warning("action %s could not deliver alert %d (attempt %d of %d), "
                            "retrying in %.1f s: %s", name, alert.id, self.attempts,
                            d.max_attempts, delay, exc)
                return delay
            outcome = "failed" if retryable else "rejected"
            log.error("action %s gave up alert %d (%s) after %d attempt%s: %s", name,
                      alert.id, alert.rule_id, self.attempts,
                      "" if self.attempts == 1 else "s", exc)
        self.attempts = 0
        self.retry_at = 0.0
        self.cursor.save(alert.id)
        self.last_outcome = outcome
        d.metrics.alert_deliveries.labels(action=name, outcome=outcome).inc()
        return None


class Dispatcher:
    """Delivers alerts to the configured actions (``[[action]]`` of trailkeeper.toml).

    ``actions`` pairs each action's route (its `RouteConfig`, usually the action's own
    config) with the live action; names must be unique. A `Consumer`: `start`, `notify`
    (new alerts were recorded), `stop`; `drain` delivers everything now, in the calling
    thread (tests and the CLI; not while started). `stop` closes the actions.
    """

    name = "alert-dispatcher"

    def __init__(self, storage: Storage, actions: Sequence[tuple[RouteConfig, Action]], *,
                 metrics: Metrics | None = None, public_url: str | None = None,
                 max_attempts: int = 8, first_backoff_s: float = 1.0,
                 max_backoff_s: float = 300.0, poll_interval_s: float = 1.0,
                 lease_ms: int = DEFAULT_LEASE_MS, owner: str | None = None,
                 from_start: bool = False) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        names = [a.name for _, a in actions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"action names must be unique: {', '.join(duplicates)}")
        self.storage = storage
        self.metrics = metrics or Metrics()
        self.public_url = public_url
        self.max_attempts = max_attempts
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.poll_interval_s = poll_interval_s
        self.lease_ms = lease_ms
        # Not holding a lease: look again after a third of it (as often as it is renewed).
        self.lease_wait_s = lease_ms / 3000
        self.from_start = from_start
        self.stopping = threading.Event()
        self._workers = [_Worker(self, route, action, owner) for route, action in actions]

    @property
    def actions(self) -> list[Action]:
        return [w.action for w in self._workers]

    def backoff(self, attempt: int, retry_after_s: float | None = None) -> float:
        """The pause after the ``attempt``-th failed attempt."""
        return backoff_s(attempt, first_s=self.first_backoff_s, max_s=self.max_backoff_s,
                         retry_after_s=retry_after_s)

    def start(self) -> None:
        for worker in self._workers:
            worker.poller.start()

    def notify(self) -> None:
        """New alerts were recorded: look now rather than at the next poll."""
        for worker in self._workers:
            worker.poller.notify()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Deliver what is due (one attempt each, within ``timeout`` seconds), release the
        leases, close the actions."""
        self.stopping.set()
        threads = [threading.Thread(target=w.poller.stop, args=(timeout,)) for w in
                   self._workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for worker in self._workers:
            if not worker.poller.running:
                worker.lease.release()
            try:
                worker.action.close()
            except Exception:
                log.exception("closing action %s failed", worker.action.name)

    def drain(self) -> int:
        """Deliver every routed alert after each action's position now, retries included
        (sleeping out the back-offs); the number of alerts delivered."""
        return sum(worker.drain() for worker in self._workers)
