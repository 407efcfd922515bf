"""Tamper detection in a store (issue 7): a thousand random single tamperings of a hashed
store, each made with plain SQL as someone with write access to the database would, are
every one detected, and the first problem names the event edited, deleted, inserted or
swapped; the untouched store always verifies. On SQLite and PostgreSQL.

The seed of the random tamperings is new at each run and printed with any failure;
``TRAILKEEPER_TAMPER_SEED=<seed>`` runs the same tamperings again.
"""

from __future__ import annotations

import os
import random
import secrets
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.conftest import BACKENDS
from tests.integrity.tampering import (
    STORE_TAMPERINGS,
    HashedStore,
    StoreSql,
    Tampering,
    build_store,
    describe_store,
    draw_store_tampering,
    empty_store,
    explain,
    scratch_database,
)
from trailkeeper.ingest.service import AuditService
from trailkeeper.integrity.report import Report
from trailkeeper.storage import open_storage

SEED = int(os.environ.get("TRAILKEEPER_TAMPER_SEED") or secrets.randbits(32))
TAMPERINGS = 1000
UNTOUCHED_EVERY = 100  # iterations between two checks that the restored store verifies


@pytest.fixture(scope="module", params=BACKENDS)
def hashed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[HashedStore]:
    """About 320 demo events in a store of their own, some deleted before they were hashed
    (ids with gaps), hashed in batches with a checkpoint every 90 leaves and one over all."""
    directory = tmp_path_factory.mktemp(f"tamper-{request.param}")
    key = directory / "checkpoint.key"
    with scratch_database(str(request.param), directory) as url:
        with AuditService.open(url) as service:
            build_store(url, service, key, count=340, seed=5)
        storage = open_storage(url)
        try:
            yield describe_store(url, storage, key)
        finally:
            storage.close()


def judge(tampering: Tampering, report: Report) -> str | None:
    """What is wrong with the verifier's report of a tampering (None: it was detected as it
    should be)."""
    if tampering.uncovered is not None:
        if report.exit_code() != 3 or not report.ok or \
                report.uncovered_range != (tampering.uncovered, tampering.uncovered):
            return f"not reported as the one event not covered (exit {report.exit_code()})"
        return None
    if report.ok:  # exit 0, or 3 (only uncovered events) which must not excuse tampering
        return f"NOT DETECTED (exit {report.exit_code()})"
    first = report.problems[0].event_id
    if tampering.first_event is not None and first not in tampering.first_event:
        return f"the first problem names #{first}, not #{sorted(tampering.first_event)}"
    kinds = {p.kind for p in report.problems}
    if tampering.expect_kinds is not None and not tampering.expect_kinds & kinds:
        return f"no problem of kind {sorted(tampering.expect_kinds)} among {sorted(kinds)}"
    return None


def test_the_untouched_store_verifies(hashed: HashedStore) -> None:
    """The store the tamperings start from verifies: every event under a checkpoint, and it
    has what each kind of tampering needs (gaps in its ids, several checkpoints, two leaf
    tiles and a tile of hashes above them)."""
    report = hashed.verify()
    assert report.exit_code() == 0, explain(report)
    assert report.events_verified == hashed.size
    assert report.checkpoints_verified == len(hashed.checkpoints) >= 4
    assert hashed.gaps and len(hashed.leaf_tiles) >= 2 and hashed.node_tiles
    assert hashed.verify(kept=True).exit_code() == 0


def test_a_thousand_random_tamperings_of_a_store_are_each_detected(hashed: HashedStore
                                                                    ) -> None:
    """Each random single tampering of the events, the tree's tiles or the checkpoints is
    found by the verifier (the first problem naming the event edited, deleted, inserted or
    swapped), whether its event pass runs whole or in parts, and the store put back
    verifies again."""
    rng = random.Random(SEED)
    sql = StoreSql(hashed.url)
    untouched = sql.fingerprint()
    failures: list[str] = []
    drawn: Counter[str] = Counter()
    try:
        for n in range(1, TAMPERINGS + 1):
            tampering = draw_store_tampering(sql, hashed, rng)
            drawn[tampering.kind] += 1
            try:
                # Every other time with the event pass cut into one part per leaf tile, as a
                # large store's is to be shared among processes.
                report = hashed.verify(kept=tampering.needs_kept_checkpoint,
                                       tiles_per_part=1 if n % 2 else None)
                wrong = judge(tampering, report)
                if wrong is not None:
                    failures.append(f"#{n} {tampering.kind}: {tampering.what}\n  {wrong}\n"
                                    f"  {explain(report)}")
            except Exception as exc:  # a verifier that crashes on tampered data is wrong too
                failures.append(f"#{n} {tampering.kind}: {tampering.what}\n  the verifier "
                                f"raised {exc!r}")
            sql.restore()
            if n % UNTOUCHED_EVERY == 0 or n == TAMPERINGS:
                assert sql.fingerprint() == untouched, f"seed {SEED}: #{n} was not undone"
                report = hashed.verify()
                assert report.exit_code() == 0, f"seed {SEED}, after #{n}: {explain(report)}"
    finally:
        sql.restore()
        sql.drop_holding_tables()
        sql.close()
    assert not failures, (f"seed {SEED} (TRAILKEEPER_TAMPER_SEED={SEED} to replay): "
                          f"{len(failures)} of {TAMPERINGS} tamperings not detected as they "
                          "should be:\n" + "\n".join(failures[:10]))
    assert len(drawn) == len(STORE_TAMPERINGS), f"seed {SEED}: only these kinds drawn: {drawn}"


