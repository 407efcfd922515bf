"""Tamper detection in exported files (issue 7): a thousand random single tamperings of a
directory of exported events — an NDJSON export with the JSON of the latest checkpoint, or
the file sink's audit log files with the checkpoint events among their lines and a signed
note kept beside them — are every one detected; the untouched directories verify.

Files do not depend on the store they came from (the same lines whichever backend wrote
them), so the stores here are SQLite only. The seed of the random tamperings is new at each
run and printed with any failure; ``TRAILKEEPER_TAMPER_SEED=<seed>`` replays it.
"""

from __future__ import annotations

import os
import random
import secrets
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.integrity.tampering import build_store, explain
from tests.integrity.tampering_files import (
    FILE_TAMPERINGS,
    EventFiles,
    draw_file_tampering,
    export_directory,
    sink_directory,
)
from trailkeeper.ingest.service import AuditService
from trailkeeper.integrity import record as checkpoint_record
from trailkeeper.integrity.keys import Verifier, generate_signer, read_verifier_key_file
from trailkeeper.integrity.report import Report
from trailkeeper.integrity.verify import Trust
from trailkeeper.integrity.verify_files import verify_directory

SEED = int(os.environ.get("TRAILKEEPER_TAMPER_SEED") or secrets.randbits(32))
TAMPERINGS = 1000


@dataclass
class Evidence:
    """A directory of exported events and the key that verifies its checkpoints."""

    files: EventFiles
    verifier: Verifier

    def verify(self, *, part_bytes: int | None = None, jobs: int = 1) -> Report:
        """The verifier's report; ``part_bytes`` cuts the files into parts of about so many
        bytes for hashing (in this process, or shared with ``jobs - 1`` workers)."""
        return verify_directory(self.files.directory, Trust([self.verifier]), jobs=jobs,
                                **({"part_bytes": part_bytes} if part_bytes else {}))

    def exit_code(self, report: Report) -> int:
        return report.exit_code(allow_uncovered=self.files.log_files)


def _hashed_store(directory: Path, *, seed: int, record_checkpoints: bool,
                  write: object) -> Evidence:
    url = f"sqlite://{directory / 'audit.db'}"
    out = directory / "evidence"
    out.mkdir()
    with AuditService.open(url) as service:
        build_store(url, service, directory / "checkpoint.key", count=400, seed=seed,
                    record_checkpoints=record_checkpoints)
        write(service.storage, out)  # type: ignore[operator]
        latest = service.storage.checkpoint()
    assert latest is not None
    files = EventFiles.read(out, "latest.json" if not record_checkpoints else
                            "kept.checkpoint", latest.last_id, log_files=record_checkpoints)
    return Evidence(files, read_verifier_key_file(directory / "checkpoint.key.pub"))


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    """About 380 events (ids with gaps) exported as NDJSON over three files in id order,
    with the JSON of the latest checkpoint (GET /api/v1/checkpoints/latest), which covers
    them all."""
    return _hashed_store(tmp_path_factory.mktemp("export"), seed=11, record_checkpoints=False,
                         write=export_directory)


