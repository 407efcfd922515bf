"""The ``[[forward]]`` tables of trailkeeper.toml: one forwarder each, syslog or Splunk HEC.

```toml
[[forward]]
name = "siem"
type = "syslog"
url = "tls://siem.example.com:6514"
format = "cef"
ca_file = "/etc/trailkeeper/siem-ca.pem"

[[forward]]
name = "splunk"
type = "splunk"
url = "https://splunk.example.com:8088"
token_env = "SPLUNK_HEC_TOKEN"
index = "audit"
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from trailkeeper.alerts.actions.secrets import check_one_secret, resolve_secret
from trailkeeper.forwarding.forwarder import Forwarder, SplunkSink, StartAt, SyslogSink
from trailkeeper.forwarding.splunk import DEFAULT_SOURCE, DEFAULT_SOURCETYPE, HecClient
from trailkeeper.forwarding.syslog_target import SyslogTarget
from trailkeeper.metrics import Metrics
from trailkeeper.storage.base import Storage

_NAME = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")


class _ForwardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = _NAME
    batch_size: int = Field(default=500, ge=1, le=50_000)
    start_at: StartAt = "beginning"
    max_backoff_s: float = Field(default=60.0, gt=0, le=3600)


class SyslogForwardConfig(_ForwardConfig, SyslogTarget):
    """``type = "syslog"``: RFC 5424 over UDP, TCP or TLS."""

    type: Literal["syslog"]

    def build(self, storage: Storage, metrics: Metrics, *, node: str) -> Forwarder:
        sink = SyslogSink(self.sender(), facility=self.facility_number,
                          hostname=self.hostname or node, app_name=self.app_name,
                          format=self.format, metrics=metrics, forwarder=self.name)
        return Forwarder(storage, self.name, sink, metrics=metrics, batch_size=self.batch_size,
                         max_backoff_s=self.max_backoff_s, start_at=self.start_at)


class SplunkForwardConfig(_ForwardConfig):
    """``type = "splunk"``: Splunk HTTP Event Collector."""

    type: Literal["splunk"]
    url: str = Field(pattern=r"^https?://")  # https://splunk:8088 (no /services/...)
    token: SecretStr | None = None
    token_env: str | None = None
    token_file: Path | None = None
    index: str | None = None  # default: the token's default index
    source: str = DEFAULT_SOURCE
    sourcetype: str = DEFAULT_SOURCETYPE
    host: str | None = None  # default: the node's name
    ca_file: Path | None = None
    verify: bool = True
    timeout_s: float = Field(default=30.0, gt=0)
    max_batch_bytes: int = Field(default=1_000_000, ge=10_000)

    @model_validator(mode="after")
    def _secret(self) -> SplunkForwardConfig:
        check_one_secret(self.token, self.token_env, self.token_file, what="token")
        if self.token is None and self.token_env is None and self.token_file is None:
            raise ValueError("give the HEC token as token, token_env or token_file")
        return self

    def build(self, storage: Storage, metrics: Metrics, *, node: str) -> Forwarder:
        token = resolve_secret(self.token, self.token_env, self.token_file, what="token")
        assert token is not None  # the validator requires one spelling
        client = HecClient(self.url, token, ca_file=self.ca_file, verify=self.verify,
                           timeout_s=self.timeout_s, max_batch_bytes=self.max_batch_bytes)
        sink = SplunkSink(client, host=self.host or node, source=self.source,
                          sourcetype=self.sourcetype, index=self.index)
        return Forwarder(storage, self.name, sink, metrics=metrics, batch_size=self.batch_size,
                         max_backoff_s=self.max_backoff_s, start_at=self.start_at)


ForwardConfig = SyslogForwardConfig | SplunkForwardConfig
