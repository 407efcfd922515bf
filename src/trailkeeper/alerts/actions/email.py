"""The e-mail alert action: a plain-text message over SMTP.

```toml
[[action]]
name = "security-team"
type = "email"
rules = ["trailkeeper-security-hook-skipped"]
to = ["security@example.com"]
from = "Trailkeeper <trailkeeper@example.com>"
host = "smtp.example.com"          # port 587 and STARTTLS unless told otherwise
username = "trailkeeper"
password_env = "TRAILKEEPER_SMTP_PASSWORD"
```

The connection is encrypted by default (STARTTLS on 587, or ``tls = "implicit"`` on 465)
and the server's certificate verified (``ca_file`` to trust a private CA); credentials are
never sent over an unencrypted connection unless ``allow_plaintext_auth`` says so.
Failures the server may get over (refused connections, time-outs, 4xx replies) are
retryable; 5xx replies (unknown recipient, failed authentication) and TLS problems are not.
"""

from __future__ import annotations

import base64
import logging
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from trailkeeper import __version__
from trailkeeper.alerts.actions.base import AlertMessage, DeliveryError
from trailkeeper.alerts.actions.secrets import check_one_secret, resolve_secret
from trailkeeper.alerts.message import clean, render_subject, render_text
from trailkeeper.alerts.routing import RouteConfig
from trailkeeper.errors import ConfigurationError

log = logging.getLogger("trailkeeper.alerts.email")

_ADDR_SPEC = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9.-]+$|^[^@\s<>]+@\[[0-9A-Fa-f:.]+\]$")


def _check_address(value: str) -> str:
    """``user@example.com`` or ``Name <user@example.com>``, on one line."""
    if any(c in value for c in "\r\n\x00"):
        raise ValueError("an e-mail address cannot contain line breaks")
    pairs = getaddresses([value])
    if len(pairs) != 1 or not _ADDR_SPEC.match(pairs[0][1]):
        raise ValueError(f"not an e-mail address: {value!r}")
    return value


class EmailConfig(RouteConfig):
    """``[[action]]`` with ``type = "email"``."""

    type: Literal["email"] = "email"
    to: tuple[str, ...] = Field(min_length=1)
    from_: str = Field(alias="from")
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)  # 587, or 465 when implicit
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None  # trust this CA (a private or self-signed server)
    verify: bool = True  # verify the server's certificate and name
    allow_plaintext_auth: bool = False  # AUTH with tls = "none": the password in clear
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    subject_prefix: str = Field(default="[Trailkeeper]", max_length=50)

    @field_validator("to")
    @classmethod
    def _valid_recipients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_address(v) for v in value)

    @field_validator("from_")
    @classmethod
    def _valid_sender(cls, value: str) -> str:
        return _check_address(value)

    @field_validator("subject_prefix", "username", "host")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must not contain control characters")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EmailConfig:
        check_one_secret(self.password, self.password_env, self.password_file,
                         what="password")
        has_password = any(v is not None for v in
                           (self.password, self.password_env, self.password_file))
        if has_password and self.username is None:
            raise ValueError("a password needs a username")
        if self.username is not None and not has_password:
            raise ValueError("username needs password, password_env or password_file")
        if self.username is not None and self.tls == "none" and not self.allow_plaintext_auth:
            raise ValueError('with tls = "none" the password would be sent in clear; use '
                             'tls = "starttls" or "implicit", or set allow_plaintext_auth')
        return self

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 465 if self.tls == "implicit" else 587

    def build(self) -> EmailAction:
        """The live action; reads the password and the CA file now."""
        try:
            password = resolve_secret(self.password, self.password_env, self.password_file,
                                      what="password")
            context = _ssl_context(self.ca_file, self.verify) if self.tls != "none" else None
        except (ValueError, OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"action {self.name}: {exc}") from None
        return EmailAction(self, password=password, context=context)


def _ssl_context(ca_file: Path | None, verify: bool) -> ssl.SSLContext:
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    # With ca_file, trust that CA (a private one) instead of the system's.
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


