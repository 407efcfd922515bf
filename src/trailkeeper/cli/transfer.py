"""``trailkeeper import`` and ``trailkeeper tail``: audit files into a store or a server."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from trailkeeper.applog import setup_logging
from trailkeeper.cli.options import resolve_store, store_options
from trailkeeper.transfer.importer import Importer, Problem, Summary
from trailkeeper.transfer.position import StateFile
from trailkeeper.transfer.sinks import ServerTarget, StoreTarget, Target
from trailkeeper.transfer.tail import DEFAULT_PATTERN, Follower

F = TypeVar("F", bound=Callable[..., Any])


def _target_options(func: F) -> F:
    func = click.option("-p", "--password", envvar="TRAILKEEPER_PASSWORD",
                        help="Password for --user [env TRAILKEEPER_PASSWORD; asked if "
                             "missing]")(func)
    func = click.option("-u", "--user", help="User on the server (HTTP Basic)")(func)
    func = click.option("-H", "--host", "server", metavar="URL",
                        help="Send to a running Trailkeeper server (e.g. "
                             "https://audit.example.com) instead of a store")(func)
    return store_options(func)


def _target(home: Path | None, db_url: str | None, server: str | None, user: str | None,
            password: str | None, patience_s: float | None = None) -> tuple[Path, Target]:
    home, store = resolve_store(home, db_url)
    if server is None:
        if user is not None:
            raise click.UsageError("--user is for a server: give -H/--host URL too")
        return home, StoreTarget(store)
    if db_url is not None and click.get_current_context().get_parameter_source(
            "db_url") is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("give either --db or -H/--host, not both")
    if not server.startswith(("http://", "https://")):
        raise click.UsageError(f"-H/--host must be a URL like https://audit.example.com, "
                               f"not {server!r}")
    if user is not None and password is None:
        password = click.prompt(f"Password for {user}", hide_input=True, err=True)
    return home, ServerTarget(server, user, password, patience_s)


# -- import ---------------------------------------------------------------------------------


@click.command("import")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path), metavar="FILE|DIR...")
@_target_options
@click.option("--workers", type=click.IntRange(0, 64), metavar="N",
              help="Processes that parse (0: this one) [default: one per core, up to 4, "
                   "for large imports into a store]")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar [default: when stderr is a terminal]")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as JSON on stdout")
@click.option("--server-timeout", type=click.FloatRange(0, None), default=300.0,
              show_default=True, metavar="SECONDS",
              help="With -H: how long to retry a server that does not acknowledge before "
                   "giving up (exit status 4)")
def import_(paths: tuple[Path, ...], home: Path | None, db_url: str | None,
            server: str | None, user: str | None, password: str | None, workers: int | None,
            progress: bool | None, as_json: bool, server_timeout: float) -> None:
    """Import audit events from files into the store (or a server), each event once.

    Reads Atlassian audit log files (YYYYMMDD.NNNNN.audit.log) and other JSON lines (file or
    REST shape), JSON documents (a REST response or export {"entities": [...]}, or an
    array), and Atlassian's 12-column CSV export; any of them gzip-compressed. A directory
    imports its files in name order; a file that is none of these is reported and skipped.

    Importing the same events again stores nothing: each event gets a uid derived from its
    content (events with their own uid keep it). Every bad record is reported on stderr as
    FILE:LINE: message and the good ones are stored; the exit status is then 2, as when a
    file was skipped.
    """
    _, target = _target(home, db_url, server, user, password, server_timeout)
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    show = console.is_terminal if progress is None else progress
    interrupted = False
    with _progress_bar(console, show) as (report, advance):
        importer = Importer(target, workers=workers, on_problem=report, on_progress=advance)
        try:
            importer.run(list(paths))
        except KeyboardInterrupt:
            interrupted = True
    summary = importer.summary
    if interrupted:
        console.print(f"Interrupted; so far {summary.text()}. Importing again stores "
                      "nothing twice.", markup=False)
        sys.exit(130)
    console.print(f"Imported into {summary.target}: {summary.text()}", markup=False)
    if as_json:
        click.echo(json.dumps(summary.to_json()))
    if not summary.complete:
        sys.exit(2)


@contextlib.contextmanager
def _progress_bar(console: Console, show: bool) -> Iterator[
        tuple[Callable[[Problem], None], Callable[[Summary], None]]]:
    """Handlers for problems and progress: printed above a live bar, or plainly."""
    def report(problem: Problem) -> None:
        console.print(str(problem), markup=False)

    if not show:
        yield report, lambda summary: None
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TimeRemainingColumn(), console=console, transient=True)
    task = bar.add_task("reading", total=None)

    def advance(summary: Summary) -> None:
        bar.update(task, total=summary.bytes_total or None, completed=summary.bytes_done,
                   description=f"{summary.records:,} records, {summary.bad:,} bad")

    with bar:
        yield report, advance


# -- tail -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _application_log(home: Path) -> Iterator[None]:
    """The application log (stderr and $TRAILKEEPER_HOME/log) while the command runs; its
    handlers are closed afterwards, so running the command again in one process leaks none."""
    setup_logging(home / "log")
    try:
        yield
    finally:
        for name in ("trailkeeper", "uvicorn"):
            logger = logging.getLogger(name)
            for handler in logger.handlers[:]:
                logger.removeHandler(handler)
                handler.close()


def _default_state(home: Path, directory: Path, target: Target) -> Path:
    """One state file per (directory, target): following one directory into two targets
    keeps two positions."""
    where = f"{directory.resolve()}\n{target}"
    key = hashlib.sha256(where.encode()).hexdigest()[:16]
    return home / "tail" / f"{directory.resolve().name or 'root'}-{key}.json"


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_target_options
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where the position is kept [default: $TRAILKEEPER_HOME/tail/"
                   "<directory>-<hash of directory and target>.json]")
@click.option("--from-start/--from-end", default=True, show_default=True,
              help="Without a saved position: forward the files already there, oldest "
                   "first, or only lines written from now on")
@click.option("--once", is_flag=True,
              help="Forward what is there now, save the position and exit")
@click.option("--interval", type=click.FloatRange(0.01, 60), default=0.5, show_default=True,
              help="Seconds between looks at the directory")
@click.option("--pattern", default=DEFAULT_PATTERN, show_default=True,
              help="Which files of the directory to follow")
def tail(directory: Path, home: Path | None, db_url: str | None, server: str | None,
         user: str | None, password: str | None, state_path: Path | None, from_start: bool,
         once: bool, interval: float, pattern: str) -> None:
    """Follow an Atlassian audit log directory and forward its events as they are written.

    Follows the *.audit.log files in name order (Atlassian names sort in writing order):
    reads lines as they are appended, never a partial line, and moves to the next file once
    a later file exists and the current one has nothing more (rotation at midnight or at the
    size limit).

    The position (file, offset, line) is saved after the events before it are stored, so a
    restart, even after a crash, resumes without losing or repeating an event. The first
    run forwards the files already in the directory, oldest first (--from-start, what an
    audit needs: nothing written before the first run is lost); --from-end starts at the
    current end of the newest file instead. Stops cleanly on SIGINT or SIGTERM. Bad lines
    are reported as FILE:LINE: message; with --once they make the exit status 2.
    """
    home, target = _target(home, db_url, server, user, password)
    state = StateFile(state_path or _default_state(home, directory, target))
    stop = threading.Event()

    def request_stop(number: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {number: signal.signal(number, request_stop)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _application_log(home), state:
            follower = Follower(directory, target, state, from_start=from_start,
                                interval=interval, pattern=pattern,
                                on_problem=lambda problem: click.echo(str(problem), err=True))
            summary = follower.run(stop, once=once)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    present = "unknown" if summary.present is None else f"{summary.present:,}"
    where = f"{summary.position.file} line {summary.position.line}" \
        if summary.position else "no file yet"
    click.echo(f"tail: {summary.stored:,} events stored, {present} already present, "
               f"{summary.bad:,} bad; position {where} (saved in {state.path})", err=True)
    if once and summary.bad:
        sys.exit(2)
