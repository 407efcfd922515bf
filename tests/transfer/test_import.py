"""`trailkeeper import`: every format into both stores and into a server, each event once."""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import ADMIN_PASSWORD, LiveServer, free_port
from tests.transfer.helpers import (
    content,
    event_content,
    invoke,
    log_lines,
    sample_events,
    stored,
    uid_counts,
    write_log,
)
from trailkeeper.errors import AuthenticationError, UnavailableError
from trailkeeper.export.csv import atlassian_csv
from trailkeeper.model.event import AuditAuthor, AuditEvent
from trailkeeper.query.ast import MatchAll
from trailkeeper.storage import open_storage
from trailkeeper.storage.rows import Batch, encode
from trailkeeper.transfer import Importer, Problem, ServerTarget, StoreTarget


def import_json(*args: str) -> tuple[int, dict[str, object], str]:
    """Run ``trailkeeper import ARGS --json``: exit status, summary, stderr."""
    result = invoke("import", *args, "--json", "--no-progress")
    return result.exit_code, json.loads(result.stdout), result.stderr


def atlassian_directory(root: Path, events: list[AuditEvent], per_file: int) -> Path:
    """Log files as an Atlassian node rotates them: YYYYMMDD.NNNNN.audit.log."""
    folder = root / "log" / "audit"
    for n, start in enumerate(range(0, len(events), per_file)):
        write_log(folder / f"20240601.{n:05d}.audit.log", events[start:start + per_file])
    return folder


def test_an_atlassian_log_directory_is_stored_event_for_event(tmp_path: Path,
                                                             db_url: str) -> None:
    events = sample_events(250)
    folder = atlassian_directory(tmp_path, events, per_file=100)
    code, summary, stderr = import_json(str(folder), "--db", db_url)
    assert code == 0, stderr
    assert summary == {**summary, "files": 3, "records": 250, "stored": 250,
                       "already_present": 0, "bad": 0}
    docs = stored(db_url)
    assert sorted(content(d) for d in docs) == sorted(event_content(e) for e in events)
    assert all(d["uid"].startswith("imp-") for d in docs)
    assert "3 files, 250 records: 250 stored, 0 already present, 0 bad" in stderr


def test_importing_again_even_a_renamed_or_compressed_copy_stores_nothing(
        tmp_path: Path, db_url: str) -> None:
    events = sample_events(120)
    original = write_log(tmp_path / "20240601.00000.audit.log", events)
    assert import_json(str(original), "--db", db_url)[0] == 0
    renamed = tmp_path / "copy" / "backup.ndjson"
    renamed.parent.mkdir()
    shutil.copy(original, renamed)
    packed = tmp_path / "copy" / "20240601.00000.audit.log.gz"
    packed.write_bytes(gzip.compress(original.read_bytes()))
    for again in (original, renamed, packed):
        code, summary, _ = import_json(str(again), "--db", db_url)
        assert code == 0
        assert (summary["stored"], summary["already_present"]) == (0, 120)
    assert sum(uid_counts(db_url).values()) == 120


def test_the_same_events_from_a_rest_export_and_a_log_file_are_stored_once(
        tmp_path: Path, db_url: str) -> None:
    events = sample_events(40)
    log = write_log(tmp_path / "20240601.00000.audit.log", events)
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"entities": [e.to_rest() for e in reversed(events)]}))
    assert import_json(str(log), "--db", db_url)[1]["stored"] == 40
    code, summary, _ = import_json(str(export), "--db", db_url)
    assert (code, summary["stored"], summary["already_present"]) == (0, 0, 40)


def test_an_atlassian_rest_export_overlapping_the_log_files_adds_only_what_they_lack(
        tmp_path: Path, db_url: str) -> None:
    """Atlassian's REST entities have no area and level: the events of the overlap are
    recognised anyway, and the older ones (only in the export) are stored."""
    events = sample_events(30)
    log = write_log(tmp_path / "20240601.00000.audit.log", events[10:])
    entities = [e.to_rest() for e in reversed(events[:20])]
    for entity in entities:
        del entity["type"]["area"], entity["type"]["level"]
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"entities": entities}))
    assert import_json(str(log), "--db", db_url)[1]["stored"] == 20
    code, summary, stderr = import_json(str(export), "--db", db_url)
    assert (code, summary["stored"], summary["already_present"], summary["bad"]) == \
        (0, 10, 10, 0), stderr
    assert len(stored(db_url)) == 30


