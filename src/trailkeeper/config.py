"""Settings from the command line and the environment, and helpers to show them safely."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def default_home() -> Path:
    return Path(os.environ.get("TRAILKEEPER_HOME") or Path.home() / ".trailkeeper")


def default_db_url(home: Path) -> str:
    return os.environ.get("TRAILKEEPER_DB") or f"sqlite:///{(home / 'audit.db').absolute()}"


def redact_url(url: str) -> str:
    """The URL with any password replaced, fit for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


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
