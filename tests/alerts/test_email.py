"""The e-mail action against a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import base64
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.alerts.servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    alert_record,
    smtp_server,
)
from tests.conftest import free_port
from tests.tls import self_signed
from trailkeeper.alerts.actions.base import AlertMessage, DeliveryError
from trailkeeper.alerts.actions.email import EmailAction, EmailConfig
from trailkeeper.errors import ConfigurationError

EVENTS: list[dict[str, Any]] = [
    {"id": 1, "timestamp": "2023-11-14T22:13:20.000Z",
     "author": {"name": "mallory", "id": "u-17", "type": "user"},
     "type": {"category": "Security", "action": "Security hook skipped", "area": "SECURITY",
              "level": "BASE"},
     "affectedObjects": [{"type": "REPOSITORY", "name": "payments", "id": "42"}],
     "changedValues": [], "extraAttributes": [], "source": "203.0.113.9"},
]


def config(port: int, **extra: Any) -> EmailConfig:
    values: dict[str, Any] = {
        "name": "security-team", "type": "email", "to": ["security@example.com"],
        "from": "Trailkeeper <trailkeeper@example.com>", "host": "127.0.0.1", "port": port,
        "tls": "none", "timeout_s": 10}
    return EmailConfig.model_validate({**values, **extra})


def message(**alert: Any) -> AlertMessage:
    return AlertMessage(alert_record(**alert), events=EVENTS,
                        link="https://audit.example.com/audit?q=id%3A(1)")


def test_an_alert_is_mailed_as_plain_text_to_every_recipient() -> None:
    """The server receives one message, to the configured recipients, with the rule, the
    level and the first events in the subject and body."""
    with smtp_server() as (smtp, port):
        action = config(port, to=["security@example.com", "Ops <ops@example.com>"]).build()
        action.deliver(message())
    [envelope] = smtp.envelopes
    assert envelope.mail_from == "trailkeeper@example.com"
    assert sorted(envelope.rcpt_tos) == ["ops@example.com", "security@example.com"]
    [mail] = smtp.messages()
    assert mail["Subject"] == "[Trailkeeper] HIGH: Security hook skipped"
    assert mail["X-Trailkeeper-Alert"] == "7"
    assert mail.get_content_type() == "text/plain"
    body = mail.get_content()
    assert "Rule:     Security hook skipped (trailkeeper-security-hook-skipped)" in body
    assert "Level:    high" in body
    assert "Author:   mallory (u-17)" in body
    assert "Objects:  REPOSITORY payments (42)" in body
    assert "Source:   203.0.113.9" in body
    assert "Link:     https://audit.example.com/audit?q=id%3A(1)" in body


def test_starttls_with_a_private_ca_and_auth_delivers(tmp_path: Path) -> None:
    """STARTTLS verified against ``ca_file``, then AUTH: the server sees an authenticated,
    encrypted session."""
    cert = self_signed(tmp_path)
    (tmp_path / "pw").write_text(SMTP_PASSWORD + "\n")
    with smtp_server(tls=cert, auth=True) as (smtp, port):
        action = config(port, tls="starttls", ca_file=str(cert.cert_file),
                        username=SMTP_USER, password_file=str(tmp_path / "pw")).build()
        action.deliver(message())
    assert smtp.authenticated == [SMTP_USER]
    assert len(smtp.envelopes) == 1


def test_implicit_tls_delivers(tmp_path: Path) -> None:
    """``tls = "implicit"`` speaks TLS from the first byte (port 465 style)."""
    cert = self_signed(tmp_path)
    with smtp_server(tls=cert, implicit=True) as (smtp, port):
        config(port, tls="implicit", ca_file=str(cert.cert_file)).build().deliver(message())
    assert len(smtp.envelopes) == 1


def test_an_untrusted_certificate_is_a_permanent_failure(tmp_path: Path) -> None:
    """Without ``ca_file`` the self-signed certificate is refused, and nothing is sent."""
    cert = self_signed(tmp_path)
    with smtp_server(tls=cert) as (smtp, port):
        action = config(port, tls="starttls").build()
        with pytest.raises(DeliveryError) as caught:
            action.deliver(message())
    assert not caught.value.retryable
    assert "ca_file" in str(caught.value)
    assert smtp.envelopes == []


def test_a_server_without_starttls_is_not_used_in_clear() -> None:
    """When STARTTLS is required but not offered, the message is not sent unencrypted."""
    with smtp_server() as (smtp, port), pytest.raises(DeliveryError) as caught:
        config(port, tls="starttls").build().deliver(message())
    assert not caught.value.retryable
    assert "STARTTLS" in str(caught.value)
    assert smtp.envelopes == []


def test_a_wrong_password_is_a_permanent_failure(tmp_path: Path) -> None:
    """535 (authentication failed) is not retried."""
    cert = self_signed(tmp_path)
    with smtp_server(tls=cert, auth=True) as (smtp, port):
        action = config(port, tls="starttls", ca_file=str(cert.cert_file),
                        username=SMTP_USER, password="wrong").build()
        with pytest.raises(DeliveryError) as caught:
            action.deliver(message())
    assert not caught.value.retryable
    assert "535" in str(caught.value)
    assert smtp.envelopes == []


@pytest.mark.parametrize(("reply", "retryable"), [
    ("550 5.1.1 No such user", False),
    ("450 4.2.1 Mailbox busy, try later", True),
])
def test_a_refused_recipient_is_retryable_only_for_4xx(reply: str, retryable: bool) -> None:
    """The SMTP reply class decides: 4xx is temporary, 5xx permanent."""
    with smtp_server() as (smtp, port):
        smtp.refuse["security@example.com"] = reply
        with pytest.raises(DeliveryError) as caught:
            config(port).build().deliver(message())
    assert caught.value.retryable is retryable
    assert reply.split()[0] in str(caught.value)


def test_a_server_that_is_down_is_a_retryable_failure() -> None:
    """A refused connection may succeed later."""
    with pytest.raises(DeliveryError) as caught:
        config(free_port()).build().deliver(message())
    assert caught.value.retryable


def test_a_server_that_never_answers_times_out_retryably() -> None:
    """A listener that accepts no conversation ends in a retryable time-out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with pytest.raises(DeliveryError) as caught:
            config(port, timeout_s=0.3).build().deliver(message())
    assert caught.value.retryable


