"""``trailkeeper serve``: run the HTTP service."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

import click
import uvicorn

from trailkeeper.applog import setup_logging
from trailkeeper.auth.principals import PASSWORD_FILE, ensure_bootstrap_admin
from trailkeeper.cli.options import resolve_store, store_options
from trailkeeper.config import Settings, redact_url
from trailkeeper.demo import load_demo
from trailkeeper.ingest.service import AuditService
from trailkeeper.metrics import MULTIPROCESS_ENV
from trailkeeper.node import load_node_rules
from trailkeeper.settingsfile import CONFIG_ENV, RULES_ENV, load_file_settings

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
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              envvar="TRAILKEEPER_WORKERS",
              help="Worker processes (one per core uses every core; each has its own writer)")
@click.option("--demo", is_flag=True, help="Load the demo data set (once) before serving")
@click.option("--access-log/--no-access-log", default=False, show_default=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              envvar=CONFIG_ENV,
              help="Detection, alert actions and forwarders (default: "
                   "$TRAILKEEPER_HOME/trailkeeper.toml when it exists)")
@click.option("--rules", "rules", multiple=True,
              type=click.Path(exists=True, path_type=Path),
              help="A directory (or file) of Sigma rules to run besides "
                   "$TRAILKEEPER_HOME/rules and the built-in ones; repeatable")
def serve(home: Path | None, db_url: str | None, host: str, port: int, context_path: str,
          workers: int, demo: bool, access_log: bool, config_file: Path | None,
          rules: tuple[Path, ...]) -> None:
    """Run the audit-log service (SQLite at $TRAILKEEPER_HOME/audit.db by default)."""
    home, db_url = resolve_store(home, db_url)
    settings = Settings(home=home, db_url=db_url, host=host, port=port,
                        context_path=context_path)
    setup_logging(settings.log_dir)
    # Checked here, once, so that a mistake stops the start with a message naming it.
    file_settings = load_file_settings(home, config_file)
    if file_settings.detection.enabled:
        ruleset = load_node_rules(home, file_settings, rules)
        log.info("detection: %d rules and %d correlations loaded (%d problems)",
                 len(ruleset.rules), len(ruleset.correlations), len(ruleset.problems))
    log.info("opening store %s", redact_url(db_url))
    # Once, before any worker starts: the schema, the first administrator, the demo data.
    with AuditService.open(db_url) as service:
        password = ensure_bootstrap_admin(service.storage, home)
        if password:
            # Shown once on the terminal, never logged.
            click.echo(f"\nCreated user 'admin' with password: {password}\n"
                       f"(also saved to {home / PASSWORD_FILE}, readable only by you)\n",
                       err=True)
        if demo:
            log.info("demo data: %d events added", load_demo(service))
    # The workers read their settings from the environment (see api/factory.py); the admin
    # password is not theirs to know.
    os.environ.pop("TRAILKEEPER_ADMIN_PASSWORD", None)
    os.environ.update(TRAILKEEPER_HOME=str(home), TRAILKEEPER_DB=db_url,
                      TRAILKEEPER_CONTEXT_PATH=settings.context_path,
                      **{RULES_ENV: os.pathsep.join(str(p.absolute()) for p in rules)})
    if config_file is not None:
        os.environ[CONFIG_ENV] = str(config_file.absolute())
    metrics_dir = None
    if workers > 1:
        metrics_dir = tempfile.mkdtemp(prefix="trailkeeper-metrics-")
        os.environ[MULTIPROCESS_ENV] = metrics_dir
    # uvicorn stops gracefully on SIGTERM/SIGINT, then re-raises the signal under the
    # handler that was there before; a no-op one lets this process finish and exit 0.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, _remember)
    log.info("listening on http://%s:%d%s/ with %d worker%s", host, port,
             settings.context_path, workers, "s" if workers > 1 else "")
    try:
        uvicorn.run("trailkeeper.api.factory:create_app", factory=True, host=host, port=port,
                    workers=workers, log_config=None, access_log=access_log, lifespan="on",
                    timeout_graceful_shutdown=30)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        log.info("stopped")