def test_worker_processes_find_what_one_process_finds(hashed: HashedStore) -> None:
    """The event pass shared with a worker process (one part per leaf tile, as a large
    store's is cut): the untouched store verifies with each event counted once, and two
    events swapped across parts, or the last event deleted, are reported as one process
    reports them."""
    assert len(hashed.leaf_tiles) >= 2
    report = hashed.verify(tiles_per_part=1, jobs=2)
    assert report.exit_code() == 0, explain(report)
    assert report.events_verified == hashed.size
    first, last = hashed.ids[0], hashed.ids[-1]  # in the first and the last leaf tile
    sql = StoreSql(hashed.url)
    try:
        sql.save("events", "id IN (?, ?)", first, last)
        (_, doc_first), (_, doc_last) = sql.rows(
            "SELECT ts, doc FROM events WHERE id IN (?, ?) ORDER BY id", first, last)
        sql.run("UPDATE events SET doc = ? WHERE id = ?", doc_last, first)
        sql.run("UPDATE events SET doc = ? WHERE id = ?", doc_first, last)
        swapped = hashed.verify(tiles_per_part=1, jobs=2)
        sql.restore()
        sql.save("events", "id = ?", last)
        sql.run("DELETE FROM events WHERE id = ?", last)
        deleted = hashed.verify(tiles_per_part=1, jobs=2)
    finally:
        sql.restore()
        sql.drop_holding_tables()
        sql.close()
    assert swapped.problems[0].event_id == first, explain(swapped)
    assert {p.event_id for p in swapped.problems if p.kind == "reordered"} == {first, last}, \
        explain(swapped)
    assert [(p.kind, p.event_id) for p in deleted.problems] == [("deleted", last)], \
        explain(deleted)
    assert hashed.verify(tiles_per_part=1, jobs=2).exit_code() == 0


def test_a_timestamp_respelled_in_the_stored_document_is_detected(hashed: HashedStore
                                                                   ) -> None:
    """A stored document whose timestamp says the same instant otherwise ("2026-05-28X10…"
    for "2026-05-28T10…") is an edited event: only Trailkeeper's own spelling is canonical,
    since clients are served the document as stored."""
    sql = StoreSql(hashed.url)
    event_id = hashed.ids[len(hashed.ids) // 2]
    try:
        doc = bytes(sql.one("SELECT doc FROM events WHERE id = ?", event_id))
        stamp = orjson.loads(doc)["timestamp"]
        at = doc.index(stamp.encode()) + 10
        assert doc[at:at + 1] == b"T"
        sql.save("events", "id = ?", event_id)
        sql.run("UPDATE events SET doc = ? WHERE id = ?", doc[:at] + b"X" + doc[at + 1:],
                event_id)
        report = hashed.verify()
    finally:
        sql.restore()
        sql.drop_holding_tables()
        sql.close()
    assert report.problems and report.problems[0].event_id == event_id, explain(report)


# -- small random stores -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_stores(request: pytest.FixtureRequest) -> dict[str, str]:
    """Where the property test builds its stores: a database of the session's for
    PostgreSQL (emptied for each store; the big store above has its own)."""
    return {"postgres": str(request.getfixturevalue("pg_url"))}


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(count=st.integers(2, 290), deleted=st.sampled_from([0.0, 0.1, 0.4]),
       every_events=st.integers(5, 200), batch_size=st.integers(1, 120),
       stages=st.integers(1, 3), kind=st.sampled_from([t for t, _ in STORE_TAMPERINGS]),
       seed=st.integers(0, 2**32 - 1))
def test_any_tampering_of_a_small_random_store_is_detected(
        backend: str, small_stores: dict[str, str], count: int, deleted: float,
        every_events: int, batch_size: int, stages: int, kind: object, seed: int) -> None:
    """Stores of any size (a few events to past one full leaf tile), with gaps or none and
    checkpoints often or rarely, verify untouched and not after any one tampering."""
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        url = small_stores.get(backend) or f"sqlite://{directory / 'audit.db'}"
        if backend == "postgres":
            open_storage(url).close()  # the tables exist
            empty_store(url)
        with AuditService.open(url) as service:
            build_store(url, service, directory / "checkpoint.key", count=count, seed=seed,
                        stages=stages, deleted=deleted, batch_size=batch_size,
                        every_events=every_events)
        storage = open_storage(url)
        sql = StoreSql(url)
        try:
            assume(sql.one("SELECT count(*) FROM events") >= 2)
            store = describe_store(url, storage, directory / "checkpoint.key")
            assert store.verify().exit_code() == 0, explain(store.verify())
            tampering = kind(sql, store, random.Random(seed))  # type: ignore[operator]
            assume(tampering is not None)
            report = store.verify(kept=tampering.needs_kept_checkpoint)
            wrong = judge(tampering, report)
            assert wrong is None, f"{tampering.kind}: {tampering.what}\n{wrong}\n" \
                                  f"{explain(report)}"
            sql.restore()
            assert store.verify().exit_code() == 0
        finally:
            sql.drop_holding_tables()
            sql.close()
            storage.close()