def test_event_data_cannot_inject_headers_or_lines() -> None:
    """Line breaks in a group value, a rule title or an author's name are escaped: no
    extra header, no extra recipient, no forged body line."""
    group = {"author.name": "bob\r\nBcc: attacker@evil.example\r\nX-Evil: 1"}
    events = [{**EVENTS[0], "author": {"name": "eve\nRule:     Fake rule\x1b[31m"}}]
    msg = AlertMessage(alert_record(rule_title="Hook\nskipped", group=group), events=events)
    with smtp_server() as (smtp, port):
        config(port).build().deliver(msg)
    [envelope] = smtp.envelopes
    assert envelope.rcpt_tos == ["security@example.com"]
    [mail] = smtp.messages()
    assert mail["Bcc"] is None and mail["X-Evil"] is None
    assert mail["Subject"] == ("[Trailkeeper] HIGH: Hook\\x0askipped (author.name=bob\\x0d"
                               "\\x0aBcc: attacker@evil.example\\x0d\\x0aX-Evil: 1)")
    body = mail.get_content()
    assert "\x1b" not in body
    assert not any(line.startswith("Rule:     Fake") for line in body.splitlines())
    assert "Author:   eve\\x0aRule:     Fake rule\\x1b[31m" in body


def test_the_password_never_appears_in_logs_errors_or_reprs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At DEBUG, through a good and a failed login, no log record, error or repr holds the
    password, in clear or base64."""
    caplog.set_level(logging.DEBUG)
    cert = self_signed(tmp_path)
    monkeypatch.setenv("TK_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    errors: list[str] = []
    with smtp_server(tls=cert, auth=True) as (smtp, port):
        good = config(port, tls="starttls", ca_file=str(cert.cert_file),
                      username=SMTP_USER, password_env="TK_TEST_SMTP_PASSWORD")
        good.build().deliver(message())
        bad = config(port, tls="starttls", ca_file=str(cert.cert_file),
                     username=SMTP_USER, password=SMTP_PASSWORD + "x")
        with pytest.raises(DeliveryError) as caught:
            bad.build().deliver(message())
        errors.append(str(caught.value))
    assert len(smtp.envelopes) == 1
    encoded = base64.b64encode(f"\0{SMTP_USER}\0{SMTP_PASSWORD}".encode()).decode()
    texts = [r.getMessage() for r in caplog.records if r.name.startswith("trailkeeper")]
    texts += [*errors, repr(good), repr(bad), str(bad), repr(good.build())]
    for text in texts:
        assert SMTP_PASSWORD not in text
        assert encoded not in text


def test_auth_in_clear_needs_an_explicit_opt_in() -> None:
    """``tls = "none"`` with a username is refused unless ``allow_plaintext_auth``."""
    with pytest.raises(ValidationError, match="allow_plaintext_auth"):
        config(25, username="u", password="p")
    assert config(25, username="u", password="p", allow_plaintext_auth=True).username == "u"


@pytest.mark.parametrize("extra", [
    {"to": []},
    {"to": ["not-an-address"]},
    {"to": ["a@example.com\r\nBcc: b@example.com"]},
    {"from": "x"},
    {"password": "p"},  # without a username
    {"username": "u", "tls": "starttls"},  # without a password
    {"username": "u", "password": "p", "password_env": "X", "tls": "starttls"},
    {"bogus": 1},
])
def test_invalid_configurations_are_refused(extra: dict[str, Any]) -> None:
    """Bad addresses, half-given credentials and unknown keys fail at load time."""
    with pytest.raises(ValidationError):
        config(25, **extra)


def test_a_missing_password_variable_fails_at_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """``password_env`` naming an unset variable is a configuration error naming it."""
    monkeypatch.delenv("TK_TEST_UNSET", raising=False)
    cfg = config(25, tls="starttls", username="u", password_env="TK_TEST_UNSET")
    with pytest.raises(ConfigurationError, match="TK_TEST_UNSET"):
        cfg.build()


def test_the_default_port_follows_the_tls_mode() -> None:
    """587 for STARTTLS (and none), 465 for implicit TLS."""
    base = {"name": "m", "to": ["a@example.com"], "from": "b@example.com", "host": "h"}
    assert EmailConfig.model_validate(base).effective_port == 587
    assert EmailConfig.model_validate({**base, "tls": "implicit"}).effective_port == 465
    assert isinstance(EmailConfig.model_validate(base).build(), EmailAction)