@pytest.mark.parametrize("form", ["ndjson-rest", "json-entities", "json-array", "csv",
                                  "gzip-log"])
def test_every_input_format_imports(tmp_path: Path, db_url: str, form: str) -> None:
    events = sample_events(30)
    path = tmp_path / {"ndjson-rest": "events.ndjson", "json-entities": "page.json",
                       "json-array": "events.json", "csv": "export.csv",
                       "gzip-log": "20240601.00000.audit.log.gz"}[form]
    rest = [e.to_rest() for e in events]
    data = {
        "ndjson-rest": lambda: b"".join(orjson.dumps(r) + b"\n" for r in rest),
        "json-entities": lambda: json.dumps({"entities": rest}, indent=2).encode(),
        "json-array": lambda: orjson.dumps(rest),
        "csv": lambda: b"".join(atlassian_csv(events)),
        "gzip-log": lambda: gzip.compress(log_lines(events)),
    }[form]()
    path.write_bytes(data)
    code, summary, stderr = import_json(str(path), "--db", db_url)
    assert (code, summary["records"], summary["stored"], summary["bad"]) == (0, 30, 30, 0), \
        stderr
    docs = stored(db_url)
    assert sorted(d["timestamp"] for d in docs) == sorted(r["timestamp"] for r in rest)
    if form != "csv":  # the CSV keeps no area, level or i18n keys
        assert sorted(content(d) for d in docs) == sorted(event_content(e) for e in events)
    # Imported twice, stored once.
    assert import_json(str(path), "--db", db_url)[1]["already_present"] == 30


def test_bad_and_truncated_records_are_reported_by_file_and_line_and_the_rest_stored(
        tmp_path: Path, db_url: str) -> None:
    events = sample_events(6)
    broken = orjson.loads(events[2].file_line())
    broken["auditType"]["level"] = "NOPE"
    data = (log_lines(events[:2]) + orjson.dumps(broken) + b"\n" + b"\x00\x00\x00\n"
            + log_lines(events[3:]))
    path = tmp_path / "20240601.00000.audit.log"
    path.write_bytes(data[:-25])  # and the last line cut short
    code, summary, stderr = import_json(str(path), "--db", db_url)
    assert code == 2
    assert (summary["records"], summary["stored"], summary["bad"]) == (7, 4, 3)
    reported = [line for line in stderr.splitlines() if line.startswith(str(path))]
    assert [line.removeprefix(f"{path}:").split(":")[0] for line in reported] == \
        ["3", "4", "7"]
    assert "auditType.level: 'NOPE' is not one of BASE, ADVANCED, FULL" in reported[0]
    assert "malformed JSON" in reported[1]
    assert "truncated" in reported[2]
    assert len(stored(db_url)) == 4


def test_identical_records_in_one_file_are_all_kept(tmp_path: Path, db_url: str) -> None:
    event = sample_events(1)[0]
    path = write_log(tmp_path / "20240601.00000.audit.log", [event, event, event])
    code, summary, _ = import_json(str(path), "--db", db_url)
    assert (code, summary["stored"]) == (0, 3)
    uids = sorted(uid_counts(db_url))
    assert uids == [uids[0], f"{uids[0]}-1", f"{uids[0]}-2"]
    assert import_json(str(path), "--db", db_url)[1]["already_present"] == 3


def test_events_that_carry_a_uid_keep_it(tmp_path: Path, db_url: str) -> None:
    events = [dataclasses.replace(e, uid=f"app-{n}") for n, e in enumerate(sample_events(3))]
    path = write_log(tmp_path / "events.ndjson", events)
    assert import_json(str(path), "--db", db_url)[0] == 0
    assert sorted(uid_counts(db_url)) == ["app-0", "app-1", "app-2"]


def test_a_uid_already_stored_with_other_content_is_a_bad_record(tmp_path: Path,
                                                                 db_url: str) -> None:
    first, second = sample_events(2)
    storage = open_storage(db_url)
    try:
        taken = encode(dataclasses.replace(first, uid="app-1"), 0, AuditAuthor.UNKNOWN)
        storage.append([Batch.of([taken], storage.prepare([taken]))])
    finally:
        storage.close()
    path = write_log(tmp_path / "events.ndjson",
                     [dataclasses.replace(second, uid="app-1"), second])
    code, summary, stderr = import_json(str(path), "--db", db_url)
    assert (code, summary["stored"], summary["bad"]) == (2, 1, 1)
    assert f"{path}:1: uid 'app-1' is already stored" in stderr


