"""Crash and shutdown reliability, on both stores.

- SIGKILL the real server 20 times during sustained ingest: every acknowledged event is stored
  exactly once (clients retry with the same uid), nothing unknown is stored, and the database
  passes its own integrity check (Jepsen's set workload, reference/reliability.md §4).
- SIGTERM during ingest: every acknowledged event is stored and the process exits 0 in time.
- `AuditService.close()` drains everything queued, also when the store was down meanwhile.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
import pytest

from tests.conftest import ADMIN_PASSWORD, free_port
from tests.factories import event
from trailkeeper.errors import ConflictError
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.event import AuditAttribute
from trailkeeper.query.ast import MatchAll
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import AppendResult, Storage
from trailkeeper.storage.rows import Batch

KILLS = 20
GRACEFUL_TIMEOUT_S = 30  # uvicorn's timeout_graceful_shutdown in `trailkeeper serve`
NDJSON = {"content-type": "application/x-ndjson"}


class ServerProcess:
    """`python -m trailkeeper serve` on a fixed port, restartable after a kill."""

    def __init__(self, db_url: str, home: Path) -> None:
        self.db_url = db_url
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: nobody reads a pipe while the server runs, and a full one would
        # block the server's logging.
        self.log: IO[bytes] = open(home.parent / "server.log", "ab")  # noqa: SIM115

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILKEEPER_")}
        env["TRAILKEEPER_ADMIN_PASSWORD"] = ADMIN_PASSWORD
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trailkeeper", "serve", "--db", self.db_url,
             "--home", str(self.home), "--port", str(self.port)],
            env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; "
                                   f"see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the server did not become healthy within 30 s")

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(db_url, tmp_path / "home")
    try:
        yield server
    finally:
        server.close()


class Ingest:
    """Writer threads POSTing NDJSON batches with uids, each retried until acknowledged.

    ``attempted`` holds every uid ever sent, ``acknowledged`` those that got a 2xx.
    """

    def __init__(self, url: str, *, writers: int = 4, batch: int = 50) -> None:
        self.url = url
        self.batch = batch
        self.attempted: set[str] = set()
        self.acknowledged: set[str] = set()
        self.acks = 0
        self.resent = 0  # batches sent more than once
        self.already_stored = 0  # resent batches answered 200: stored before, reply lost
        self.unexpected: list[str] = []
        self.lock = threading.Lock()
        self.finish = threading.Event()  # stop after the batch in hand is acknowledged
        self.abandon = threading.Event()  # stop now, even with a batch unacknowledged
        self.threads = [threading.Thread(target=self._write, args=(n,)) for n in range(writers)]

    def __enter__(self) -> Ingest:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.abandon.set()
        for thread in self.threads:
            thread.join(30)

    def stop(self, *, abandon: bool) -> None:
        (self.abandon if abandon else self.finish).set()
        for thread in self.threads:
            thread.join(60)
            assert not thread.is_alive(), "a writer did not stop"

    def wait_for_acks(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.acks < count:
            assert not self.unexpected, self.unexpected[:3]
            assert time.monotonic() < deadline, "ingest made no progress"
            time.sleep(0.01)

    def _write(self, writer: int) -> None:
        with httpx.Client(base_url=self.url, auth=("admin", ADMIN_PASSWORD), timeout=30,
                          headers=NDJSON) as http:
            seq = 0
            while not (self.finish.is_set() or self.abandon.is_set()):
                uids = [f"w{writer}-{seq + i}" for i in range(self.batch)]
                seq += self.batch
                body = b"".join(orjson.dumps(event(minutes=i, uid=uid).to_rest()) + b"\n"
                                for i, uid in enumerate(uids))
                with self.lock:
                    self.attempted.update(uids)
                if not self._send(http, body, len(uids)):
                    return
                with self.lock:
                    self.acknowledged.update(uids)
                    self.acks += 1

    def _send(self, http: httpx.Client, body: bytes, size: int) -> bool:
        """Resend the same bytes until a 2xx (True), or until abandoned (False)."""
        tries = 0
        while not self.abandon.is_set():
            tries += 1
            if tries == 2:
                with self.lock:
                    self.resent += 1
            try:
                response = http.post("/api/v1/events", content=body)
            except httpx.TransportError:  # killed, restarting, or the reply was lost
                time.sleep(0.02)
                continue
            if response.status_code in (200, 201):
                assert len(response.json()["ids"]) == size
                if response.status_code == 200:
                    with self.lock:
                        self.already_stored += 1
                return True
            if response.status_code != 503:  # 503: shutting down or store unavailable
                self.unexpected.append(f"{response.status_code} {response.text[:300]}")
                return False
            time.sleep(0.05)
        return False


def stored_uids(db_url: str) -> tuple[collections.Counter[str], list[str]]:
    """Rows per uid, and the store's integrity problems, read directly from the database."""
    store = open_storage(db_url)
    try:
        # Every ingested event has a uid; rows without one would be the server's own events.
        uids = collections.Counter(uid for row in store.stream(MatchAll())
                                   if (uid := orjson.loads(row.doc).get("uid")) is not None)
        return uids, store.integrity_check()
    finally:
        store.close()


