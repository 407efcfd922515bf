"""The background work of one serving node, beside the HTTP API.

- the Atlassian-format audit log files (`FileSink`, one writer per node: with several
  worker processes the others stand by), woken after every commit;
- the retention scheduler (every node checks; the store's lease lets one run per cluster).

The governance configuration feeds both live: a changed ``maxFileCount`` or retention period
applies at the next file or run.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from trailkeeper.consumers.filesink import FileSink
from trailkeeper.consumers.logfiles import audit_log_dir
from trailkeeper.governance.retention import RetentionJob, RetentionScheduler
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.event import AuditEvent

log = logging.getLogger("trailkeeper.node")


def node_name() -> str:
    """This node's name: ``TRAILKEEPER_NODE``, or the host name."""
    return os.environ.get("TRAILKEEPER_NODE") or socket.gethostname()


class NodeJobs:
    """Starts and stops a node's file sink and retention scheduler."""

    def __init__(self, service: AuditService, home: Path, *, node: str | None = None,
                 file_sink: bool = True, retention: bool = True) -> None:
        self.service = service
        self.node = node or node_name()
        governance = service.governance
        self.file_sink = FileSink(
            service.storage, audit_log_dir(home), self.node,
            max_file_count=lambda: governance.config.max_file_count,
            metrics=service.metrics) if file_sink else None
        self.retention = RetentionScheduler(RetentionJob(
            service.storage, period=lambda: governance.config.retention,
            max_rows=lambda: governance.config.max_rows, record=self._record,
            metrics=service.metrics, node=self.node)) if retention else None

    def _record(self, event: AuditEvent) -> None:
        # The record of a retention run is written whatever the coverage (it is evidence
        # that events were removed on purpose), and durably before the job moves on.
        self.service.submit([event], screen=False)

    def start(self) -> None:
        if self.file_sink is not None:
            self.file_sink.start()
            self.service.after_commit(self.file_sink.notify)
        if self.retention is not None:
            self.retention.start()
        log.info("node %s: audit log files %s, retention %s", self.node,
                 "on" if self.file_sink else "off", "on" if self.retention else "off")

    def stop(self) -> None:
        """Call after the service's queue has drained, so the files get its last events."""
        if self.retention is not None:
            self.retention.stop()
        if self.file_sink is not None:
            self.file_sink.stop()