@pytest.fixture(scope="module")
def audit_logs(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    """The audit log files the file sink wrote of a store whose checkpoints are recorded
    as events (over several files), with the latest checkpoint's note kept beside them."""
    return _hashed_store(tmp_path_factory.mktemp("sink"), seed=12, record_checkpoints=True,
                         write=sink_directory)


def test_an_untouched_export_verifies(export: Evidence) -> None:
    """Every exported event is under the checkpoint beside the files: exit 0."""
    report = export.verify()
    assert report.exit_code() == 0, explain(report)
    assert report.events_verified == len(export.files.lines) == export.files.covered
    assert len({name for name, _ in export.files.lines}) == 3 and export.files.gaps


def test_untouched_audit_log_files_verify_but_for_the_newest_checkpoint_event(
        audit_logs: Evidence) -> None:
    """Every line is under a checkpoint but the last, the event recording the latest
    checkpoint, which no checkpoint covers yet: exit 3, or 0 allowing that."""
    report = audit_logs.verify()
    files = audit_logs.files
    assert report.exit_code(allow_uncovered=True) == 0, explain(report)
    assert report.exit_code() == 3
    assert report.uncovered == len(files.lines) - files.covered == 1
    assert report.events_verified == files.covered
    assert report.checkpoints_verified >= 4
    assert len({name for name, _ in files.lines}) >= 3 and files.gaps


def test_a_thousand_random_tamperings_of_exported_files_are_each_detected(
        export: Evidence, audit_logs: Evidence) -> None:
    """Each random single tampering of a line (edit a byte, delete, duplicate, forge, swap,
    cut off the end) or of the checkpoint kept beside the lines makes verification fail,
    in an export and in audit log files alike; put back, they verify again."""
    rng = random.Random(SEED)
    failures: list[str] = []
    drawn: Counter[str] = Counter()
    for n in range(1, TAMPERINGS + 1):
        evidence = rng.choice([export, audit_logs])
        where = f"#{n}"
        try:
            tampering = draw_file_tampering(evidence.files, rng)
            drawn[tampering.kind] += 1
            where = f"#{n} {evidence.files.directory.parent.name} {tampering.kind}: " \
                    f"{tampering.what}"
            # Every other time the files are hashed in parts of about a line, cut anywhere.
            report = evidence.verify(part_bytes=997 if n % 2 else None)
            if evidence.exit_code(report) == 0:
                failures.append(f"{where}\n  NOT DETECTED: {explain(report)}")
        except Exception as exc:  # a verifier that crashes on tampered files is wrong too
            failures.append(f"{where}\n  the verifier raised {exc!r}")
        finally:
            evidence.files.restore()
    for evidence in (export, audit_logs):
        report = evidence.verify()
        assert evidence.exit_code(report) == 0, f"seed {SEED}: {explain(report)}"
    assert not failures, (f"seed {SEED} (TRAILKEEPER_TAMPER_SEED={SEED} to replay): "
                          f"{len(failures)} of {TAMPERINGS} tamperings not detected:\n"
                          + "\n".join(failures[:10]))
    assert len(drawn) == len(FILE_TAMPERINGS), f"seed {SEED}: only these drawn: {drawn}"


def test_parts_and_workers_report_what_one_pass_reports(export: Evidence,
                                                        audit_logs: Evidence) -> None:
    """The files hashed in small parts (cut inside lines), in this process or shared with a
    worker process, give the very report of one pass: the same counts and the same
    problems, in order, at the same file and line, untouched and tampered with."""
    def outcome(report: Report) -> tuple[object, ...]:
        return (report.events_verified, report.uncovered, report.unplaced,
                report.problem_count, [p.to_json() for p in report.problems])

    for evidence in (export, audit_logs):
        files = evidence.files
        lines = list(files.lines)
        k = len(lines) // 2
        tampered = [*lines[:k - 1], lines[k], lines[k - 1], (lines[k + 1][0], b"not json"),
                    *lines[k + 2:]]
        try:
            for state in ("untouched", "tampered"):
                if state == "tampered":
                    files.write_lines(tampered)
                whole = outcome(evidence.verify())
                assert outcome(evidence.verify(part_bytes=1500)) == whole, state
                assert outcome(evidence.verify(part_bytes=1500, jobs=2)) == whole, state
        finally:
            files.restore()
        assert whole[3] >= 2 and {p["kind"] for p in whole[4]} >= {"reordered", "unreadable"}


def test_a_checkpoint_on_a_files_first_line_is_read_once(audit_logs: Evidence) -> None:
    """Audit log files that begin with a checkpoint record (rotation put it first): the
    record is one checkpoint, checked once; with a key that did not sign it, one problem."""
    files = audit_logs.files
    mark = checkpoint_record.ACTION.encode()
    k = next(n for n, (_, raw) in enumerate(files.lines) if n and mark in raw)
    first_id = orjson.loads(files.lines[k][1])["id"]
    stranger = generate_signer("stranger.example/log").verifier()
    try:
        files.write_lines(files.lines[k:])
        report = verify_directory(files.directory, Trust([stranger]))
    finally:
        files.restore()
    about_first = [p for p in report.problems if p.where == f"checkpoint event #{first_id}"]
    assert len(about_first) == 1, explain(report)


def test_audit_log_files_missing_their_oldest_line_never_verify(audit_logs: Evidence
                                                                 ) -> None:
    """Audit log files that start after the log's first event, with nothing beside them to
    place their first events in the tree (a range, GET /api/v1/integrity/range), are not
    verified even allowing the newest events uncovered: the events before the first
    checkpoint in them cannot be checked, whether rotation or someone removed the rest."""
    files = audit_logs.files
    try:
        files.write_lines(files.lines[1:])
        report = audit_logs.verify()
    finally:
        files.restore()
    assert report.ok and report.exit_code(allow_uncovered=True) == 3, explain(report)
    assert report.unplaced > 0


def test_a_first_line_renumbered_into_a_gap_never_verifies(tmp_path: Path) -> None:
    """Audit log files whose first line's id was changed (one byte, "id":1 to "id":2, where
    event 2 was deleted before it was hashed), so that they look rotated, do not verify:
    their first events cannot be placed in the tree."""
    url = f"sqlite://{tmp_path / 'audit.db'}"
    out = tmp_path / "evidence"
    out.mkdir()
    with AuditService.open(url) as service:
        build_store(url, service, tmp_path / "checkpoint.key", count=60, seed=3, deleted=0,
                    stages=1, every_events=20, batch_size=10, record_checkpoints=True,
                    delete_ids=(2,))
        sink_directory(service.storage, out)
        latest = service.storage.checkpoint()
    assert latest is not None
    evidence = Evidence(EventFiles.read(out, "kept.checkpoint", latest.last_id, log_files=True),
                        read_verifier_key_file(tmp_path / "checkpoint.key.pub"))
    assert evidence.exit_code(evidence.verify()) == 0
    first = sorted(out.glob("*.audit.log"))[0]
    data = first.read_bytes()
    assert data.count(b'"id":1,') == 1 and evidence.files.ids()[:2] == [1, 3]
    first.write_bytes(data.replace(b'"id":1,', b'"id":2,'))
    report = evidence.verify()
    assert evidence.exit_code(report) == 3 and report.unplaced, explain(report)
