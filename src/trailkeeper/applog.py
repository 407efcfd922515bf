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
# Lines about one request (authentication, see auth/authlog.py) name it before the logger,
# as Atlassian's do: ``@id client "GET /path HTTP/1.1" logger message``.
_REQUEST_TEXT = "%(asctime)s %(levelname)s [%(threadName)s] %(request)s %(name)s %(message)s"


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(_TEXT)
        self._request = logging.Formatter(_REQUEST_TEXT)

    def format(self, record: logging.LogRecord) -> str:
        if hasattr(record, "request"):
            return self._request.format(record)
        return super().format(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "thread": record.threadName,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if hasattr(record, "request"):
            body["request"] = record.request
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body)


def setup_logging(log_dir: Path | None, *, level: str | None = None) -> None:
    """Send Trailkeeper's and uvicorn's loggers to stderr and, when given, a rotating file."""
    formatter: logging.Formatter = (
        JsonFormatter() if os.environ.get("TRAILKEEPER_LOG_FORMAT") == "json"
        else TextFormatter()
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
