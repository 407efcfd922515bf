"""The syslog alert action: one RFC 5424 message per alert, to a SIEM over UDP, TCP or TLS.

MSGID ``alert``; the severity follows the alert's level (critical: crit, high: err, medium:
warning, low: notice, informational: info); MSG is the alert as JSON (`AlertMessage.as_json`,
as webhooks send it) or a CEF line.
"""

from __future__ import annotations

import threading
from typing import Literal

import orjson

from trailkeeper.alerts.actions.base import AlertMessage, DeliveryError
from trailkeeper.alerts.routing import RouteConfig
from trailkeeper.forwarding.cef import alert_cef
from trailkeeper.forwarding.errors import SendError
from trailkeeper.forwarding.syslog import (
    SEVERITIES,
    SyslogSender,
    default_hostname,
    format_rfc5424,
)
from trailkeeper.forwarding.syslog_target import SyslogTarget

LEVEL_SEVERITY: dict[str | None, int] = {
    "critical": SEVERITIES["crit"], "high": SEVERITIES["err"],
    "medium": SEVERITIES["warning"], "low": SEVERITIES["notice"],
    "informational": SEVERITIES["info"],
}
DEFAULT_SEVERITY = SEVERITIES["warning"]  # an alert without a level


class SyslogActionConfig(RouteConfig, SyslogTarget):
    """``[[action]] type = "syslog"``: the routing keys and the receiver's."""

    type: Literal["syslog"]

    def build(self) -> SyslogAction:
        return SyslogAction(self.name, self.sender(), facility=self.facility_number,
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