def assert_exactly_once(ingest: Ingest, db_url: str) -> collections.Counter[str]:
    stored, problems = stored_uids(db_url)
    assert ingest.unexpected == []
    assert problems == []
    assert ingest.acknowledged - stored.keys() == set(), "acknowledged events were lost"
    assert [uid for uid, n in stored.items() if n > 1] == [], "events were stored twice"
    assert stored.keys() - ingest.attempted == set(), "events nobody sent were stored"
    return stored


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_20_times_during_ingest_loses_and_duplicates_no_acknowledged_event(
        served: ServerProcess, db_url: str) -> None:
    """After 20 SIGKILLs under load, acknowledged ⊆ stored ⊆ attempted, each uid once, and the
    database passes its integrity check."""
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    print(f"random seed {seed}")
    served.start()
    with Ingest(served.url) as ingest:
        for kill in range(1, KILLS + 1):
            # Kill while events are flowing: after some acknowledgements since the (re)start.
            ingest.wait_for_acks(ingest.acks + rng.randint(1, 8))
            time.sleep(rng.uniform(0, 0.3))
            served.signal(signal.SIGKILL)
            assert served.wait(10) == -signal.SIGKILL
            if kill < KILLS:
                served.start()
        # The last kill stays unrecovered by the server: batches in flight stay unacknowledged
        # and the checks below read the database exactly as the crash left it.
        ingest.stop(abandon=True)
    stored = assert_exactly_once(ingest, db_url)
    assert len(ingest.acknowledged) >= KILLS * ingest.batch
    print(f"seed {seed}: {len(ingest.acknowledged)} acknowledged, {sum(stored.values())} stored,"
          f" {len(ingest.attempted)} attempted; {ingest.resent} batches resent, of which"
          f" {ingest.already_stored} had been stored before the reply was lost")


@pytest.mark.timeout(120)
def test_sigterm_during_ingest_stores_every_acknowledged_event_and_exits_0(
        served: ServerProcess, db_url: str) -> None:
    """SIGTERM mid-ingest: the server finishes what it acknowledged and exits 0 in time."""
    served.start()
    with Ingest(served.url) as ingest:
        ingest.wait_for_acks(20)
        served.signal(signal.SIGTERM)
        started = time.monotonic()
        code = served.wait(GRACEFUL_TIMEOUT_S + 10)
        elapsed = time.monotonic() - started
        ingest.stop(abandon=True)
    assert code == 0
    assert elapsed < GRACEFUL_TIMEOUT_S
    assert_exactly_once(ingest, db_url)


# -- AuditService.close() ---------------------------------------------------------------------

_PRODUCER = textwrap.dedent("""
    import sys, threading
    from tests.factories import event
    from trailkeeper.ingest.service import AuditService
    from trailkeeper.model.event import AuditAttribute

    db_url, threads, per_thread = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    service = AuditService.open(db_url, queue_size=threads * per_thread + 1)

    def produce(t):
        for i in range(per_thread):
            seq = AuditAttribute("seq", f"{t}-{i}")
            service.audit(event(minutes=i, extra_attributes=(seq,)))

    workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    service.close()  # the last thing the process does: nothing else waits for the writer
""")


def seqs(store: Storage) -> collections.Counter[str]:
    """Rows per value of the ``seq`` attribute each test event carries."""
    return collections.Counter(
        next(a["value"] for a in orjson.loads(row.doc)["extraAttributes"] if a["name"] == "seq")
        for row in store.stream(MatchAll()))


@pytest.mark.timeout(120)
def test_close_in_a_producer_process_writes_every_queued_event_once(db_url: str) -> None:
    """A process that audits 20,000 events from 4 threads and then closes stores all of them."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", _PRODUCER, db_url, "4", "5000"], env=env,
                          capture_output=True, timeout=100, cwd=root)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    store = open_storage(db_url)
    try:
        assert seqs(store) == collections.Counter(f"{t}-{i}" for t in range(4)
                                                  for i in range(5000))
    finally:
        store.close()


class OutageStorage:
    """A real store behind a switch: while down, every write fails as a lost database would."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.down = threading.Event()
        self.refused = 0

    def append(self, batches: Sequence[Batch]) -> list[AppendResult | ConflictError]:
        if self.down.is_set():
            self.refused += 1
            raise ConnectionError("the store is unreachable")
        return self.inner.append(batches)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.timeout(120)
def test_events_queued_during_a_store_outage_are_written_once_it_returns(
        storage: Storage) -> None:
    """Events audited while the store is down, and close() called during the outage, lose
    nothing: close() waits for the store and writes every event exactly once."""
    flaky = OutageStorage(storage)
    service = AuditService(flaky, queue_size=5000)
    for i in range(500):
        service.audit(event(extra_attributes=(AuditAttribute("seq", f"before-{i}"),)))
    assert service.flush(30)
    flaky.down.set()
    for i in range(2000):
        service.audit(event(extra_attributes=(AuditAttribute("seq", f"during-{i}"),)))
    deadline = time.monotonic() + 10
    while flaky.refused < 3:  # the writer really met the outage, and retried
        assert time.monotonic() < deadline, "the writer never tried the broken store"
        time.sleep(0.01)
    closer = threading.Thread(target=service.close)
    closer.start()
    closer.join(1.0)
    assert closer.is_alive()  # close() waits for the store rather than dropping the queue
    flaky.down.clear()
    closer.join(60)
    assert not closer.is_alive()
    expected = [f"before-{i}" for i in range(500)] + [f"during-{i}" for i in range(2000)]
    assert seqs(storage) == collections.Counter(expected)
