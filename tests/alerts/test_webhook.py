"""The signed webhook action against a real HTTP receiver on loopback."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError

from tests.alerts.servers import (
    WEBHOOK_SECRET,
    WebhookReceiver,
    alert_record,
    webhook_server,
)
from tests.conftest import free_port
from tests.tls import self_signed
from trailkeeper import __version__
from trailkeeper.alerts.actions.base import AlertMessage, DeliveryError
from trailkeeper.alerts.actions.webhook import (
    WebhookConfig,
    retry_after_seconds,
    sign,
    verify_signature,
)
from trailkeeper.errors import ConfigurationError


def config(url: str, **extra: Any) -> WebhookConfig:
    values: dict[str, Any] = {"name": "soar", "type": "webhook", "url": url,
                              "secret": WEBHOOK_SECRET, "timeout_s": 10}
    return WebhookConfig.model_validate({**values, **extra})


def message(alert_id: int = 7) -> AlertMessage:
    return AlertMessage(alert_record(alert_id), events=[{"id": 1, "source": "203.0.113.9"}],
                        link="https://audit.example.com/audit?q=id%3A(1)")


def test_a_delivery_is_signed_json_with_an_idempotency_key() -> None:
    """The receiver gets the alert's JSON with a signature it can verify, the alert id as
    delivery id, and the configured extra headers."""
    with webhook_server() as (receiver, url):
        action = config(url, headers={"Authorization": "Bearer t0k"}).build()
        try:
            action.deliver(message())
        finally:
            action.close()
    [delivery] = receiver.requests
    assert delivery.valid and delivery.status == 204
    assert delivery.json() == message().as_json()
    h = delivery.headers
    assert h["content-type"] == "application/json"
    assert h["x-trailkeeper-delivery"] == "7"
    assert h["x-trailkeeper-signature"] == sign(WEBHOOK_SECRET, h["x-trailkeeper-timestamp"],
                                                delivery.body)
    assert h["user-agent"] == f"Trailkeeper/{__version__}"
    assert h["authorization"] == "Bearer t0k"


def test_a_receiver_with_another_secret_rejects_the_delivery_permanently() -> None:
    """The signature depends on the secret: the receiver answers 401, which is not
    retried."""
    with webhook_server(WebhookReceiver(secret="another secret")) as (receiver, url):
        action = config(url).build()
        with pytest.raises(DeliveryError) as caught:
            action.deliver(message())
        action.close()
    assert not caught.value.retryable
    assert "401" in str(caught.value)
    assert [d.valid for d in receiver.requests] == [False]


def test_verify_signature_rejects_tampering_and_stale_timestamps() -> None:
    """Only the exact body and timestamp, recent enough, verify."""
    body = orjson.dumps(message().as_json())
    now = time.time()
    ts = str(int(now))
    header = sign(WEBHOOK_SECRET, ts, body)
    assert verify_signature(WEBHOOK_SECRET, ts, body, header, now=now)
    assert verify_signature(WEBHOOK_SECRET.encode(), ts, body, header, now=now)
    assert not verify_signature(WEBHOOK_SECRET, ts, body.replace(b'"high"', b'"low"'),
                                header, now=now)
    assert not verify_signature(WEBHOOK_SECRET, str(int(now) + 1), body, header, now=now)
    assert not verify_signature("other", ts, body, header, now=now)
    assert not verify_signature(WEBHOOK_SECRET, ts, body, header, now=now + 301)
    assert verify_signature(WEBHOOK_SECRET, ts, body, header, now=now + 301, tolerance_s=600)
    assert not verify_signature(WEBHOOK_SECRET, "soon", body, header, now=now)
    assert not verify_signature(WEBHOOK_SECRET, ts, body, header.removeprefix("sha256="),
                                now=now)


def test_a_tampered_body_is_rejected_by_the_receiver() -> None:
    """A request whose body was changed after signing fails the receiver's check."""
    action = config("http://127.0.0.1:1/").build()
    body = orjson.dumps(message().as_json())
    headers = action.request_headers(7, body)
    action.close()
    with webhook_server() as (receiver, url):
        response = httpx.post(url, content=body.replace(b"Security", b"Harmless"),
                              headers=headers)
        good = httpx.post(url, content=body, headers=headers)
    assert (response.status_code, good.status_code) == (401, 204)
    assert [d.valid for d in receiver.requests] == [False, True]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_busy_or_failing_receivers_are_retryable(status: int) -> None:
    """408, 429 and 5xx may succeed later."""
    receiver = WebhookReceiver()
    receiver.script.append((status, {}))
    with webhook_server(receiver) as (_, url):
        action = config(url).build()
        with pytest.raises(DeliveryError) as caught:
            action.deliver(message())
        action.deliver(message())  # the next attempt is answered 204
        action.close()
    assert caught.value.retryable
    assert caught.value.retry_after_s is None
    assert [d.status for d in receiver.requests] == [status, 204]
    assert receiver.requests[0].headers["x-trailkeeper-delivery"] == \
        receiver.requests[1].headers["x-trailkeeper-delivery"]


