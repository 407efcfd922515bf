"""``trailkeeper serve``: run the HTTP service."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import click
import uvicorn

from trailkeeper.api.app import build_app
from trailkeeper.applog import setup_logging
from trailkeeper.auth.principals import PASSWORD_FILE, ensure_bootstrap_admin
from trailkeeper.cli.options import resolve_store, store_options
from trailkeeper.config import Settings, redact_url
from trailkeeper.demo import load_demo
from trailkeeper.ingest.service import AuditService

log = logging.getLogger("trailkeeper.serve")


def _remember(number: int, frame: object) -> None:
    log.info("received %s", signal.Signals(number).name)


@click.command()
@store_options
@click.option("--host", default="127.0.0.1", show_default=True, envvar="TRAILKEEPER_HOST")
@click.option("--port", default=8990, show_default=True, type=click.IntRange(0, 65535),
              envvar="TRAILKEEPER_PORT")
@click.option("--context-path", default="", envvar="TRAILKEEPER_CONTEXT_PATH",
              help="Serve everything under this path, e.g. /bitbucket")
@click.option("--demo", is_flag=True, help="Load the demo data set (once) before serving")
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def serve(home: Path | None, db_url: str | None, host: str, port: int, context_path: str,
          demo: bool, access_log: bool) -> None:
    """Run the audit-log service (SQLite at $TRAILKEEPER_HOME/audit.db by default)."""
    home, db_url = resolve_store(home, db_url)
    settings = Settings(home=home, db_url=db_url, host=host, port=port,
                        context_path=context_path)
    setup_logging(settings.log_dir)
    # Threads that leave the GIL for the database (the committer, readers) wait up to this
    # long to get it back from threads busy in Python; the default 5 ms starves them.
    sys.setswitchinterval(0.0005)
    log.info("opening store %s", redact_url(db_url))
    service = AuditService.open(db_url)
    try:
        password = ensure_bootstrap_admin(service.storage, home)
        if password:
            # Shown once on the terminal, never logged.
            click.echo(f"\nCreated user 'admin' with password: {password}\n"
                       f"(also saved to {home / PASSWORD_FILE}, readable only by you)\n",
                       err=True)
        if demo:
            added = load_demo(service)
            log.info("demo data: %d events added", added)
        app = build_app(service, settings)
        config = uvicorn.Config(app, host=host, port=port, log_config=None,
                                access_log=access_log, lifespan="off",
                                timeout_graceful_shutdown=30)
        server = uvicorn.Server(config)
        log.info("listening on http://%s:%d%s/", host, port, settings.context_path)
        # uvicorn stops gracefully on SIGTERM/SIGINT, then re-raises the signal under the
        # handler that was there before; make that handler a no-op so the queue still drains.
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, _remember)
        server.run()
    finally:
        log.info("shutting down: writing queued events")
        service.close()
        log.info("stopped")
    if not server.started:
        sys.exit(1)
