"""The app as `trailkeeper serve` builds it in each worker, plus a running `FileSink`.

For `file_sink.py` until the sink is wired into ``serve``: uvicorn runs this factory with
``--workers N``, so every worker owns an `AuditService` and a sink on the same home, and one
of the sinks (the holder of ``log/audit/.sink.lock``) writes while the others stand by. The
sink polls; nothing notifies it after commits yet.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from trailkeeper.api.app import build_app
from trailkeeper.api.factory import settings_from_env
from trailkeeper.consumers import FileSink, audit_log_dir
from trailkeeper.ingest.service import AuditService
from trailkeeper.metrics import Metrics, release_process

NODE = "bench"


def create_app() -> Any:
    settings = settings_from_env()
    sys.setswitchinterval(0.0005)  # as api/factory.py does
    gc.set_threshold(100_000, 50, 100)
    service = AuditService.open(settings.db_url, metrics=Metrics())
    sink = FileSink(service.storage, audit_log_dir(settings.home), NODE,
                    metrics=service.metrics,
                    batch_size=int(os.environ.get("BENCH_SINK_BATCH", "5000")))
    sink.start()

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            service.flush()  # the queue committed,
            sink.stop()  # then written to the files,
            service.close()  # then the store closed
            release_process()

    app = build_app(service, settings, lifespan=lifespan)
    gc.freeze()
    return app
