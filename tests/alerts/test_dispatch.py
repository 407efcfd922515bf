"""The dispatcher on both stores: routing, durable positions, retries, give-up, leases —
against a real SMTP server and a real webhook receiver."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.alerts.servers import (
    WEBHOOK_SECRET,
    SmtpRecorder,
    WebhookReceiver,
    smtp_server,
    webhook_server,
)
from tests.conftest import free_port
from tests.factories import batch, rich_event
from trailkeeper.alerts.actions.email import EmailConfig
from trailkeeper.alerts.actions.webhook import WebhookConfig
from trailkeeper.alerts.dispatch import Dispatcher
from trailkeeper.alerts.model import NewAlert
from trailkeeper.metrics import Metrics
from trailkeeper.model.event import AuditAuthor
from trailkeeper.storage.base import Storage

T0 = 1_700_000_000_000
HOOK_RULE = "trailkeeper-security-hook-skipped"
FAST: dict[str, Any] = {"first_backoff_s": 0.01, "max_backoff_s": 0.05, "poll_interval_s": 0.05}


def add_events(storage: Storage, count: int = 3) -> list[int]:
    [result] = storage.append([batch(storage, *(
        rich_event(action="Security hook skipped", minutes=n,
                   author=AuditAuthor(name=f"user-{n}", id=f"u{n}", type="user"))
        for n in range(count)))])
    assert not isinstance(result, Exception)
    return result.ids


def record(storage: Storage, trigger: int, *, rule: str = HOOK_RULE,
           level: str = "high", origin: str = "live", tags: tuple[str, ...] = (),
           group: dict[str, str] | None = None, throttle_ms: int = 0) -> int | None:
    ids = storage.record_alerts([NewAlert(
        rule_id=rule, rule_title=f"Title of {rule}", level=level, timestamp_ms=T0 + trigger,
        trigger_id=trigger, event_ids=(trigger,), group=group or {}, tags=tags,
        origin=origin)], throttle_ms=throttle_ms, now_ms=T0 + trigger)  # type: ignore[arg-type]
    return ids[0] if ids else None


def webhook(url: str, name: str = "soar", **route: Any) -> tuple[WebhookConfig, Any]:
    cfg = WebhookConfig.model_validate({"name": name, "type": "webhook", "url": url,
                                        "secret": WEBHOOK_SECRET, "timeout_s": 10, **route})
    return cfg, cfg.build()


def email(port: int, **route: Any) -> tuple[EmailConfig, Any]:
    cfg = EmailConfig.model_validate({
        "name": "security-team", "type": "email", "to": ["security@example.com"],
        "from": "trailkeeper@example.com", "host": "127.0.0.1", "port": port, "tls": "none",
        **route})
    return cfg, cfg.build()


def delivered_ids(receiver: WebhookReceiver) -> list[int]:
    return [int(d.headers["x-trailkeeper-delivery"]) for d in receiver.delivered]


def mailed_ids(smtp: SmtpRecorder) -> list[int]:
    return [int(str(m["X-Trailkeeper-Alert"])) for m in smtp.messages()]


def count(metrics: Metrics, action: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "trailkeeper_alert_deliveries_total", {"action": action, "outcome": outcome})
    return value or 0.0


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def receiver() -> Iterator[tuple[WebhookReceiver, str]]:
    with webhook_server() as served:
        yield served


def test_alerts_reach_the_actions_whose_routes_match(storage: Storage) -> None:
    """By rule, by level and by tag; hunt alerts only where ``include_hunts`` is set; the
    e-mail carries the stored event and the link."""
    ids = add_events(storage)
    metrics = Metrics()
    with smtp_server() as (smtp, port), webhook_server() as (soar, soar_url), \
            webhook_server() as (hunts, hunts_url):
        dispatcher = Dispatcher(storage, [
            email(port, rules=[HOOK_RULE]),
            webhook(soar_url, "soar", min_level="high"),
            webhook(hunts_url, "hunts", tags=["attack.*"], include_hunts=True),
        ], metrics=metrics, public_url="https://audit.example.com/", **FAST)
        dispatcher.drain()  # positions start at the (empty) end
        a1 = record(storage, ids[0], level="medium")
        a2 = record(storage, ids[1], rule="other", level="high", tags=("attack.t1078",))
        a3 = record(storage, ids[2], rule="other", level="critical", origin="hunt",
                    tags=("attack.t1110",))
        a4 = record(storage, ids[1], level="high", origin="hunt")
        assert dispatcher.drain() == 4
        dispatcher.stop()
    assert mailed_ids(smtp) == [a1]
    assert delivered_ids(soar) == [a2]
    assert delivered_ids(hunts) == [a2, a3]
    assert a4 is not None  # routed nowhere: a hunt alert without the tag
    [mail] = smtp.messages()
    body = mail.get_content()
    assert "Author:   user-0 (u0)" in body
    assert f"Link:     https://audit.example.com/audit?q=id%3A%28{ids[0]}%29" in body
    assert soar.delivered[0].json()["events"][0]["id"] == ids[1]
    assert count(metrics, "hunts", "delivered") == 2
    assert count(metrics, "security-team", "delivered") == 1


def test_a_new_action_does_not_deliver_the_history(storage: Storage,
                                                   receiver: tuple[WebhookReceiver, str]
                                                   ) -> None:
    """On its first start an action begins after the newest alert; ``from_start`` sends
    the stored ones too."""
    received, url = receiver
    old = record(storage, 1)
    Dispatcher(storage, [webhook(url)], **FAST).drain()
    new = record(storage, 2)
    Dispatcher(storage, [webhook(url)], **FAST).drain()
    assert delivered_ids(received) == [new]
    Dispatcher(storage, [webhook(url, "replay")], from_start=True, **FAST).drain()
    assert delivered_ids(received) == [new, old, new]


def test_throttled_matches_do_not_notify_again(storage: Storage,
                                               receiver: tuple[WebhookReceiver, str]) -> None:
    """A match merged into an open alert is no new alert, so no new delivery."""
    received, url = receiver
    dispatcher = Dispatcher(storage, [webhook(url)], **FAST)
    dispatcher.drain()
    first = record(storage, 1, group={"user": "bob"}, throttle_ms=600_000)
    merged = record(storage, 2, group={"user": "bob"}, throttle_ms=600_000)
    dispatcher.drain()
    assert merged is None
    assert delivered_ids(received) == [first]


def test_a_restart_in_the_middle_delivers_every_alert_exactly_once(storage: Storage) -> None:
    """Stopped while delivering the 3rd of 6 alerts, a new dispatcher delivers the other
    three: none lost, none repeated."""
    received = WebhookReceiver(hold_at=3)
    with webhook_server(received) as (_, url):
        first = Dispatcher(storage, [webhook(url)], **FAST)
        first.drain()
        alerts = [record(storage, n) for n in range(1, 7)]
        first.start()
        first.notify()
        wait_until(received.held.is_set, "the third delivery")
        stopper = threading.Thread(target=first.stop, args=(0,))
        stopper.start()
        wait_until(first.stopping.is_set, "the stop")
        received.release.set()
        stopper.join(30)
        assert delivered_ids(received) == alerts[:3]
        second = Dispatcher(storage, [webhook(url)], **FAST)
        second.start()
        wait_until(lambda: len(received.delivered) >= 6, "the remaining deliveries")
        second.stop()
    assert delivered_ids(received) == alerts
    assert len(received.requests) == 6


def test_a_receiver_that_is_down_gets_the_alerts_once_it_is_up(storage: Storage) -> None:
    """Connection refused is retried with back-off; when the receiver comes up every
    alert arrives, once and in order."""
    port = free_port()
    metrics = Metrics()
    dispatcher = Dispatcher(storage, [webhook(f"http://127.0.0.1:{port}/hook")],
                            metrics=metrics, max_attempts=10_000, **FAST)
    dispatcher.drain()
    alerts = [record(storage, n) for n in range(1, 4)]
    dispatcher.start()
    retries: Callable[[], float] = lambda: metrics.registry.get_sample_value(  # noqa: E731
        "trailkeeper_alert_delivery_retries_total", {"action": "soar"}) or 0.0
    wait_until(lambda: retries() >= 3, "failed attempts")
    assert count(metrics, "soar", "delivered") == 0
    with webhook_server(port=port) as (received, _):
        wait_until(lambda: len(received.delivered) == 3, "the deliveries")
        dispatcher.stop()
    assert delivered_ids(received) == alerts
    assert count(metrics, "soar", "delivered") == 3
    assert count(metrics, "soar", "failed") == 0


def test_a_failing_receiver_is_retried_with_the_same_alert(storage: Storage) -> None:
    """503, 503, then 204: the first alert is delivered on the third attempt with the same
    delivery id, before the second alert."""
    received = WebhookReceiver()
    received.script.extend([(503, {}), (503, {"Retry-After": "0"})])
    metrics = Metrics()
    with webhook_server(received) as (_, url):
        dispatcher = Dispatcher(storage, [webhook(url)], metrics=metrics, **FAST)
        dispatcher.drain()
        alerts = [record(storage, 1), record(storage, 2)]
        dispatcher.drain()
    assert [int(d.headers["x-trailkeeper-delivery"]) for d in received.requests] == \
        [alerts[0], alerts[0], alerts[0], alerts[1]]
    assert delivered_ids(received) == alerts
    assert metrics.registry.get_sample_value(
        "trailkeeper_alert_delivery_retries_total", {"action": "soar"}) == 2


def test_an_alert_is_given_up_after_max_attempts(storage: Storage,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Three 503s with ``max_attempts = 3``: the alert is logged as failed, without its
    body or the secret, and the next one is delivered."""
    received = WebhookReceiver()
    received.script.extend([(503, {})] * 3)
    metrics = Metrics()
    with webhook_server(received) as (_, url):
        dispatcher = Dispatcher(storage, [webhook(url)], metrics=metrics, max_attempts=3,
                                **FAST)
        dispatcher.drain()
        alerts = [record(storage, 1), record(storage, 2)]
        with caplog.at_level(logging.INFO, logger="trailkeeper"):
            assert dispatcher.drain() == 1
    assert delivered_ids(received) == [alerts[1]]
    assert len(received.requests) == 4
    assert (count(metrics, "soar", "failed"), count(metrics, "soar", "delivered")) == (1, 1)
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    text = error.getMessage()
    assert f"gave up alert {alerts[0]}" in text and "503" in text
    assert WEBHOOK_SECRET not in caplog.text and "Title of" not in caplog.text


