"""The syslog alert action: one RFC 5424 message per alert, to a SIEM over UDP, TCP or TLS.

MSGID ``alert``; the severity follows the alert's level (critical: crit, high: err, medium:
warning, low: notice, informational: info); MSG is the alert as JSON (`AlertMessage.as_json`,
as webhooks send it) or a CEF line.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from trailkeeper.alerts.actions.base import AlertMessage, DeliveryError
from trailkeeper.alerts.actions.secrets import check_one_secret, resolve_secret
from trailkeeper.alerts.routing import RouteConfig
from trailkeeper.forwarding.cef import alert_cef
from trailkeeper.forwarding.errors import SendError
from trailkeeper.forwarding.syslog import (
    DEFAULT_MAX_DATAGRAM,
    SEVERITIES,
    Framing,
    SyslogSender,
    default_hostname,
    facility_number,
    format_rfc5424,
    parse_url,
)

LEVEL_SEVERITY: dict[str | None, int] = {
    "critical": SEVERITIES["crit"], "high": SEVERITIES["err"],
    "medium": SEVERITIES["warning"], "low": SEVERITIES["notice"],
    "informational": SEVERITIES["info"],
}
DEFAULT_SEVERITY = SEVERITIES["warning"]  # an alert without a level


class SyslogActionConfig(RouteConfig):
    """``[[action]] type = "syslog"``."""

    type: Literal["syslog"]
    url: str  # udp://host[:514], tcp://host[:514], tls://host[:6514]
    format: Literal["json", "cef"] = "json"
    framing: Framing = "octet"
    facility: str | int = "auth"
    app_name: str = Field(default="trailkeeper", min_length=1, max_length=48)
    hostname: str | None = None  # default: the node's name
    ca_file: Path | None = None
    verify: bool = True
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None
    key_password_env: str | None = None
    key_password_file: Path | None = None
    server_name: str | None = None
    max_datagram: int = Field(default=DEFAULT_MAX_DATAGRAM, ge=480, le=65_507)
    timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parse_url(url)
        return url

    @field_validator("facility")
    @classmethod
    def _facility(cls, facility: str | int) -> str | int:
        facility_number(facility)
        return facility

    @model_validator(mode="after")
    def _secret(self) -> SyslogActionConfig:
        check_one_secret(self.key_password, self.key_password_env, self.key_password_file,
                         what="key_password")
        return self

    def build(self) -> SyslogAction:
        password = resolve_secret(self.key_password, self.key_password_env,
                                  self.key_password_file, what="key_password")
        sender = SyslogSender(
            self.url, framing=self.framing, timeout_s=self.timeout_s, ca_file=self.ca_file,
            verify=self.verify, cert_file=self.cert_file, key_file=self.key_file,
            key_password=password, server_name=self.server_name,
            max_datagram=self.max_datagram)
        return SyslogAction(self.name, sender, facility=facility_number(self.facility),
                            app_name=self.app_name,
                            hostname=self.hostname or default_hostname(), format=self.format)


class SyslogAction:
    """Sends each alert as one syslog message (see the module's docstring)."""

    def __init__(self, name: str, sender: SyslogSender, *, facility: int, app_name: str,
                 hostname: str, format: Literal["json", "cef"] = "json") -> None:
        self._name = name
        self.sender = sender
        self._facility = facility
        self._app_name = app_name
        self._hostname = hostname
        self._format = format
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def frame(self, message: AlertMessage) -> bytes:
        alert = message.alert
        if self._format == "cef":
            text, bom = alert_cef(alert, link=message.link), False
        else:
            text, bom = orjson.dumps(message.as_json()).decode(), True
        return format_rfc5424(
            pri_facility=self._facility,
            severity=LEVEL_SEVERITY.get(alert.level, DEFAULT_SEVERITY),
            timestamp_ms=alert.last_ms, hostname=self._hostname, app_name=self._app_name,
            procid=None, msgid="alert", message=text, bom=bom,
            max_length=self.sender.max_datagram if self.sender.datagrams else None)

    def deliver(self, message: AlertMessage) -> None:
        frame = self.frame(message)
        with self._lock:
            try:
                self.sender.send([frame])
            except SendError as exc:
                raise DeliveryError(str(exc), retryable=True) from exc

    def close(self) -> None:
        with self._lock:
            self.sender.close()