class EmailAction:
    """Sends each alert as one plain-text e-mail to every recipient of the config."""

    def __init__(self, config: EmailConfig, *, password: str | None,
                 context: ssl.SSLContext | None) -> None:
        self.config = config
        self._password = password
        self._context = context
        self._envelope_from = parseaddr(config.from_)[1]
        self._envelope_to = [parseaddr(a)[1] for a in config.to]
        self._domain = self._envelope_from.rpartition("@")[2] or "trailkeeper.invalid"

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        c = self.config
        return f"EmailAction(name={c.name!r}, host={c.host!r}, to={list(c.to)!r})"

    def compose(self, message: AlertMessage) -> EmailMessage:
        """The e-mail for ``message`` (headers hold no line break from event data)."""
        mail = EmailMessage()
        mail["Subject"] = render_subject(message, self.config.subject_prefix)
        mail["From"] = self.config.from_
        mail["To"] = ", ".join(self.config.to)
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = make_msgid(f"alert-{message.alert.id}", domain=self._domain)
        mail["X-Trailkeeper-Alert"] = str(message.alert.id)
        mail["X-Trailkeeper-Rule"] = clean(message.alert.rule_id, limit=200)
        mail["User-Agent"] = f"Trailkeeper/{__version__}"
        mail.set_content(render_text(message))
        return mail

    def deliver(self, message: AlertMessage) -> None:
        mail = self.compose(message)
        c = self.config
        where = f"{c.host}:{c.effective_port}"
        try:
            self._send(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            temporary = all(400 <= code < 500 for code in codes)
            raise DeliveryError(f"{where} refused every recipient "
                                f"({', '.join(sorted(exc.recipients))}: "
                                f"{_reply(*next(iter(exc.recipients.values())))})",
                                retryable=temporary) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"{where}: {exc}", retryable=False) from None
        except smtplib.SMTPResponseException as exc:
            temporary = 400 <= exc.smtp_code < 500
            raise DeliveryError(f"{where} replied {_reply(exc.smtp_code, exc.smtp_error)}",
                                retryable=temporary) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"{where}: the server's certificate is not trusted "
                                f"({exc.verify_message}); set ca_file to its CA",
                                retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            # Refused or dropped connections, time-outs, DNS failures, TLS errors.
            raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}",
                                retryable=True) from None
        log.debug("alert %d e-mailed to %d recipients via %s", message.alert.id,
                  len(self._envelope_to), where)

    def _send(self, mail: EmailMessage) -> None:
        c = self.config
        smtp: smtplib.SMTP
        if c.tls == "implicit":
            smtp = smtplib.SMTP_SSL(c.host, c.effective_port, timeout=c.timeout_s,
                                    context=self._context)
        else:
            smtp = smtplib.SMTP(c.host, c.effective_port, timeout=c.timeout_s)
        with smtp:
            smtp.ehlo()
            if c.tls == "starttls":
                if not smtp.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError(
                        "the server does not offer STARTTLS (set tls = \"none\" to send "
                        "unencrypted)")
                smtp.starttls(context=self._context)
                smtp.ehlo()
            if c.username is not None and self._password is not None:
                _login(smtp, c.username, self._password)
            refused = smtp.send_message(mail, from_addr=self._envelope_from,
                                        to_addrs=self._envelope_to)
        if refused:
            log.warning("%s refused some recipients of an alert: %s", c.host,
                        ", ".join(f"{a} ({_reply(*r)})" for a, r in sorted(refused.items())))

    def close(self) -> None:
        """Nothing to release: one connection per message."""


def _login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH; smtplib only encodes ASCII credentials, so others go as UTF-8 PLAIN
    (RFC 4616)."""
    if (username + password).isascii():
        smtp.login(username, password)
        return
    if not smtp.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("the server does not offer AUTH")
    if "PLAIN" not in smtp.esmtp_features["auth"].upper().split():
        raise smtplib.SMTPNotSupportedError(
            "a non-ASCII username or password needs AUTH PLAIN, which the server lacks")
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    code, reply = smtp.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {clean(text, limit=200)}"
