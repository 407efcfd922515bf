"""Durable event stores: one protocol, SQLite and PostgreSQL implementations."""

from __future__ import annotations

from trailkeeper.config import redact_url
from trailkeeper.errors import ConfigurationError
from trailkeeper.storage.base import Storage


def open_storage(url: str) -> Storage:
    """The store named by a URL: ``sqlite:///path/audit.db`` or ``postgresql://...``."""
    if url.startswith(("postgresql://", "postgres://")):
        from trailkeeper.storage.postgres import PostgresStorage

        return PostgresStorage(url)
    if url.startswith("sqlite://") or "://" not in url:
        from trailkeeper.storage.sqlite import SqliteStorage

        return SqliteStorage(url)
    raise ConfigurationError(
        f"unsupported database URL {redact_url(url)!r}: use sqlite:///path/audit.db or"
        " postgresql://..."
    )


__all__ = ["Storage", "open_storage"]
