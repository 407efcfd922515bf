"""The application log: stderr and ``$TRAILKEEPER_HOME/log/trailkeeper.log``.

Lines look like Atlassian products' (``2021-01-07 08:52:38,540 INFO [thread] logger message``)
so the same log tooling reads both; ``TRAILKEEPER_LOG_FORMAT=json`` writes one JSON object per
line instead. Secrets never reach it: callers log names and ids, never credentials.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
from pathlib import Path

_TEXT = "%(asctime)s %(levelname)s [%(threadName)s] %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "thread": record.threadName,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body)


def setup_logging(log_dir: Path | None, *, level: str | None = None) -> None:
    """Send Trailkeeper's and uvicorn's loggers to stderr and, when given, a rotating file."""
    formatter: logging.Formatter = (
        JsonFormatter() if os.environ.get("TRAILKEEPER_LOG_FORMAT") == "json"
        else logging.Formatter(_TEXT)
    )
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(
            log_dir / "trailkeeper.log", maxBytes=50 * 1024 * 1024, backupCount=5,
            encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
    chosen = (level or os.environ.get("TRAILKEEPER_LOG_LEVEL") or "INFO").upper()
    for name in ("trailkeeper", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(chosen)
        logger.propagate = False
