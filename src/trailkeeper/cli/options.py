"""Options shared by commands that open a store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from trailkeeper.config import default_db_url, default_home

F = TypeVar("F", bound=Callable[..., Any])


def store_options(func: F) -> F:
    func = click.option("--db", "db_url", envvar="TRAILKEEPER_DB", metavar="URL",
                        help="sqlite:///path/audit.db or postgresql://... "
                             "[default: $TRAILKEEPER_HOME/audit.db]")(func)
    func = click.option("--home", type=click.Path(file_okay=False, path_type=Path),
                        envvar="TRAILKEEPER_HOME",
                        help="Data directory [default: ~/.trailkeeper]")(func)
    return func


def resolve_store(home: Path | None, db_url: str | None) -> tuple[Path, str]:
    home = home or default_home()
    return home, db_url or default_db_url(home)


def existing_store(db_url: str) -> str:
    """``db_url``, after checking that a SQLite store is there (reading must not create one)."""
    if "://" not in db_url or db_url.startswith("sqlite://"):
        from trailkeeper.storage.sqlite import sqlite_path

        path = sqlite_path(db_url)
        if not path.exists():
            raise click.UsageError(f"no store at {path} (give --db or --home)")
    return db_url