@pytest.mark.parametrize("status", [400, 403, 404, 410, 301])
def test_other_replies_give_the_alert_up(status: int) -> None:
    """A request the receiver refuses as such will not succeed by repetition."""
    receiver = WebhookReceiver()
    receiver.script.append((status, {"Location": "https://elsewhere.example/"}))
    with webhook_server(receiver) as (_, url):
        action = config(url).build()
        with pytest.raises(DeliveryError) as caught:
            action.deliver(message())
        action.close()
    assert not caught.value.retryable
    assert str(status) in str(caught.value)


def test_retry_after_is_honoured_in_seconds_and_as_a_date() -> None:
    """``Retry-After`` (seconds or an HTTP date) becomes the error's ``retry_after_s``."""
    when = datetime.now(UTC) + timedelta(seconds=120)
    receiver = WebhookReceiver()
    receiver.script.extend([(429, {"Retry-After": "17"}),
                            (503, {"Retry-After": format_datetime(when, usegmt=True)})])
    with webhook_server(receiver) as (_, url):
        action = config(url).build()
        errors = []
        for _ in range(2):
            with pytest.raises(DeliveryError) as caught:
                action.deliver(message())
            errors.append(caught.value)
        action.close()
    assert errors[0].retry_after_s == 17
    assert errors[1].retry_after_s is not None and 60 < errors[1].retry_after_s <= 121
    assert retry_after_seconds("garbage") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0


def test_a_receiver_that_is_down_is_retryable_and_the_url_query_stays_private() -> None:
    """A refused connection is retried; the error names the receiver without its query
    string (which may hold a token)."""
    action = config(f"http://127.0.0.1:{free_port()}/hook?token=hunter2").build()
    with pytest.raises(DeliveryError) as caught:
        action.deliver(message())
    action.close()
    assert caught.value.retryable
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(action)


def test_https_with_a_private_ca(tmp_path: Path) -> None:
    """An HTTPS receiver with a self-signed certificate is trusted through ``ca_file``,
    and refused permanently without it."""
    cert = self_signed(tmp_path)
    with webhook_server(tls=cert) as (receiver, url):
        assert url.startswith("https://")
        trusted = config(url, ca_file=str(cert.cert_file)).build()
        trusted.deliver(message())
        trusted.close()
        untrusted = config(url).build()
        with pytest.raises(DeliveryError) as caught:
            untrusted.deliver(message())
        untrusted.close()
    assert [d.valid for d in receiver.delivered] == [True]
    assert not caught.value.retryable


def test_the_secret_can_come_from_a_file_and_never_shows(tmp_path: Path) -> None:
    """``secret_file`` is read at build; the secret is in no repr."""
    (tmp_path / "secret").write_text(WEBHOOK_SECRET + "\n")
    cfg = config("http://127.0.0.1:1/", secret=None, secret_file=str(tmp_path / "secret"))
    with webhook_server() as (receiver, url):
        action = config(url, secret=None, secret_file=str(tmp_path / "secret")).build()
        action.deliver(message())
        action.close()
    assert receiver.delivered
    assert WEBHOOK_SECRET not in repr(cfg) + repr(config("http://x/")) + repr(action)


@pytest.mark.parametrize("extra", [
    {"url": "ftp://example.com/"},
    {"url": "example.com/hook"},
    {"secret": None},
    {"secret_env": "X"},  # as well as secret
    {"headers": {"X-Trailkeeper-Signature": "forged"}},
    {"headers": {"X-Ok": "a\r\nX-Injected: 1"}},
    {"headers": {"Bad Name": "v"}},
])
def test_invalid_configurations_are_refused(extra: dict[str, Any]) -> None:
    """Non-HTTP URLs, a missing or doubled secret and unsafe headers fail at load time."""
    extra = dict(extra)
    with pytest.raises(ValidationError):
        config(extra.pop("url", "http://127.0.0.1/"), **extra)


def test_an_empty_secret_file_fails_at_build(tmp_path: Path) -> None:
    """An empty key would sign with nothing: a configuration error naming the file."""
    (tmp_path / "empty").write_text("")
    cfg = config("http://127.0.0.1/", secret=None, secret_file=str(tmp_path / "empty"))
    with pytest.raises(ConfigurationError, match="empty"):
        cfg.build()
