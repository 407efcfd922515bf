"""A file sink in a process of its own, for the crash tests.

    python tests/consumers/sink_process.py DB_URL DIRECTORY run     # until killed
    python tests/consumers/sink_process.py DB_URL DIRECTORY drain   # write what is stored, exit
    python tests/consumers/sink_process.py DB_URL DIRECTORY run --crash-at-save N
    ... run --save-interval S    # save the position after S seconds of batches (default 0)

Small batches and files, so that a kill at a random moment can land in the middle of a write,
between a write and the save of its position, or between creating a file and recording it.
``--crash-at-save N`` makes the process SIGKILL itself just before the Nth save of its
position, that is after the batch (or the new file) reached the disk but before it was
recorded: the one moment a random kill rarely hits.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from trailkeeper.consumers import FileSink
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import Storage

NODE = "crash-node"


class CrashBeforeSave:
    """The real store, except that the Nth position save kills the process instead."""

    def __init__(self, storage: Storage, saves: int) -> None:
        self._storage = storage
        self._left = saves

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    def put_position(self, consumer: str, state: str) -> None:
        self._left -= 1
        if self._left == 0:
            logging.info("crashing before saving %s", state)
            os.kill(os.getpid(), signal.SIGKILL)
        self._storage.put_position(consumer, state)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("db_url")
    p.add_argument("directory", type=Path)
    p.add_argument("mode", choices=["run", "drain"])
    p.add_argument("--crash-at-save", type=int, default=0)
    p.add_argument("--save-interval", type=float, default=0.0)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s {args.mode} %(process)d %(message)s")
    storage: Any = open_storage(args.db_url)
    if args.crash_at_save:
        storage = CrashBeforeSave(storage, args.crash_at_save)
    sink = FileSink(storage, args.directory, NODE, batch_size=300, max_file_bytes=400_000,
                    max_file_count=lambda: 100_000, poll_interval_s=0.01,
                    standby_retry_s=0.05, save_interval_s=args.save_interval)
    if args.mode == "drain":
        sink.drain()
        sink.close()
        storage.close()
        return
    sink.start()
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