def test_a_permanent_failure_is_not_retried(storage: Storage) -> None:
    """400: given up at once ("rejected"), and the next alert goes on."""
    received = WebhookReceiver()
    received.script.append((400, {}))
    metrics = Metrics()
    with webhook_server(received) as (_, url):
        dispatcher = Dispatcher(storage, [webhook(url)], metrics=metrics, **FAST)
        dispatcher.drain()
        alerts = [record(storage, 1), record(storage, 2)]
        dispatcher.drain()
    assert [d.status for d in received.requests] == [400, 204]
    assert delivered_ids(received) == [alerts[1]]
    assert count(metrics, "soar", "rejected") == 1
    assert metrics.registry.get_sample_value(
        "trailkeeper_alert_delivery_retries_total", {"action": "soar"}) == 0


def test_only_the_lease_holder_delivers_for_an_action(
        storage: Storage, receiver: tuple[WebhookReceiver, str]) -> None:
    """While one process holds an action's lease, another delivers nothing for it; after
    a release it takes over from the shared position."""
    received, url = receiver
    one = Dispatcher(storage, [webhook(url)], owner="node-1", **FAST)
    two = Dispatcher(storage, [webhook(url)], owner="node-2", **FAST)
    one.drain()
    first = record(storage, 1)
    assert two.drain() == 0
    assert one.drain() == 1
    one.stop()  # releases the lease
    second = record(storage, 2)
    assert two.drain() == 1
    two.stop()
    assert delivered_ids(received) == [first, second]


def test_action_names_must_be_unique(storage: Storage) -> None:
    """Two actions with one name would share a position."""
    with pytest.raises(ValueError, match="unique"):
        Dispatcher(storage, [webhook("http://127.0.0.1:1/"), webhook("http://127.0.0.1:2/")])
