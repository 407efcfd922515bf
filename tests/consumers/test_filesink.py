"""The Atlassian-format file sink, on both stores: content, rotation, pruning, restarts."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.consumers.helpers import (
    add_events,
    expected_lines,
    ids_of,
    log_files,
    model_line,
    written_lines,
)
from trailkeeper.consumers import FileSink, FileSinkBusyError, LogCursor, audit_log_dir
from trailkeeper.errors import StateError
from trailkeeper.metrics import Metrics
from trailkeeper.storage.base import Storage

NODE = "node-1"


class Clock:
    """Epoch seconds that a test moves by hand."""

    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return audit_log_dir(tmp_path / "home")


def make_sink(storage: Storage, directory: Path, **options: Any) -> FileSink:
    options.setdefault("tz", UTC)
    return FileSink(storage, directory, NODE, **options)


def position(storage: Storage) -> dict[str, Any]:
    text = storage.get_position(f"file-sink:{NODE}")
    assert text is not None
    state: dict[str, Any] = orjson.loads(text)
    return state


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- the committed log ---------------------------------------------------------------------


def test_events_after_reads_the_log_in_id_order_from_a_position(storage: Storage) -> None:
    """`events_after` gives ids above the position, ascending, at most ``limit``."""
    add_events(storage, 30, per_batch=7)
    assert [e.id for e in storage.events_after(0, 5)] == [1, 2, 3, 4, 5]
    assert [e.id for e in storage.events_after(25, 100)] == [26, 27, 28, 29, 30]
    assert storage.events_after(30, 100) == []
    row = storage.events_after(11, 1)[0]
    assert row == storage.get(12)


def test_a_cursor_keeps_its_position_and_state_in_the_store(storage: Storage) -> None:
    """Saved state comes back in a new cursor; lag counts what is not yet delivered."""
    add_events(storage, 12)
    cursor = LogCursor(storage, "test-consumer")
    assert cursor.load() == {"id": 0}
    assert cursor.lag() == 12
    assert [e.id for e in cursor.read(4)] == [1, 2, 3, 4]
    cursor.save(4, extra="x")
    again = LogCursor(storage, "test-consumer")
    assert again.load() == {"id": 4, "extra": "x"}
    assert (again.last_id, again.lag()) == (4, 8)
    assert [e.id for e in again.read(100)] == list(range(5, 13))


def test_a_cursor_refuses_a_damaged_position(storage: Storage) -> None:
    storage.put_position("broken", '{"file": "x"}')
    with pytest.raises(StateError, match="broken"):
        LogCursor(storage, "broken").load()


# -- content -------------------------------------------------------------------------------


def test_every_stored_event_is_written_once_in_id_order(storage: Storage,
                                                        directory: Path) -> None:
    """Lines are the model's file shape of every stored event, in id order."""
    add_events(storage, 1234)
    sink = make_sink(storage, directory, batch_size=100)
    try:
        assert sink.drain() == 1234
        assert sink.drain() == 0
    finally:
        sink.close()
    lines = written_lines(directory)
    assert lines == expected_lines(storage)
    assert ids_of(lines) == list(range(1, 1235))
    assert [p.name for p in log_files(directory)] == [
        datetime.now(UTC).strftime("%Y%m%d") + ".00000.audit.log"]


def test_the_position_names_the_file_and_its_length(storage: Storage, directory: Path) -> None:
    """The saved position is the last id written, the current file and its byte length."""
    add_events(storage, 50)
    sink = make_sink(storage, directory)
    sink.drain()
    sink.close()
    state = position(storage)
    (path,) = log_files(directory)
    assert state == {"id": 50, "file": path.name, "offset": path.stat().st_size}


# -- rotation and pruning -----------------------------------------------------------------


def test_a_new_file_starts_once_the_current_one_reaches_its_size(storage: Storage,
                                                                 directory: Path) -> None:
    """Checked before each batch: every full file holds at least the limit, at most one
    batch more."""
    add_events(storage, 600)
    limit = 20_000
    sink = make_sink(storage, directory, max_file_bytes=limit, batch_size=25)
    sink.drain()
    sink.close()
    files = log_files(directory)
    assert len(files) > 5
    assert [p.name.split(".")[1] for p in files] == [f"{n:05d}" for n in range(len(files))]
    line_max = max(len(line) for line in written_lines(directory))
    for path in files[:-1]:
        assert limit <= path.stat().st_size < limit + 25 * line_max
    assert files[-1].stat().st_size <= limit + 25 * line_max
    assert written_lines(directory) == expected_lines(storage)