def test_worker_processes_store_exactly_what_the_importing_process_would(
        tmp_path: Path, db_url: str) -> None:
    events = sample_events(400)
    # Identical records far apart in one file, in different pieces: still told apart.
    events[300:305] = events[100:105]
    folder = atlassian_directory(tmp_path, events[:95], per_file=95)
    write_log(folder / "20240601.00001.audit.log", events[95:])
    problems: list[Problem] = []
    summary = Importer(StoreTarget(db_url), workers=2, chunk_bytes=16 * 1024,
                       on_problem=problems.append).run([folder])
    assert (summary.records, summary.stored, summary.bad, problems) == (400, 400, 0, [])
    with_workers = uid_counts(db_url)
    assert set(with_workers.values()) == {1}
    # The same files read inline into an empty store give the same uids.
    inline_url = f"sqlite://{tmp_path / 'inline.db'}"
    Importer(StoreTarget(inline_url), workers=0).run([folder])
    assert uid_counts(inline_url) == with_workers
    again = Importer(StoreTarget(db_url), workers=2, chunk_bytes=16 * 1024).run([folder])
    assert (again.stored, again.present) == (0, 400)


def test_an_identical_record_in_another_file_counts_as_the_same_event(
        tmp_path: Path, db_url: str) -> None:
    """Occurrences are counted per file: a record found again in another file is the event
    of the first (a copy, or the same events exported twice), not a new one."""
    events = sample_events(4)
    folder = atlassian_directory(tmp_path, events + events[:1], per_file=4)
    summary = Importer(StoreTarget(db_url)).run([folder])
    assert (summary.stored, summary.present) == (4, 1)


def test_worker_processes_report_bad_records_in_file_order(tmp_path: Path) -> None:
    events = sample_events(200)
    lines = log_lines(events).splitlines(keepends=True)
    for n in (10, 90, 150):
        lines[n] = b'{"auditType": 7}\n'
    path = tmp_path / "20240601.00000.audit.log"
    path.write_bytes(b"".join(lines))
    problems: list[Problem] = []
    summary = Importer(StoreTarget(f"sqlite://{tmp_path / 'a.db'}"), workers=2,
                       chunk_bytes=8 * 1024, on_problem=problems.append).run([path])
    assert [p.line for p in problems] == [11, 91, 151]
    assert (summary.stored, summary.bad) == (197, 3)


def test_a_directory_is_read_in_name_order_and_files_that_are_not_audit_logs_reported(
        tmp_path: Path, db_url: str) -> None:
    events = sample_events(20)
    folder = atlassian_directory(tmp_path, events, per_file=5)
    (folder / "README.txt").write_text("not an audit log\n")
    (folder / ".hidden").write_text("ignored\n")
    problems: list[Problem] = []
    summary = Importer(StoreTarget(db_url), on_problem=problems.append).run([folder])
    assert (summary.files, summary.stored, summary.bad, summary.skipped_files) == (5, 20, 0, 1)
    assert "5 files (1 skipped), 20 records: 20 stored" in summary.text()
    assert [p.source for p in problems] == [str(folder / "README.txt")]
    ids_in_time_order = [d["id"] for d in sorted(stored(db_url), key=lambda d: d["timestamp"])]
    assert ids_in_time_order == sorted(ids_in_time_order)


def test_the_default_store_is_the_one_in_home(tmp_path: Path) -> None:
    path = write_log(tmp_path / "20240601.00000.audit.log", sample_events(4))
    home = tmp_path / "home"
    result = invoke("import", str(path), "--home", str(home), "--no-progress")
    assert result.exit_code == 0, result.output
    assert len(stored(f"sqlite://{home / 'audit.db'}")) == 4


def test_the_progress_bar_can_be_asked_for(tmp_path: Path) -> None:
    path = write_log(tmp_path / "20240601.00000.audit.log", sample_events(4))
    result = invoke("import", str(path), "--db", f"sqlite://{tmp_path / 'a.db'}",
                    "--progress")
    assert result.exit_code == 0, result.output
    assert "4 records: 4 stored" in result.stderr


