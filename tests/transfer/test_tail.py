"""`trailkeeper tail`: following a live Atlassian audit log directory, every line once.

The live tests run the real command as a subprocess against both stores, with a writer that
behaves like Atlassian's file sink (appends, lines written in two parts, rotation to the next
``YYYYMMDD.NNNNN.audit.log``), and stop it with SIGTERM or kill it with SIGKILL.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import ADMIN_PASSWORD, LiveServer
from tests.transfer.helpers import content, event_content, invoke, sample_events, stored
from trailkeeper.errors import AlreadyFollowingError, AuthenticationError
from trailkeeper.model.event import AuditEvent
from trailkeeper.query.ast import MatchAll
from trailkeeper.transfer.importer import Problem
from trailkeeper.transfer.position import StateFile
from trailkeeper.transfer.sinks import ServerTarget, StoreTarget
from trailkeeper.transfer.tail import Follower

pytestmark = pytest.mark.timeout(180)


class AtlassianLog:
    """Writes a directory as Atlassian's file sink does: append, rotate to the next file."""

    def __init__(self, folder: Path, day: str = "20240601") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.day = day
        self.sequence = 0
        self.written: list[AuditEvent] = []

    @property
    def current(self) -> Path:
        return self.folder / f"{self.day}.{self.sequence:05d}.audit.log"

    def write(self, events: list[AuditEvent], *, split_last: bool = False) -> None:
        data = b"".join(e.file_line().encode() + b"\n" for e in events)
        with self.current.open("ab") as file:
            if split_last:  # the last line in two writes, as a buffered writer may do
                cut = len(data) - 30
                file.write(data[:cut])
                file.flush()
                time.sleep(0.05)
                data = data[cut:]
            file.write(data)
        self.written += events

    def rotate(self, *, midnight: bool = False) -> None:
        if midnight:
            self.day = str(int(self.day) + 1)
            self.sequence = 0
        else:
            self.sequence += 1
        self.current.touch()


def eventually(check: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


def contents(db_url: str) -> list[bytes]:
    return sorted(content(doc) for doc in stored(db_url))


def expected(events: list[AuditEvent]) -> list[bytes]:
    return sorted(event_content(e) for e in events)


def follow_once(folder: Path, db_url: str, state: Path, **options: object) -> Follower:
    problems: list[Problem] = []
    follower = Follower(folder, StoreTarget(db_url), StateFile(state), interval=0.01,
                        on_problem=problems.append, **options)  # type: ignore[arg-type]
    follower.run(once=True)
    follower.problems = problems  # type: ignore[attr-defined]
    return follower


class TailProcess:
    """``python -m trailkeeper tail`` on a directory, restartable."""

    def __init__(self, folder: Path, db_url: str, home: Path) -> None:
        self.command = [sys.executable, "-m", "trailkeeper", "tail", str(folder), "--db",
                        db_url, "--home", str(home), "--interval", "0.05"]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILKEEPER_")}
        self.log = home.parent / "tail.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=output,
                                            stderr=output)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def tailing(tmp_path: Path, db_url: str) -> Iterator[TailProcess]:
    process = TailProcess(tmp_path / "audit", db_url, tmp_path / "home")
    (tmp_path / "audit").mkdir()
    try:
        yield process
    finally:
        if process.process is not None and process.process.poll() is None:
            process.kill()


# -- one pass (--once) ----------------------------------------------------------------------


def test_once_forwards_the_directory_and_then_only_what_was_added(tmp_path: Path,
                                                                   db_url: str) -> None:
    events = sample_events(30)
    log = AtlassianLog(tmp_path / "audit")
    log.write(events[:10])
    log.rotate()
    log.write(events[10:20])
    home = tmp_path / "home"
    result = invoke("tail", str(log.folder), "--db", db_url, "--home", str(home), "--once")
    assert result.exit_code == 0, result.output
    assert "20 events stored, 0 already present, 0 bad" in result.stderr
    assert contents(db_url) == expected(events[:20])
    log.write(events[20:25])
    log.rotate(midnight=True)
    log.write(events[25:])
    result = invoke("tail", str(log.folder), "--db", db_url, "--home", str(home), "--once")
    assert "10 events stored, 0 already present" in result.stderr
    assert "20240602.00000.audit.log line 5" in result.stderr
    assert contents(db_url) == expected(events)


def test_a_partial_line_is_not_forwarded_until_its_line_break_arrives(tmp_path: Path,
                                                                       db_url: str) -> None:
    events = sample_events(3)
    folder = tmp_path / "audit"
    folder.mkdir()
    path = folder / "20240601.00000.audit.log"
    data = b"".join(e.file_line().encode() + b"\n" for e in events)
    path.write_bytes(data[:-100])
    state = tmp_path / "state.json"
    follower = follow_once(folder, db_url, state)
    assert follower.summary.stored == 2
    assert follower.problems == []  # type: ignore[attr-defined]
    with path.open("ab") as file:
        file.write(data[-100:])
    follower = follow_once(folder, db_url, state)
    assert follower.summary.stored == 1
    assert contents(db_url) == expected(events)