def test_a_new_file_starts_at_local_midnight(storage: Storage, directory: Path) -> None:
    """The date in names is local (here UTC-5), and the sequence restarts each day."""
    local = timezone(timedelta(hours=-5))
    clock = Clock(datetime(2024, 3, 1, 23, 59, 58, tzinfo=local))  # 04:59:58 UTC on March 2
    sink = make_sink(storage, directory, clock=clock, tz=local, max_file_bytes=3000,
                     batch_size=10)
    add_events(storage, 30)
    sink.drain()  # three files of March 1 (size)
    clock.set(datetime(2024, 3, 2, 0, 0, 1, tzinfo=local))
    add_events(storage, 5, first=30)
    sink.drain()
    sink.close()
    assert [p.name for p in log_files(directory)] == [
        "20240301.00000.audit.log", "20240301.00001.audit.log", "20240301.00002.audit.log",
        "20240302.00000.audit.log"]
    assert ids_of((directory / "20240302.00000.audit.log").read_bytes().splitlines()) == [
        31, 32, 33, 34, 35]
    assert written_lines(directory) == expected_lines(storage)


def test_a_clock_set_back_keeps_names_in_order(storage: Storage, directory: Path) -> None:
    """After the date went backwards the sink stays on the newest date."""
    clock = Clock(datetime(2024, 3, 2, 10, tzinfo=UTC))
    sink = make_sink(storage, directory, clock=clock, max_file_bytes=1, batch_size=10)
    add_events(storage, 10)
    sink.drain()
    clock.set(datetime(2024, 3, 1, 23, tzinfo=UTC))
    add_events(storage, 10, first=10)
    sink.drain()
    sink.close()
    assert [p.name for p in log_files(directory)] == [
        "20240302.00000.audit.log", "20240302.00001.audit.log"]


def test_old_files_are_deleted_so_that_at_most_max_file_count_remain(
        storage: Storage, directory: Path) -> None:
    """The oldest names go first; the limit is read again at every new file."""
    directory.mkdir(parents=True)
    (directory / "20000101.00000.audit.log").write_bytes(b"{}\n")  # an old file of a past run
    (directory / "notes.txt").write_text("not a log file")
    limit = {"count": 3}
    sink = make_sink(storage, directory, max_file_bytes=1, batch_size=10,
                     max_file_count=lambda: limit["count"])
    add_events(storage, 100)
    sink.drain()  # ten files, one per batch
    names = [p.name for p in log_files(directory)]
    assert len(names) == 3
    assert ids_of(written_lines(directory)) == list(range(71, 101))
    limit["count"] = 5
    add_events(storage, 60, first=100)
    sink.drain()
    sink.close()
    assert len(log_files(directory)) == 5
    assert ids_of(written_lines(directory)) == list(range(111, 161))
    assert (directory / "notes.txt").exists()


# -- restarts and crashes -----------------------------------------------------------------


def test_a_restarted_sink_resumes_without_loss_or_duplicates(storage: Storage,
                                                             directory: Path) -> None:
    """A new sink (a new process) continues from the saved position, in the same file."""
    add_events(storage, 300)
    first = make_sink(storage, directory, batch_size=64)
    first.drain()
    first.close()
    add_events(storage, 200, first=300)
    second = make_sink(storage, directory, batch_size=64)
    assert second.drain() == 200
    second.close()
    assert len(log_files(directory)) == 1
    assert written_lines(directory) == expected_lines(storage)


def test_a_partial_last_line_is_cut_and_written_again(storage: Storage,
                                                      directory: Path) -> None:
    """A crash in the middle of a write leaves half a line; the restart repairs it."""
    add_events(storage, 40)
    sink = make_sink(storage, directory)
    sink.drain()
    sink.close()
    add_events(storage, 10, first=40)
    (path,) = log_files(directory)
    torn = model_line(storage.events_after(40, 1)[0])[:57]
    with path.open("ab") as file:
        file.write(torn)
    sink = make_sink(storage, directory)
    assert sink.drain() == 10
    sink.close()
    assert written_lines(directory) == expected_lines(storage)


def test_lines_written_but_not_recorded_are_written_once(storage: Storage,
                                                         directory: Path) -> None:
    """Lines fsynced before the crash stopped the position's save are not duplicated."""
    add_events(storage, 40)
    sink = make_sink(storage, directory)
    sink.drain()
    sink.close()
    add_events(storage, 30, first=40)
    (path,) = log_files(directory)
    with path.open("ab") as file:  # what the crashed sink wrote of its next batch
        file.write(b"".join(model_line(r) for r in storage.events_after(40, 25)))
        file.write(b'{"affectedObjects":[{"id":')
    sink = make_sink(storage, directory)
    assert sink.drain() == 30
    sink.close()
    assert ids_of(written_lines(directory)) == list(range(1, 71))
    assert written_lines(directory) == expected_lines(storage)


