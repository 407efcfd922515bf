"""Where and how syslog messages go: the keys shared by ``[[forward]] type = "syslog"`` and
``[[action]] type = "syslog"`` in trailkeeper.toml, and the `SyslogSender` they make."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from trailkeeper.alerts.actions.secrets import check_one_secret, resolve_secret
from trailkeeper.forwarding.syslog import (
    DEFAULT_MAX_DATAGRAM,
    Framing,
    SyslogSender,
    facility_number,
    parse_url,
)

DEFAULT_FACILITY = "auth"  # 4: security/authorization messages; rsyslog keeps them apart


class SyslogTarget(BaseModel):
    """A syslog receiver over UDP, TCP or TLS, and the message's fixed header fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str  # udp://host[:514], tcp://host[:514], tls://host[:6514]
    format: Literal["json", "cef"] = "json"
    framing: Framing = "octet"  # TCP and TLS: octet counting, or "lf" (newline)
    facility: str | int = DEFAULT_FACILITY
    app_name: str = Field(default="trailkeeper", min_length=1, max_length=48)
    hostname: str | None = None  # default: the node's name
    ca_file: Path | None = None
    verify: bool = True
    cert_file: Path | None = None  # client certificate (mutual TLS)
    key_file: Path | None = None
    key_password: SecretStr | None = None
    key_password_env: str | None = None
    key_password_file: Path | None = None
    server_name: str | None = None  # the name checked in the certificate (default: host)
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
    def _key(self) -> Self:
        check_one_secret(self.key_password, self.key_password_env, self.key_password_file,
                         what="key_password")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        return self

    @property
    def facility_number(self) -> int:
        return facility_number(self.facility)

    def sender(self) -> SyslogSender:
        password = resolve_secret(self.key_password, self.key_password_env,
                                  self.key_password_file, what="key_password")
        return SyslogSender(
            self.url, framing=self.framing, timeout_s=self.timeout_s, ca_file=self.ca_file,
            verify=self.verify, cert_file=self.cert_file, key_file=self.key_file,
            key_password=password, server_name=self.server_name,
            max_datagram=self.max_datagram)
