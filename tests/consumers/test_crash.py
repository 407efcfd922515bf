"""The file sink under SIGKILL, in real processes on a real SQLite store.

- Two sink processes on one directory (as ``serve --workers 2`` runs them) are killed at
  random moments while events keep being committed.
- A sink kills itself right before saving its position, after its batch reached the disk.

Afterwards the files hold every event exactly once, in id order, as the model renders it.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.consumers.helpers import add_events, expected_lines, ids_of, log_files, written_lines
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import Storage

SCRIPT = Path(__file__).with_name("sink_process.py")
KILLS = 15


class SinkProcess:
    """tests/consumers/sink_process.py, its output appended to one log file."""

    def __init__(self, db_url: str, directory: Path, log: Path) -> None:
        self.args = [sys.executable, str(SCRIPT), db_url, str(directory)]
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *options: str) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen([*self.args, "run", *options], stdout=output,
                                            stderr=output)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(10) == -signal.SIGKILL

    def wait_killed(self) -> None:
        assert self.process is not None
        assert self.process.wait(60) == -signal.SIGKILL, self.log.read_text()[-3000:]

    def close(self) -> None:
        """Kill the process if it still runs (a failed test leaves none behind)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def drain(self) -> None:
        with self.log.open("ab") as output:
            done = subprocess.run([*self.args, "drain"], stdout=output, stderr=output,
                                  timeout=120, check=False)
        assert done.returncode == 0, self.log.read_text()[-3000:]


class Producer:
    """Commits batches of events on a thread until stopped; ``stored`` counts them."""

    def __init__(self, storage: Storage, stored: int) -> None:
        self.storage = storage
        self.stored = stored
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.done.is_set():
            add_events(self.storage, 300, first=self.stored)
            self.stored += 300
            time.sleep(0.005)

    def __enter__(self) -> Producer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def assert_every_event_once(storage: Storage, directory: Path, count: int) -> None:
    lines = written_lines(directory)
    assert ids_of(lines) == list(range(1, count + 1))
    assert lines == expected_lines(storage)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_at_random_moments_neither_loses_nor_duplicates_a_line(tmp_path: Path) -> None:
    """15 kills of either or both of two sink processes while events are being committed."""
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    print(f"random seed {seed}")
    db_url = f"sqlite://{tmp_path / 'audit.db'}"
    directory = tmp_path / "home" / "log" / "audit"
    log = tmp_path / "sinks.log"
    storage = open_storage(db_url)
    sinks = [SinkProcess(db_url, directory, log) for _ in range(2)]
    try:
        add_events(storage, 20_000)
        for sink in sinks:
            sink.start()
        with Producer(storage, 20_000) as producer:
            for _ in range(KILLS):
                time.sleep(rng.uniform(0.1, 0.8))
                victims = rng.choice([[0], [1], [0, 1]])
                for n in victims:
                    sinks[n].kill()
                for n in victims:
                    sinks[n].start("--save-interval", str(rng.choice([0, 0.05, 1])))
        for sink in sinks:
            sink.kill()
        SinkProcess(db_url, directory, log).drain()
        assert_every_event_once(storage, directory, producer.stored)
    finally:
        for sink in sinks:
            sink.close()
        storage.close()
    repairs = log.read_text().count("removing")
    print(f"seed {seed}: {producer.stored} events in {len(log_files(directory))} files;"
          f" {repairs} restarts cut bytes written after the last saved position")


@pytest.mark.timeout(300)
def test_a_crash_after_writing_and_before_recording_is_repaired(tmp_path: Path) -> None:
    """Killed between the fsync of a batch (or a new file) and the save of its position,
    six times: each restart cuts what was not recorded and writes it again, once."""
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    print(f"random seed {seed}")
    db_url = f"sqlite://{tmp_path / 'audit.db'}"
    directory = tmp_path / "home" / "log" / "audit"
    log = tmp_path / "sink.log"
    storage = open_storage(db_url)
    sink = SinkProcess(db_url, directory, log)
    try:
        stored = 0
        for _ in range(6):
            add_events(storage, 5000, first=stored)  # about eight files and a few saves
            stored += 5000
            sink.start("--crash-at-save", str(rng.randint(1, 6)),
                       "--save-interval", str(rng.choice([0, 0.05])))
            sink.wait_killed()
        sink.drain()
        assert_every_event_once(storage, directory, stored)
    finally:
        sink.close()
        storage.close()
    text = log.read_text()
    crashes = text.count("crashing before saving")
    repairs = text.count("removing")
    empty = text.count('"offset":0}')
    print(f"seed {seed}: {crashes} crashes ({empty} right after creating a file),"
          f" {repairs} restarts cut unrecorded lines")
    assert crashes == 6
    # A crash at a batch's save always leaves unrecorded lines; one at a new file's save
    # does when earlier batches of its round were waiting for the next save.
    assert crashes - empty <= repairs <= crashes
