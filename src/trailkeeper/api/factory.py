"""The app as uvicorn's workers build it: settings from the environment, store opened at start.

`trailkeeper serve` writes its settings to ``TRAILKEEPER_*`` variables and hands uvicorn the
import string of `create_app`; with ``--workers N`` each worker process calls it and owns its
own `AuditService` (stores serialise the writers: SQLite's lock, PostgreSQL's advisory lock).
The lifespan starts the node's background jobs (audit log files, retention; see
`trailkeeper.node`) and, when the worker stops, drains the service's queue, stops the jobs
and closes the service.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from trailkeeper.api.app import build_app
from trailkeeper.applog import setup_logging
from trailkeeper.config import Settings, default_home
from trailkeeper.ingest.service import AuditService
from trailkeeper.metrics import Metrics, release_process
from trailkeeper.node import NodeJobs
from trailkeeper.settingsfile import RULES_ENV, load_file_settings

log = logging.getLogger("trailkeeper.serve")


def settings_from_env() -> Settings:
    home = Path(os.environ["TRAILKEEPER_HOME"]) if os.environ.get("TRAILKEEPER_HOME") \
        else default_home()
    return Settings(home=home, db_url=os.environ.get("TRAILKEEPER_DB", ""),
                    context_path=os.environ.get("TRAILKEEPER_CONTEXT_PATH", ""))


def create_app() -> Any:
    settings = settings_from_env()
    setup_logging(settings.log_dir)
    # Threads that leave the GIL for the database (the committer, readers) wait up to this
    # long to get it back from threads busy in Python; the default 5 ms starves them.
    sys.setswitchinterval(0.0005)
    # Ingest allocates millions of short-lived objects that are never cyclic garbage; the
    # default collector thresholds made the cycle collector run thousands of times a second.
    gc.set_threshold(100_000, 50, 100)
    service = AuditService.open(settings.db_url, metrics=Metrics())
    rules = [Path(p) for p in os.environ.get(RULES_ENV, "").split(os.pathsep) if p]
    jobs = NodeJobs(service, settings.home, settings=load_file_settings(settings.home),
                    rules=rules)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        jobs.start()
        try:
            yield
        finally:
            log.info("worker stopping: writing queued events")
            service.flush(30)  # the in-process queue first, so the files get its events
            jobs.stop()
            service.close()
            release_process()

    app = build_app(service, settings, lifespan=lifespan)
    gc.freeze()  # what start-up built lives as long as the worker: never scan it again
    return app
