"""Database retention: deleting by age and by row limit, the cluster lease, the run event,
and `trailkeeper retention`, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import dataclasses
import itertools
import sqlite3
import threading
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from tests.factories import PROJECT, batch, event, ms, rich_event
from trailkeeper.cli.main import cli
from trailkeeper.demo import demo_events
from trailkeeper.governance.config import MIN_ROWS
from trailkeeper.governance.period import Period
from trailkeeper.governance.retention import (
    ACTION,
    AGE_JOB,
    LEASE_MS,
    ROW_LIMIT_JOB,
    RetentionJob,
    RetentionReport,
    RetentionScheduler,
    row_limit_bounds,
)
from trailkeeper.ingest.service import AuditService
from trailkeeper.metrics import Metrics
from trailkeeper.model.event import AuditAttribute, AuditAuthor, AuditEvent, AuditResource
from trailkeeper.query.ast import AuditQuery, HasObject, MatchAll, Text
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import AppendResult, Storage
from trailkeeper.storage.prune import search_text_of_doc
from trailkeeper.storage.rows import encode, search_text

DOOMED_REPO = AuditResource("REPOSITORY", "zanzibar-repo", "99")
HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS


def store(storage: Storage, *events: AuditEvent) -> list[int]:
    [result] = storage.append([batch(storage, *events)])
    assert isinstance(result, AppendResult)
    return result.ids


def old_event(n: int) -> AuditEvent:
    """An event of the first hour, findable by object, by word and by uid."""
    return rich_event(
        minutes=n, uid=f"old-{n}", objects=(PROJECT, DOOMED_REPO, DOOMED_REPO),
        extra_attributes=(AuditAttribute("ticket", f"quokka{n} zanzibar"),))


def young_event(n: int) -> AuditEvent:
    return rich_event(minutes=120 + n, uid=f"young-{n}",
                      extra_attributes=(AuditAttribute("ticket", "wombat"),))


def ids_of(storage: Storage, where: object = None) -> list[int]:
    page = storage.search(where or MatchAll(), limit=10_000, descending=False)  # type: ignore[arg-type]
    return [e.id for e in page.events]


def fts_rowids(db_url: str) -> set[int]:
    """Every row the SQLite full-text index still has words for (not only what MATCH
    finds: a row forgotten with the wrong words would linger here)."""
    con = sqlite3.connect(db_url.removeprefix("sqlite://"))
    try:
        con.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, events_fts, instance)")
        return {row[0] for row in con.execute("SELECT DISTINCT doc FROM temp.vocab")}
    finally:
        con.close()


# -- the storage methods -------------------------------------------------------------------


def test_expired_events_are_deleted_with_their_objects_words_and_uids(
        storage: Storage, backend: str, db_url: str) -> None:
    """Events before the cutoff vanish from every index: by object, by word, by uid."""
    old = store(storage, *[old_event(n) for n in range(5)])
    young = store(storage, *[young_event(n) for n in range(3)])

    assert storage.delete_events_before(ms(60), 100) == 5

    assert ids_of(storage) == young
    assert ids_of(storage, HasObject("REPOSITORY", ("99",))) == []
    assert ids_of(storage, Text(("zanzibar",))) == []
    assert ids_of(storage, Text(("quokka3",))) == []
    assert ids_of(storage, Text(("wombat",))) == young
    assert ids_of(storage, HasObject("PROJECT", ("1",))) == young
    assert not storage.objects_seen_together("PROJECT", "1", "REPOSITORY", "99")
    assert all(storage.get(i) is None for i in old)
    assert storage.integrity_check() == []
    if backend == "sqlite":
        assert fts_rowids(db_url) == set(young)
    # The uid is forgotten with its event: a retry of it is a new event, not a replay.
    [again] = store(storage, old_event(0))
    assert again not in old
    assert ids_of(storage, HasObject("REPOSITORY", ("99",))) == [again]


def test_events_at_or_after_the_cutoff_stay(storage: Storage) -> None:
    """The cutoff itself is kept: only events strictly before it are expired."""
    ids = store(storage, event(minutes=0), event(minutes=1), event(minutes=2))
    assert storage.delete_events_before(ms(1), 100) == 1
    assert ids_of(storage) == ids[1:]
    assert storage.delete_events_before(ms(1), 100) == 0


def test_deletes_never_exceed_the_batch_size(storage: Storage) -> None:
    """Each call deletes at most ``limit`` events, oldest first (ties by id)."""
    ids = store(storage, *[event(minutes=n // 4, uid=f"u{n}") for n in range(25)])
    counts = list(iter(lambda: storage.delete_events_before(ms(100), 10), 0))
    assert counts == [10, 10, 5]
    assert ids_of(storage) == []
    ids2 = store(storage, *[event(minutes=-n) for n in range(7)])  # newest first
    assert storage.delete_events_before(ms(100), 3) == 3
    assert ids_of(storage) == ids2[3::-1]  # the four newest, oldest first
    assert ids


def test_row_limit_deletes_the_oldest_down_to_keep(storage: Storage) -> None:
    """At most ``keep`` events remain, the newest by (timestamp, id)."""
    ids = store(storage, *[event(minutes=(n * 7) % 12) for n in range(12)])
    by_age = [i for _, i in sorted(zip([(n * 7) % 12 for n in range(12)], ids, strict=True))]
    counts = list(iter(lambda: storage.delete_oldest_events(5, 3), 0))
    assert counts == [3, 3, 1]
    assert ids_of(storage) == by_age[-5:]
    assert storage.delete_oldest_events(10, 3) == 0


def test_deleting_keeps_the_full_text_index_consistent_for_every_field(
        storage: Storage, backend: str, db_url: str) -> None:
    """Demo events of every kind, with changed values and attributes, leave no words behind."""
    events = list(itertools.islice(demo_events(300, seed=3, end_ms=ms(0)), 300))
    ids = store(storage, *events)
    while storage.delete_events_before(ms(1), 64):
        pass
    assert ids_of(storage) == []
    assert storage.integrity_check() == []
    if backend == "sqlite":
        assert fts_rowids(db_url) == set()
    assert ids


def test_text_of_a_stored_document_has_the_words_it_was_indexed_with() -> None:
    """`search_text_of_doc` (used to forget an event) agrees with `search_text` (used to
    index it), word for word, whatever the order of changed values and attributes."""
    samples = list(itertools.islice(demo_events(2000, seed=11), 2000))
    samples.append(rich_event(extra_attributes=(AuditAttribute("z", "last"),
                                                AuditAttribute("a", "first")), author=None))
    for e in samples:
        new = encode(e, 0, AuditAuthor.SYSTEM)
        assert sorted(search_text_of_doc(orjson.loads(new.doc)).split("\n")) == \
            sorted(search_text(e, new.author).split("\n"))


def test_estimated_count_follows_the_store(storage: Storage, backend: str,
                                          db_url: str) -> None:
    """Exact on SQLite and before PostgreSQL has analysed the table; close after."""
    assert storage.estimated_count() == 0
    store(storage, *[event(minutes=n) for n in range(50)])
    assert storage.estimated_count() == 50
    if backend == "postgres":
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as con:
            con.execute("ANALYZE events")
        store(storage, *[event(minutes=n) for n in range(50)])
        assert 50 <= storage.estimated_count() <= 200


# -- the cluster lease -----------------------------------------------------------------------


def test_a_job_runs_for_one_owner_at_a_time_and_not_too_often(storage: Storage) -> None:
    """A live lease keeps others out; after finishing, the interval does; force does not."""
    t = 1_000_000_000_000
    assert storage.claim_job("j", "a", t, 1000, DAY_MS)
    assert not storage.claim_job("j", "b", t + 10, 1000, DAY_MS)
    assert not storage.claim_job("j", "b", t + 10, 1000, 0)  # forced, but a's lease is live
    assert storage.claim_job("j", "a", t + 500, 1000, DAY_MS)  # the holder renews
    assert not storage.claim_job("j", "b", t + 1200, 1000, 0)  # renewed until t + 1500
    storage.finish_job("j", "a", t + 1300)
    job = storage.get_job("j")
    assert job is not None
    assert (job.owner, job.last_run_ms) == (None, t + 1300)
    assert not storage.claim_job("j", "b", t + 2000, 1000, DAY_MS)  # ran less than a day ago
    assert storage.claim_job("j", "b", t + 2000, 1000, 0)  # forced
    storage.finish_job("j", "b", t + 2100, completed=False)  # stopped: the last run stays
    assert storage.get_job("j") == type(job)("j", None, 0, t + 1300)
    assert storage.claim_job("j", "c", t + 1300 + DAY_MS, 1000, DAY_MS)


def test_an_expired_lease_can_be_taken_over(storage: Storage) -> None:
    """A node that died holding the lease loses it when it expires."""
    t = 1_000_000_000_000
    assert storage.claim_job("j", "dead", t, 1000, HOUR_MS)
    assert not storage.claim_job("j", "live", t + 999, 1000, HOUR_MS)
    assert storage.claim_job("j", "live", t + 1000, 1000, HOUR_MS)
    storage.finish_job("j", "dead", t + 1001)  # too late: not the holder any more
    job = storage.get_job("j")
    assert job is not None
    assert job.owner == "live"
    assert job.last_run_ms is None


def test_two_nodes_racing_for_a_job_never_both_win(db_url: str) -> None:
    """Claims from two stores (two nodes) at the same instant: exactly one wins each round."""
    nodes = [open_storage(db_url), open_storage(db_url)]
    try:
        rounds = 30
        start = threading.Barrier(2)
        wins: list[list[int]] = [[], []]

        def node(index: int) -> None:
            for r in range(rounds):
                start.wait()
                if nodes[index].claim_job(f"race-{r}", f"node-{index}", 1000, 60_000, 0):
                    wins[index].append(r)

        threads = [threading.Thread(target=node, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(wins[0] + wins[1]) == list(range(rounds))
    finally:
        for s in nodes:
            s.close()


# -- the job -----------------------------------------------------------------------------------


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(ms(0) + 400 * DAY_MS)  # 2025-04-05: a year's retention expires 2024-04-05


def job_for(service: AuditService, clock: Clock, **options: Any) -> RetentionJob:
    defaults: dict[str, Any] = {"period": lambda: Period(years=1),
                                   "max_rows": lambda: 10_000_000}
    defaults.update(options)

    def record(e: AuditEvent) -> None:
        service.submit([e], screen=False)

    return RetentionJob(service.storage, record=record, clock=clock, **defaults)


def run_events(service: AuditService) -> list[AuditEvent]:
    return service.search(AuditQuery(actions=[ACTION]), limit=100).events


def test_a_run_deletes_expired_events_in_batches_and_records_itself(
        service: AuditService, clock: Clock) -> None:
    """The run event says what was deleted, under which settings, and how."""
    storage = service.storage
    store(storage, *[event(minutes=n) for n in range(25)])  # 2024-03-01: expired
    kept = store(storage, event(minutes=370 * 24 * 60))  # 2025-03-06: within the year
    metrics = Metrics()
    job = job_for(service, clock, batch_size=10, pause_s=0, metrics=metrics, node="node-1")

    report = job.run()

    assert report is not None
    assert (report.deleted_by_age, report.deleted_by_row_limit, report.batches) == (25, 0, 3)
    assert report.completed
    assert ids_of(storage, AuditQuery(actions=["Repository created"]).to_ast()) == kept
    [recorded] = run_events(service)
    assert (recorded.type.category, recorded.type.area.value, recorded.type.level.value) == \
        ("Auditing", "AUDIT_LOG", "BASE")
    assert recorded.author == AuditAuthor.SYSTEM
    assert recorded.node == "node-1"
    attributes = {a.name: a.value for a in recorded.extra_attributes}
    assert attributes == {
        "Trigger": "schedule",
        "Outcome": "completed",
        "Retention period": "1 Year (P1Y)",
        "Deleted events older than": "2024-04-05T12:00:00Z",
        "Events deleted by age": "25",
        "Row limit": "10000000",
        "Rows kept when over the limit": "9999000",
        "Events deleted by row limit": "0",
        "Events deleted": "25",
        "Duration (ms)": "0",
        # For verifiers: nothing newer was deleted; Merkle leaves are kept from this event.
        "Deleted events up to": "2024-04-05T11:59:59.999Z",
        "Merkle leaves kept from event ID": str(kept[0]),
    }
    deleted = metrics.registry.get_sample_value("trailkeeper_events_deleted_total",
                                                {"reason": "age"})
    assert deleted == 25


def test_the_age_job_runs_at_most_every_23_hours_unless_forced(
        service: AuditService, clock: Clock) -> None:
    """A second scheduled run is skipped; a forced one runs; after 23 h it runs again."""
    job = job_for(service, clock)
    first = job.run()
    assert first is not None
    assert first.deleted == 0
    clock.now += 22 * HOUR_MS
    assert job.run() is None
    forced = job.run(force=True)
    assert forced is not None
    assert forced.trigger == "manual"
    clock.now += 23 * HOUR_MS
    assert job.run() is not None
    assert len(run_events(service)) == 3
    another_node = job_for(service, clock)
    assert another_node.run() is None  # once per cluster, whichever node asks


def test_a_run_leaves_the_lease_to_a_node_that_holds_it(service: AuditService,
                                                        clock: Clock) -> None:
    """Even forced, a run waits for a node in the middle of one."""
    assert service.storage.claim_job(AGE_JOB, "other-node", clock(), LEASE_MS, 0)
    assert job_for(service, clock).run(force=True) is None
    assert run_events(service) == []


def test_the_row_limit_keeps_the_newest_events(service: AuditService, clock: Clock) -> None:
    """Over the limit, the oldest go until limit - 1,000 remain, never below 10,000."""
    assert row_limit_bounds(10_000_000) == (10_000_000, 9_999_000)
    assert row_limit_bounds(10_500) == (10_500, MIN_ROWS)
    assert row_limit_bounds(5) == (MIN_ROWS, MIN_ROWS)
    storage = service.storage
    ids: list[int] = []
    for part in range(3):  # 10,500 events of one instant: the order is the ids'
        ids += store(storage, *[event(minutes=0, uid=f"e{part}-{n}") for n in range(3500)])
    job = job_for(service, clock, max_rows=lambda: 10_200, batch_size=300, pause_s=0)

    report = job.enforce_row_limit()

    assert report is not None
    assert (report.deleted_by_row_limit, report.batches) == (500, 2)
    assert report.trigger == "row limit check"
    assert storage.count(MatchAll()) == MIN_ROWS + 1  # and the run's own event
    assert storage.get(ids[499]) is None
    assert storage.get(ids[500]) is not None
    [recorded] = run_events(service)
    attributes = {a.name: a.value for a in recorded.extra_attributes}
    assert attributes["Trigger"] == "row limit check"
    assert "Retention period" not in attributes
    assert job.enforce_row_limit() is None  # hourly
    clock.now += HOUR_MS
    nothing = job.enforce_row_limit()
    assert nothing is not None
    assert nothing.deleted == 0
    assert len(run_events(service)) == 1  # a check that deleted nothing is not recorded


def test_stopping_ends_a_run_after_its_batch_and_records_it(service: AuditService,
                                                           clock: Clock) -> None:
    """A stopped run is recorded as such and lets the next check try again."""
    store(service.storage, *[event(minutes=n) for n in range(30)])
    job = job_for(service, clock, batch_size=10, pause_s=0)
    original = service.storage.delete_events_before
    calls = 0

    def delete_then_stop(cutoff: int, limit: int) -> int:
        nonlocal calls
        calls += 1
        job.stop()
        return original(cutoff, limit)

    service.storage.delete_events_before = delete_then_stop  # type: ignore[method-assign,assignment]
    report = job.run()
    assert report is not None
    assert (report.deleted, report.completed, calls) == (10, False, 1)
    [recorded] = run_events(service)
    assert {a.name: a.value for a in recorded.extra_attributes}["Outcome"] == \
        "stopped before the end"
    status = service.storage.get_job(AGE_JOB)
    assert status is not None
    assert (status.owner, status.last_run_ms) == (None, None)


def test_a_run_stops_when_another_node_took_its_lease_over(service: AuditService,
                                                          clock: Clock) -> None:
    """A node that stalled past its lease stops deleting and leaves the lease alone."""
    storage = service.storage
    store(storage, *[event(minutes=n) for n in range(30)])
    job = job_for(service, clock, batch_size=10, pause_s=0)
    original = storage.delete_events_before

    def stalling_delete(cutoff: int, limit: int) -> int:
        deleted = original(cutoff, limit)
        clock.now += LEASE_MS  # this node stalls; the lease expires, another node takes it
        assert storage.claim_job(AGE_JOB, "node-b", clock.now, LEASE_MS, 0)
        return deleted

    storage.delete_events_before = stalling_delete  # type: ignore[method-assign,assignment]
    report = job.run()
    assert report is not None
    assert (report.deleted, report.completed) == (10, False)
    holder = storage.get_job(AGE_JOB)
    assert holder is not None
    assert holder.owner == "node-b"
    [recorded] = run_events(service)
    assert {a.name: a.value for a in recorded.extra_attributes}["Events deleted"] == "10"


def test_the_scheduler_runs_both_jobs_and_stops(service: AuditService, clock: Clock) -> None:
    """`RetentionScheduler` checks on its thread, once per due job, and stops cleanly."""
    store(service.storage, *[event(minutes=n) for n in range(5)])
    scheduler = RetentionScheduler(job_for(service, clock), check_every_s=0.05,
                                   first_check_s=0)
    scheduler.start()
    try:
        for _ in range(200):
            if service.storage.get_job(ROW_LIMIT_JOB) is not None and run_events(service):
                break
            threading.Event().wait(0.02)
    finally:
        scheduler.stop()
    assert len(run_events(service)) == 1
    assert service.count(AuditQuery(actions=["Repository created"])) == 0
    assert not scheduler._thread or not scheduler._thread.is_alive()


def test_report_names_a_failure() -> None:
    """An error is part of the outcome an administrator reads."""
    report = RetentionReport("schedule", 0, 5, None, None, 10, 10, 0, 0, 0, False, "disk full")
    assert report.outcome == "failed: disk full"
    assert ("Duration (ms)", "5") in report.attributes()


# -- the command line ------------------------------------------------------------------------


def cli_run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def filled(db_url: str) -> str:
    """A store with 7 events from 2024 and one from now."""
    storage = open_storage(db_url)
    try:
        store(storage, *[old_event(n) for n in range(7)])
        store(storage, dataclasses.replace(rich_event(uid="fresh"), timestamp=datetime.now(UTC)))
    finally:
        storage.close()
    return db_url


def test_retention_run_deletes_now_and_prints_a_summary(filled: str) -> None:
    """`trailkeeper retention run` deletes what has expired and records the run."""
    code, output = cli_run("retention", "run", "--db", filled, "--period", "P1Y",
                           "--batch-size", "3")
    assert code == 0, output
    assert "Retention run completed" in output
    assert "deleted by age        7" in output
    assert "1 Year (P1Y)" in output
    service = AuditService.open(filled)
    try:
        assert [e.uid for e in service.search(AuditQuery(actions=["Repository created"])
                                              ).events] == ["fresh"]
        [recorded] = run_events(service)
        attributes = {a.name: a.value for a in recorded.extra_attributes}
        assert (attributes["Trigger"], attributes["Events deleted by age"]) == ("manual", "7")
        assert attributes["Started by"].startswith("os:")
    finally:
        service.close()


def test_retention_run_prints_json_and_runs_again_when_asked(filled: str) -> None:
    """A second run right after the first is not refused (it is forced) and finds nothing."""
    code, output = cli_run("retention", "run", "--db", filled, "--period", "P1Y", "--json")
    assert code == 0, output
    assert orjson.loads(output.splitlines()[-1])["deleted_by_age"] == 7
    code, output = cli_run("retention", "run", "--db", filled, "--period", "P1Y", "--json")
    report = orjson.loads(output.splitlines()[-1])
    assert (code, report["deleted"], report["outcome"]) == (0, 0, "completed")


def test_retention_status_shows_the_settings_and_the_last_run(filled: str) -> None:
    """Before any run: never run; after one: when, and the settings it used."""
    code, output = cli_run("retention", "status", "--db", filled)
    assert code == 0, output
    assert "never run" in output
    assert "3 Years (P3Y)" in output
    assert "10,000,000" in output
    cli_run("retention", "run", "--db", filled, "--period", "P2Y", "--max-rows", "20000")
    code, output = cli_run("retention", "status", "--db", filled, "--json")
    assert code == 0, output
    status = orjson.loads(output)
    assert status["age_job"]["last_run"] is not None
    assert status["last_run_event"]["attributes"]["Retention period"] == "2 Years (P2Y)"
    assert status["last_run_event"]["attributes"]["Row limit"] == "20000"
    code, output = cli_run("retention", "status", "--db", filled)
    assert "last run 20" in output
    assert "Events deleted by age" in output


def test_retention_run_refuses_while_another_node_runs(filled: str) -> None:
    """A live lease elsewhere: nothing is deleted and the command says why."""
    storage = open_storage(filled)
    try:
        assert storage.claim_job(AGE_JOB, "node-b", int(datetime.now(UTC).timestamp() * 1000),
                                 LEASE_MS, 0)
    finally:
        storage.close()
    code, output = cli_run("retention", "run", "--db", filled, "--period", "P1Y")
    assert code == 1
    assert "another node is running retention now (node-b" in output


def test_retention_run_rejects_a_bad_period(filled: str) -> None:
    code, output = cli_run("retention", "run", "--db", filled, "--period", "3 years")
    assert code == 2
    assert "P3Y" in output
