"""``trailkeeper.toml``: what a node detects, whom it tells, and where it forwards.

The governance settings (coverage, denylist, retention) live in the store and change at
run time; this file holds what belongs to the machine: rule directories, alert actions
with their servers and secrets, SIEM forwarders. It is read from ``serve --config FILE``,
``TRAILKEEPER_CONFIG``, or ``$TRAILKEEPER_HOME/trailkeeper.toml`` (optional; without it
the built-in rules run and alerts are stored and listed, but nobody is told).

    public_url = "https://audit.example.com"    # links in alert messages

    [detection]
    enabled = true                # run the rules on every committed event
    builtin = true                # the rules shipped with Trailkeeper
    rules = ["/etc/trailkeeper/rules"]
    disabled = ["trailkeeper_audit_config_changed"]
    throttle = "10m"              # merge alerts of one rule and group within this time

    [integrity]                   # the verifiable log: docs/integrity.md
    enabled = true                # hash every event into the Merkle tree, sign checkpoints
    origin = "audit.example.com/bitbucket"   # the log's name in checkpoints
    checkpoint_events = 10000     # sign after this many new events ...
    checkpoint_interval = "60s"   # ... or this long after the last checkpoint
    key = "/etc/trailkeeper/checkpoint.key"  # Ed25519 PKCS#8 PEM, 0600; made when missing

    [[action]]                    # email | webhook | syslog: docs/detection.md
    [[forward]]                   # syslog | splunk: docs/operations.md

Errors name the file and the key (``action[1].to``), and stop the server from starting.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trailkeeper.alerts.actions.email import EmailConfig
from trailkeeper.alerts.actions.syslog import SyslogActionConfig
from trailkeeper.alerts.actions.webhook import WebhookConfig
from trailkeeper.errors import ConfigurationError
from trailkeeper.forwarding.config import SplunkForwardConfig, SyslogForwardConfig

FILE_NAME = "trailkeeper.toml"
CONFIG_ENV = "TRAILKEEPER_CONFIG"
RULES_ENV = "TRAILKEEPER_RULES"  # serve --rules for the workers, os.pathsep-separated

_DURATION = re.compile(r"(\d+)\s*(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_ms(text: str) -> int:
    """``"10m"`` -> 600000; ``"0"`` -> 0. Units: ms, s, m, h, d."""
    text = text.strip()
    if text == "0":
        return 0
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30s, 10m, 2h or 1d")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


class DetectionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    builtin: bool = True
    rules: tuple[Path, ...] = ()
    disabled: tuple[str, ...] = ()
    throttle: str = "10m"

    @field_validator("throttle")
    @classmethod
    def _duration(cls, value: str) -> str:
        duration_ms(value)
        return value

    @property
    def throttle_ms(self) -> int:
        return duration_ms(self.throttle)


class IntegritySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # A C2SP origin is a key name too: no spaces, no "+", one line.
    origin: str | None = Field(default=None, pattern=r"^[^\s+]{1,200}$")
    checkpoint_events: int = Field(default=10_000, ge=1, le=10_000_000)
    checkpoint_interval: str = "60s"
    key: Path | None = None  # default: $TRAILKEEPER_HOME/integrity/checkpoint.key

    @field_validator("checkpoint_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        if duration_ms(value) < 1000:
            raise ValueError("checkpoint_interval must be at least 1s")
        return value

    @property
    def checkpoint_interval_s(self) -> float:
        return duration_ms(self.checkpoint_interval) / 1000


ActionConfig = Annotated[EmailConfig | WebhookConfig | SyslogActionConfig,
                         Field(discriminator="type")]
ForwardConfig = Annotated[SyslogForwardConfig | SplunkForwardConfig,
                          Field(discriminator="type")]


class FileSettings(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    detection: DetectionSettings = DetectionSettings()
    integrity: IntegritySettings = IntegritySettings()
    action: tuple[ActionConfig, ...] = ()
    forward: tuple[ForwardConfig, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> FileSettings:
        for kind, items in (("action", self.action), ("forward", self.forward)):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise ValueError(f"two [[{kind}]] tables are named {item.name!r}")
                seen.add(item.name)
        return self


def config_path(home: Path, explicit: Path | None = None) -> tuple[Path, bool]:
    """The file to read and whether it must exist (named explicitly or by environment)."""
    if explicit is not None:
        return explicit, True
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]), True
    return home / FILE_NAME, False


def _where(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("email", "webhook", "syslog", "splunk") and text:
            continue  # the discriminator's branch name adds nothing for the reader
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def load_file_settings(home: Path, explicit: Path | None = None) -> FileSettings:
    """Read and validate the file; `ConfigurationError` naming file and key when wrong."""
    path, required = config_path(home, explicit)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            raise ConfigurationError(f"configuration file {path} does not exist") from None
        return FileSettings()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None
    try:
        return FileSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"{path}: {problems}") from None
