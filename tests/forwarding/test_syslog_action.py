"""The syslog alert action: one RFC 5424 message per alert to a real listener."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from tests.forwarding.helpers import (
    StreamReceiver,
    UdpReceiver,
    parse_cef,
    parse_rfc5424,
    receiving,
    wait_for,
)
from trailkeeper.alerts.actions.base import AlertMessage, DeliveryError
from trailkeeper.alerts.actions.syslog import SyslogActionConfig
from trailkeeper.alerts.model import AlertRecord


def alert(level: str | None, **overrides: object) -> AlertRecord:
    fields: dict[str, object] = dict(
        id=42, rule_id="5f1c-rule", rule_title="Admin | granted = \"]\"", level=level,
        tags=("attack.persistence",), timestamp_ms=1_709_294_400_000,
        last_ms=1_709_294_460_500, created_ms=1_709_294_461_000, event_ids=(7, 9),
        group={"author.name": "alice"}, count=2, status="open", origin="live")
    fields.update(overrides)
    return AlertRecord(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("level", "severity"), [
    ("critical", 2), ("high", 3), ("medium", 4), ("low", 5), ("informational", 6),
])
def test_one_frame_per_alert_with_the_severity_of_its_level(level: str, severity: int) -> None:
    message = AlertMessage(alert(level), events=[{"id": 7, "x": "ü\n"}],
                           link="https://audit.example.com/alerts/42")
    with receiving(StreamReceiver()) as receiver:
        action = SyslogActionConfig(name="siem", type="syslog", url=receiver.url,
                                    facility="local4", hostname="node-1").build()
        action.deliver(message)
        wait_for(lambda: len(receiver.frames) == 1)
        action.close()
    parsed = parse_rfc5424(receiver.frames[0])
    assert (parsed.facility, parsed.severity, parsed.msgid, parsed.hostname) == \
        (20, severity, "alert", "node-1")
    assert parsed.timestamp == "2024-03-01T12:01:00.500Z"
    assert parsed.message is not None
    assert orjson.loads(parsed.message) == orjson.loads(orjson.dumps(message.as_json()))


def test_cef_alerts_over_udp() -> None:
    receiver = UdpReceiver()
    try:
        action = SyslogActionConfig(name="siem", type="syslog", url=receiver.url,
                                    format="cef").build()
        action.deliver(AlertMessage(alert("high")))
        wait_for(lambda: len(receiver.frames) == 1)
        action.close()
    finally:
        receiver.close()
    parsed = parse_rfc5424(receiver.frames[0])
    assert parsed.severity == 3 and parsed.message is not None
    header, ext = parse_cef(parsed.message)
    assert header[3:] == ["5f1c-rule", 'Admin | granted = "]"', "8"]
    assert ext["externalId"] == "42" and ext["cs2"] == "7;9" and ext["cnt"] == "2"


def test_an_unreachable_receiver_is_a_retryable_delivery_error() -> None:
    receiver = StreamReceiver()  # never started: the port refuses
    action = SyslogActionConfig(name="siem", type="syslog", url=receiver.url).build()
    with pytest.raises(DeliveryError) as caught:
        action.deliver(AlertMessage(alert("low")))
    assert caught.value.retryable
    with receiving(receiver):
        action.deliver(AlertMessage(alert("low")))  # reconnects
        wait_for(lambda: len(receiver.frames) == 1)
    action.close()


def test_the_action_configuration_is_checked() -> None:
    base = {"name": "siem", "type": "syslog", "url": "tcp://127.0.0.1"}
    for bad in ({"url": "http://x"}, {"facility": "nope"}, {"colour": "red"},
                {"framing": "crlf"}, {"key_password": "a", "key_password_env": "B"}):
        with pytest.raises(ValidationError):
            SyslogActionConfig.model_validate({**base, **bad})
    config = SyslogActionConfig.model_validate({**base, "min_level": "high"})
    assert config.matches(alert("critical")) and not config.matches(alert("low"))
