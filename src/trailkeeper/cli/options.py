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