def test_empty_files_started_after_the_position_are_removed(storage: Storage,
                                                            directory: Path) -> None:
    """A crash between creating a file and recording it leaves an empty file: removed."""
    clock = Clock(datetime(2024, 3, 1, 12, tzinfo=UTC))
    add_events(storage, 10)
    sink = make_sink(storage, directory, clock=clock)
    sink.drain()
    sink.close()
    (directory / "20240301.00001.audit.log").touch()
    clock.set(datetime(2024, 3, 2, 12, tzinfo=UTC))
    (directory / "20240302.00000.audit.log").touch()
    add_events(storage, 10, first=10)
    sink = make_sink(storage, directory, clock=clock)
    sink.drain()
    sink.close()
    assert [p.name for p in log_files(directory)] == [
        "20240301.00000.audit.log", "20240302.00000.audit.log"]
    assert written_lines(directory) == expected_lines(storage)


def test_a_deleted_current_file_is_followed_by_a_new_one(storage: Storage,
                                                         directory: Path) -> None:
    """Someone removed the file being written: later events go to a new file."""
    add_events(storage, 10)
    sink = make_sink(storage, directory)
    sink.drain()
    sink.close()
    for path in log_files(directory):
        path.unlink()
    add_events(storage, 10, first=10)
    sink = make_sink(storage, directory)
    sink.drain()
    sink.close()
    assert ids_of(written_lines(directory)) == list(range(11, 21))


# -- one writer per node -------------------------------------------------------------------


def test_only_one_sink_writes_and_another_takes_over(storage: Storage,
                                                     directory: Path) -> None:
    """Two workers on one home: one writes, the other waits and takes over when it stops."""
    first = make_sink(storage, directory, poll_interval_s=0.02, standby_retry_s=0.05)
    second = make_sink(storage, directory, poll_interval_s=0.02, standby_retry_s=0.05)
    first.start()
    wait_for(lambda: first.active)
    second.start()
    try:
        add_events(storage, 200)
        wait_for(lambda: len(written_lines(directory)) == 200)
        assert not second.active
        first.stop()
        wait_for(lambda: second.active)
        add_events(storage, 100, first=200)
        second.notify()
        wait_for(lambda: len(written_lines(directory)) == 300)
    finally:
        first.stop()
        second.stop()
    assert written_lines(directory) == expected_lines(storage)


def test_drain_refuses_while_another_sink_holds_the_lock(storage: Storage,
                                                         directory: Path) -> None:
    holder = make_sink(storage, directory)
    holder.drain()
    try:
        with pytest.raises(FileSinkBusyError):
            make_sink(storage, directory).drain()
    finally:
        holder.close()


# -- the background thread -----------------------------------------------------------------


def test_notify_writes_before_the_next_poll(storage: Storage, directory: Path) -> None:
    """With a poll every minute, a notify after a commit still writes within moments."""
    sink = make_sink(storage, directory, poll_interval_s=60)
    sink.start()
    try:
        wait_for(lambda: sink.active)
        time.sleep(0.1)  # the first poll is over; the next is a minute away
        add_events(storage, 20)
        sink.notify()
        wait_for(lambda: len(written_lines(directory)) == 20, timeout=5)
    finally:
        sink.stop()


def test_stop_writes_what_is_committed(storage: Storage, directory: Path) -> None:
    """Events committed before stop() are in the files when it returns."""
    sink = make_sink(storage, directory, poll_interval_s=60, batch_size=100)
    sink.start()
    wait_for(lambda: sink.active)
    time.sleep(0.1)
    add_events(storage, 750)
    sink.stop()
    assert not sink.active
    assert written_lines(directory) == expected_lines(storage)


def test_metrics_count_lines_and_lag(storage: Storage, directory: Path) -> None:
    """Lines written count up; the lag (stored max id - position) is 0 once caught up."""
    metrics = Metrics()
    add_events(storage, 120)
    sink = make_sink(storage, directory, metrics=metrics, batch_size=50)
    sink.drain()
    sink.close()
    sample = metrics.registry.get_sample_value
    assert sample("trailkeeper_file_sink_lines_total") == 120
    assert sample("trailkeeper_consumer_lag_events", {"consumer": f"file-sink:{NODE}"}) == 0
    add_events(storage, 30, first=120)
    assert LogCursor(storage, f"file-sink:{NODE}").load()["id"] == 120
    cursor = LogCursor(storage, f"file-sink:{NODE}")
    cursor.load()
    assert cursor.lag() == 30