def test_identical_lines_are_each_forwarded_also_across_restarts(tmp_path: Path,
                                                                 db_url: str) -> None:
    event = sample_events(1)[0]
    log = AtlassianLog(tmp_path / "audit")
    state = tmp_path / "state.json"
    for _ in range(3):
        log.write([event, event])
        follow_once(log.folder, db_url, state)
    assert len(stored(db_url)) == 6


def test_a_line_cut_off_before_rotation_is_reported_and_the_next_file_followed(
        tmp_path: Path, db_url: str) -> None:
    events = sample_events(5)
    log = AtlassianLog(tmp_path / "audit")
    log.write(events[:3])
    first = log.current
    with first.open("ab") as file:
        file.write(events[3].file_line().encode()[:50])  # the node crashed mid-line
    log.rotate()
    log.write(events[4:])
    result = invoke("tail", str(log.folder), "--db", db_url, "--home", str(tmp_path / "h"),
                    "--once")
    assert result.exit_code == 2
    assert f"{first}:4: truncated: the file ends inside this record" in result.stderr
    assert contents(db_url) == expected(events[:3] + events[4:])


def test_from_end_skips_what_is_there_on_the_first_run_only(tmp_path: Path,
                                                            db_url: str) -> None:
    events = sample_events(8)
    log = AtlassianLog(tmp_path / "audit")
    log.write(events[:5])
    state = tmp_path / "state.json"
    assert follow_once(log.folder, db_url, state, from_start=False).summary.stored == 0
    log.write(events[5:])
    assert follow_once(log.folder, db_url, state, from_start=False).summary.stored == 3
    assert contents(db_url) == expected(events[5:])


def test_a_file_replaced_under_its_name_is_read_from_its_start(tmp_path: Path,
                                                               db_url: str) -> None:
    events = sample_events(6)
    log = AtlassianLog(tmp_path / "audit")
    log.write(events[:3])
    state = tmp_path / "state.json"
    follow_once(log.folder, db_url, state)
    replacement = log.folder / ".new"
    replacement.write_bytes(b"".join(e.file_line().encode() + b"\n" for e in events[3:]))
    replacement.rename(log.current)  # same name, another file
    follower = follow_once(log.folder, db_url, state)
    assert follower.summary.stored == 3
    assert contents(db_url) == expected(events)


def test_when_the_file_of_the_position_is_gone_the_next_one_is_followed(
        tmp_path: Path, db_url: str) -> None:
    events = sample_events(4)
    log = AtlassianLog(tmp_path / "audit")
    log.write(events[:2])
    state = tmp_path / "state.json"
    follow_once(log.folder, db_url, state)
    log.current.unlink()  # retention removed it while no tail ran
    log.rotate()
    log.write(events[2:])
    assert follow_once(log.folder, db_url, state).summary.stored == 2
    assert contents(db_url) == expected(events)