def test_events_go_to_a_server_with_a_user_and_password(tmp_path: Path,
                                                        server: LiveServer) -> None:
    events = sample_events(50)
    path = write_log(tmp_path / "20240601.00000.audit.log", events)
    code, summary, stderr = import_json(str(path), "-H", server.base_url, "-u", "admin",
                                        "-p", ADMIN_PASSWORD)
    assert code == 0, stderr
    assert (summary["stored"], summary["already_present"], summary["bad"]) == (50, None, 0)
    assert "already present" in stderr and "unknown" in stderr
    code, summary, _ = import_json(str(path), "-H", server.base_url, "-u", "admin",
                                   "-p", ADMIN_PASSWORD)
    assert code == 0
    stored_uids = collections.Counter(orjson.loads(row.doc)["uid"]
                                      for row in server.service.storage.stream(MatchAll()))
    assert len(stored_uids) == 50 and set(stored_uids.values()) == {1}


def test_an_event_the_server_refuses_is_reported_by_file_and_line(
        tmp_path: Path, server: LiveServer) -> None:
    first, second = sample_events(2)
    taken = dataclasses.replace(first, uid="app-1")
    with server.client() as http:
        http.post("/api/v1/events", content=orjson.dumps(taken.to_rest())).raise_for_status()
    path = write_log(tmp_path / "events.ndjson",
                     [second, dataclasses.replace(second, uid="app-1")])
    problems: list[Problem] = []
    summary = Importer(ServerTarget(server.base_url, "admin", ADMIN_PASSWORD),
                       on_problem=problems.append).run([path])
    assert (summary.stored, summary.bad) == (1, 1)
    [problem] = problems
    assert problem.line == 2
    assert problem.message.startswith("refused by the server (HTTP 409)")


def test_wrong_credentials_stop_the_import_instead_of_refusing_every_event(
        tmp_path: Path, server: LiveServer) -> None:
    path = write_log(tmp_path / "20240601.00000.audit.log", sample_events(3))
    with pytest.raises(AuthenticationError, match="HTTP 401"):
        Importer(ServerTarget(server.base_url, "admin", "wrong password")).run([path])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILKEEPER_")}
    done = subprocess.run([sys.executable, "-m", "trailkeeper", "import", str(path), "-H",
                           server.base_url, "-u", "admin", "-p", "wrong"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "check -u/--user and the password" in done.stderr


def test_a_server_that_never_answers_is_given_up_on_after_the_timeout(
        tmp_path: Path) -> None:
    path = write_log(tmp_path / "20240601.00000.audit.log", sample_events(2))
    unreachable = ServerTarget(f"http://127.0.0.1:{free_port()}", patience_s=1.0)
    with pytest.raises(UnavailableError, match="has not acknowledged the events for 1 s"):
        Importer(unreachable).run([path])


def test_the_password_is_asked_for_when_only_the_user_is_given(tmp_path: Path,
                                                               server: LiveServer) -> None:
    path = write_log(tmp_path / "20240601.00000.audit.log", sample_events(2))
    result = invoke("import", str(path), "-H", server.base_url, "-u", "admin",
                    "--no-progress", input=ADMIN_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert ADMIN_PASSWORD not in result.output


def test_a_store_and_a_server_together_are_refused(tmp_path: Path) -> None:
    path = write_log(tmp_path / "20240601.00000.audit.log", sample_events(1))
    result = invoke("import", str(path), "--db", f"sqlite://{tmp_path}/a.db",
                    "-H", "http://127.0.0.1:1")
    assert result.exit_code == 2
    assert "either --db or -H/--host" in result.output


def test_a_skipped_file_is_named_and_makes_the_exit_status_2(tmp_path: Path) -> None:
    folder = atlassian_directory(tmp_path, sample_events(3), per_file=3)
    (folder / "notes.txt").write_text("remember the milk\n")
    code, summary, stderr = import_json(str(folder), "--db", f"sqlite://{tmp_path / 'a.db'}")
    assert (code, summary["stored"], summary["bad"], summary["skipped_files"]) == (2, 3, 0, 1)
    assert f"{folder / 'notes.txt'}: skipped: not an audit file" in stderr
