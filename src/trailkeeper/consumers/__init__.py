"""Consumers of the committed log: each reads events in id order from its own durable
position. Built in: the Atlassian-format audit log files (`FileSink`)."""

from trailkeeper.consumers.base import Consumer, Poller
from trailkeeper.consumers.cursor import LogCursor
from trailkeeper.consumers.fileline import file_line
from trailkeeper.consumers.filesink import FileSink, FileSinkBusyError
from trailkeeper.consumers.logfiles import audit_log_dir

__all__ = [
    "Consumer",
    "FileSink",
    "FileSinkBusyError",
    "LogCursor",
    "Poller",
    "audit_log_dir",
    "file_line",
]