def test_a_second_tail_on_the_same_position_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with StateFile(state), pytest.raises(AlreadyFollowingError):
        StateFile(state).lock()
    folder = tmp_path / "audit"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILKEEPER_")}
    with StateFile(state):
        done = subprocess.run(
            [sys.executable, "-m", "trailkeeper", "tail", str(folder), "--db",
             f"sqlite://{tmp_path / 'a.db'}", "--home", str(tmp_path / "home"), "--state",
             str(state), "--once"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "another trailkeeper tail is using the state file" in done.stderr


# -- a live process -------------------------------------------------------------------------


def test_a_live_tail_follows_appends_partial_lines_and_rotation(
        tmp_path: Path, db_url: str, tailing: TailProcess) -> None:
    events = sample_events(40)
    log = AtlassianLog(tmp_path / "audit")
    tailing.start()
    log.write(events[:10])
    eventually(lambda: len(stored(db_url)) == 10, what="the first lines")
    log.write(events[10:20], split_last=True)
    eventually(lambda: len(stored(db_url)) == 20, what="a line written in two parts")
    log.rotate()  # at the size limit
    log.write(events[20:30])
    eventually(lambda: len(stored(db_url)) == 30, what="the lines of the next file")
    log.rotate(midnight=True)
    log.write(events[30:])
    eventually(lambda: len(stored(db_url)) == 40, what="the lines after midnight")
    assert tailing.stop() == 0
    assert contents(db_url) == expected(events)
    assert "40 events stored, 0 already present, 0 bad; position 20240602.00000.audit.log " \
           "line 10" in tailing.output()


def test_killing_a_live_tail_mid_stream_loses_and_repeats_nothing(
        tmp_path: Path, db_url: str, tailing: TailProcess) -> None:
    """SIGKILL at random moments while lines keep coming: after restarts the store holds
    every written line exactly once (identical lines of one file included, as often as
    they were written)."""
    events = sample_events(600, seed=9)
    rng = random.Random(5)
    log = AtlassianLog(tmp_path / "audit")
    writing = threading.Event()
    writing.set()

    def write() -> None:
        position = 0
        while position < len(events) and writing.is_set():
            batch = events[position:position + rng.randint(1, 12)]
            position += len(batch)
            if rng.random() < 0.2:
                batch.append(batch[-1])  # the same event logged twice, identically
            log.write(batch, split_last=rng.random() < 0.3)
            if rng.random() < 0.08:
                log.rotate()
            time.sleep(rng.uniform(0, 0.03))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(6):
            tailing.start()
            time.sleep(rng.uniform(0.3, 1.2))
            tailing.kill()
    finally:
        writing.clear()
        writer.join()
    logged = len(tailing.output())
    tailing.start()
    eventually(lambda: len(stored(db_url)) >= len(log.written), timeout=120,
               what="the tail to catch up")
    # The last run must be up (its signal handler installed) before it is asked to stop.
    eventually(lambda: "following" in tailing.output()[logged:], timeout=60,
               what="the last run to start")
    time.sleep(0.5)  # nothing more may arrive
    assert tailing.stop() == 0
    assert contents(db_url) == expected(log.written)
    counts = collections.Counter(doc["uid"] for doc in stored(db_url))
    assert set(counts.values()) == {1}


def test_sigterm_saves_the_position_and_a_restart_continues_from_it(
        tmp_path: Path, db_url: str, tailing: TailProcess) -> None:
    events = sample_events(20)
    log = AtlassianLog(tmp_path / "audit")
    log.write(events[:10])
    tailing.start()
    eventually(lambda: len(stored(db_url)) == 10)
    assert tailing.stop() == 0
    log.write(events[10:])
    tailing.start()
    eventually(lambda: len(stored(db_url)) == 20)
    assert tailing.stop() == 0
    assert "10 events stored, 0 already present" in tailing.output().splitlines()[-1]


# -- into a server --------------------------------------------------------------------------


def test_a_tail_forwards_to_a_server_with_a_user_and_password(
        tmp_path: Path, server: LiveServer) -> None:
    events = sample_events(25)
    log = AtlassianLog(tmp_path / "audit")
    log.write(events)
    result = invoke("tail", str(log.folder), "-H", server.base_url, "-u", "admin", "-p",
                    ADMIN_PASSWORD, "--home", str(tmp_path / "home"), "--once")
    assert result.exit_code == 0, result.output
    assert "25 events stored, unknown already present" in result.stderr
    assert server.service.count() == 25


def test_a_tail_with_wrong_credentials_stops_and_keeps_its_position(
        tmp_path: Path, server: LiveServer) -> None:
    log = AtlassianLog(tmp_path / "audit")
    log.write(sample_events(5))
    state = StateFile(tmp_path / "state.json")
    follower = Follower(log.folder, ServerTarget(server.base_url, "admin", "wrong"), state)
    with pytest.raises(AuthenticationError):
        follower.run(once=True)
    saved = state.load()
    assert saved is not None and saved.line == 0
    # Nothing imported (the server's own record of the failed sign-in aside).
    imported = [row for row in server.service.storage.stream(MatchAll())
                if orjson.loads(row.doc).get("uid", "").startswith("imp-")]
    assert imported == []


def test_a_server_that_is_down_is_waited_for_and_the_position_kept_until_it_answers(
        tmp_path: Path, service: object) -> None:
    from tests.conftest import start_server
    from trailkeeper.ingest.service import AuditService

    assert isinstance(service, AuditService)
    events = sample_events(10)
    log = AtlassianLog(tmp_path / "audit")
    log.write(events)
    live = start_server(service, tmp_path)  # its port is chosen; it is not listening yet
    state = StateFile(tmp_path / "state.json")
    follower = Follower(log.folder, ServerTarget(live.base_url, "admin", ADMIN_PASSWORD),
                        state, interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,))
    thread.start()
    try:
        time.sleep(1.5)
        saved = state.load()
        assert saved is not None and saved.offset == 0  # nothing acknowledged yet
        with live:
            eventually(lambda: service.count() == 10, what="delivery once the server is up")
            eventually(lambda: (state.load() or saved).line == 10, what="the saved position")
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def test_a_line_longer_than_a_batch_is_forwarded_whole(tmp_path: Path, db_url: str) -> None:
    events = sample_events(3)
    log = AtlassianLog(tmp_path / "audit")
    log.write(events)
    state = tmp_path / "state.json"
    problems: list[Problem] = []
    follower = Follower(log.folder, StoreTarget(db_url), StateFile(state), batch_bytes=64,
                        on_problem=problems.append)
    assert follower.run(once=True).stored == 3
    assert problems == []
    log.write(events[:1])  # resumes: the counters are rebuilt in pieces of whole lines too
    assert Follower(log.folder, StoreTarget(db_url), StateFile(state),
                    batch_bytes=64).run(once=True).stored == 1
