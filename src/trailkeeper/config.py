"""Settings from the command line and the environment, and helpers to show them safely."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def default_home() -> Path:
    return Path(os.environ.get("TRAILKEEPER_HOME") or Path.home() / ".trailkeeper")


def default_db_url(home: Path) -> str:
    return os.environ.get("TRAILKEEPER_DB") or f"sqlite:///{(home / 'audit.db').absolute()}"


def redact_url(url: str) -> str:
    """The URL with any password (``user:pw@`` or ``?password=``) masked, fit for logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    query = parse_qsl(parts.query, keep_blank_values=True)
    if password is None and not any(k.lower() == "password" for k, _ in query):
        return url  # unchanged (urlunsplit would also drop an empty "//" host)
    if password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    masked = [(k, "***" if k.lower() == "password" else v) for k, v in query]
    return urlunsplit(parts._replace(query=urlencode(masked, safe="*")))


def normalise_context_path(path: str | None) -> str:
    """``bitbucket`` or ``/bitbucket/`` -> ``/bitbucket``; empty for none."""
    if not path or path.strip("/") == "":
        return ""
    return "/" + path.strip("/")


@dataclass
class Settings:
    """What `trailkeeper serve` runs with."""

    home: Path = field(default_factory=default_home)
    db_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8990
    context_path: str = ""
    queue_size: int = 10_000
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_events: int = 10_000

    def __post_init__(self) -> None:
        if not self.db_url:
            self.db_url = default_db_url(self.home)
        self.context_path = normalise_context_path(self.context_path)

    @property
    def log_dir(self) -> Path:
        return self.home / "log"
