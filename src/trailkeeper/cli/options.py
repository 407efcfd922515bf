"""Options shared by commands that open a store, and who the commands act as."""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from trailkeeper.auth.audit_events import CLI, Actor, Trail
from trailkeeper.config import default_db_url, default_home
from trailkeeper.model.event import AuditAuthor

if TYPE_CHECKING:  # imported when used: commands that only read need not load ingest
    from trailkeeper.ingest.service import AuditService

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


def operator() -> AuditAuthor:
    """Who ran the command (the operating-system user): the author of what it records."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return AuditAuthor(id=f"os:{name}", name=name, type="os-user")


def operator_actor() -> Actor:
    return Actor(operator(), None, CLI)


@contextlib.contextmanager
def open_service(home: Path | None, db_url: str | None, *,
                 create: bool = False) -> Iterator[AuditService]:
    """The store of ``--home``/``--db`` as an `AuditService`, so the command can record what
    it does; closing it writes whatever was queued."""
    from trailkeeper.ingest.service import AuditService

    _, url = resolve_store(home, db_url)
    with AuditService.open(url if create else existing_store(url)) as service:
        yield service


def trail(service: AuditService) -> Trail:
    """Where a command's management changes are recorded: durably, as the operator."""
    actor = operator_actor()
    return Trail(actor, lambda event: service.submit([event], author=actor.author))
