"""`trailkeeper search`: the seven examples of bfauditlog's manual (seed 004), as written,
against a local store and a real server, plus the options' edge cases."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import add_user, start_server, without_search_records
from trailkeeper.auth.principals import Role
from trailkeeper.cli.main import cli
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.event import (
    AuditAttribute,
    AuditAuthor,
    AuditEvent,
    AuditResource,
    AuditType,
    ChangedValue,
)

START = datetime(2011, 5, 20, 9, 0, tzinfo=UTC)
ROOT = AuditAuthor("1", "root", "NORMAL")
SV = AuditAuthor("2", "sv", "NORMAL")
ALICE = AuditAuthor("3", "alice", "NORMAL")


def _build_forge_events() -> list[AuditEvent]:
    """Twenty days of a Build Forge-like log: projects created and re-levelled, steps run."""
    events = []
    authors = [ROOT, SV, ALICE]
    for day in range(20):
        when = START + timedelta(days=day)
        project = AuditResource("PROJECT", f"proj-{day}", str(100 + day))
        events.append(AuditEvent(
            AuditType("Project", "Create"), timestamp=when, author=authors[day % 3],
            affected_objects=(project,),
            extra_attributes=(AuditAttribute("Project Name", f"Project {day}"),)))
        old, new = str(day % 7), str(day // 7 + 2)
        events.append(AuditEvent(
            AuditType("Project", "Update"), timestamp=when + timedelta(hours=1),
            author=authors[(day + 1) % 3], affected_objects=(project,),
            changed_values=(ChangedValue("Level", old, new),)))
        events.append(AuditEvent(
            AuditType("Step", "Run"), timestamp=when + timedelta(hours=2),
            author=authors[(day + 2) % 3],
            affected_objects=(AuditResource("STEP", f"step-{day}", str(500 + day)),),
            changed_values=(ChangedValue("Run limit", "1", "2"),)))
    events.append(AuditEvent(AuditType("Security", "Access group created"),
                             timestamp=START, author=ROOT))
    return events


EVENTS = _build_forge_events()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('bf')}/audit.db"
    with AuditService.open(url) as service:
        # The tests count what searches find: no records of the searches themselves.
        without_search_records(service)
        service.submit(EVENTS)
    return url


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["search", *args], catch_exceptions=False)
    return result


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.output


def expected(where: object) -> list[AuditEvent]:
    chosen = [e for e in EVENTS if where(e)]  # type: ignore[operator]
    return sorted(chosen, key=lambda e: e.timestamp, reverse=True)  # type: ignore[arg-type,return-value]


def level(e: AuditEvent, side: str) -> int | None:
    for change in e.changed_values:
        if change.key == "Level":
            return int(change.from_value if side == "old" else change.to_value)  # type: ignore[arg-type]
    return None


# -- the seven examples -------------------------------------------------------------------

def test_example_1_lists_the_fields_of_classes(store: str) -> None:
    out = ok("--db", store, "-c", "Project,Step", "-L")
    assert "Fields of every class:" in out and "audit.stamp" in out
    assert "Fields of class Project:" in out and "soLevel, snLevel, ioLevel, inLevel" in out
    assert "sxProjectName" in out
    assert "Fields of class Step:" in out and "ioRunLimit" in out
    classes = ok("--db", store, "-L")
    assert classes.splitlines() == ["* Project", "* Security", "* Step"]


def test_example_2_project_creations_as_bare_csv(store: str) -> None:
    out = ok("--db", store, "-c", "Project", "-t", "CSV", "-f", "audit.target,",
             "sxProjectName", "--bare", "-l", "10", "audit.type:Create")
    rows = list(csv.reader(io.StringIO(out)))
    created = expected(lambda e: e.type.action == "Create")[:10]
    assert rows == [[f"proj-{19 - n} (PROJECT {119 - n})", f"Project {19 - n}"]
                    for n in range(10)]
    assert len(created) == 10


def test_example_3_the_100_most_recent_from_a_server(store: str, tmp_path: Path) -> None:
    with AuditService.open(store) as service:
        add_user(service.storage, "apiuser", "My$ecret", Role.AUDITOR)
        with start_server(service, tmp_path) as live:
            out = ok("-H", live.base_url.removeprefix("http://").split(":")[0],
                     "-P", str(live.port), "-d", "ExampleLDAP", "-u", "apiuser",
                     "-p", "My$ecret", "-l", "100")
            wrong = subprocess.run(
                [sys.executable, "-m", "trailkeeper", "search", "-H", live.base_url, "-u",
                 "apiuser", "-p", "nope", "-l", "1"], capture_output=True, text=True)
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["timestamp", "author"]
    assert lines[-1] == "61 matching entries"
    assert sum("Run" in line or "Create" in line or "Update" in line
               or "Access group" in line for line in lines) == 61
    assert wrong.returncode == 3 and "Invalid user name or password" in wrong.stderr


def test_example_4_a_date_range_covers_whole_days(store: str) -> None:
    out = ok("--db", store, "-t", "JSON", "audit.stamp:[2011/05/23 TO 2011/05/27]")
    body = json.loads(out)
    days = {e["timestamp"][:10] for e in body["events"]}
    assert days == {f"2011-05-{d}" for d in range(23, 28)}
    assert body["total"] == 15 == len(body["events"])


def test_example_5_inclusive_integer_ranges_on_old_and_new_values(store: str) -> None:
    out = ok("--db", store, "-c", "Project", "-t", "JSON", "ioLevel:[4 TO 6] AND inLevel:3")
    want = expected(lambda e: level(e, "old") in (4, 5, 6) and level(e, "new") == 3)
    assert len(want) == 3
    assert [e["id"] for e in json.loads(out)["events"]] == \
        [_id_of(e) for e in want]


def test_example_6_exclusive_ranges_and_alternatives(store: str) -> None:
    out = ok("--db", store, "-c", "Project", "-t", "JSON",
             "ioLevel:{3 TO 6} AND inLevel:(2 OR 3)")
    want = expected(lambda e: level(e, "old") in (4, 5) and level(e, "new") in (2, 3))
    assert len(want) == 4
    assert [e["id"] for e in json.loads(out)["events"]] == [_id_of(e) for e in want]


def test_example_7_users_classes_fields_and_a_page_as_csv(store: str) -> None:
    out = ok("--db", store, "-c", "Project,Step", "-f",
             "audit.class,audit.type,audit.target,audit.user,audit.stamp",
             "-a", "root,sv", "-l", "10,5", "-t", "CSV")
    rows = list(csv.reader(io.StringIO(out)))
    want = expected(lambda e: e.type.category in ("Project", "Step")
                    and e.author.name in ("root", "sv"))  # type: ignore[union-attr]
    assert rows[0] == ["audit.class", "audit.type", "audit.target", "audit.user", "audit.stamp"]
    assert [r[1:2] + r[3:4] for r in rows[1:6]] == [
        [e.type.action, e.author.name] for e in want[10:15]]  # type: ignore[union-attr]
    assert rows[6] == [f"# entries 11-15 of {len(want)}"]


def _id_of(event: AuditEvent) -> int:
    """Events were stored in list order in one batch, so ids follow the list."""
    return EVENTS.index(event) + 1


# -- options ------------------------------------------------------------------------------

def test_a_for_the_authenticated_user_needs_one(store: str) -> None:
    result = run("--db", store, "-a")
    assert result.exit_code == 2 and "-u USER" in result.output


def test_sort_keys_in_both_spellings(store: str) -> None:
    out = ok("--db", store, "-t", "CSV", "-b", "-f", "audit.type,audit.stamp",
             "-s", "audit.type+,audit.stamp-", "-l", "3")
    assert [r[0] for r in csv.reader(io.StringIO(out))] == ["Access group created", "Create",
                                                            "Create"]
    oldest = ok("--db", store, "-t", "CSV", "-b", "-f", "audit.stamp", "-s", "+audit.stamp",
                "-l", "1")
    assert oldest.startswith("2011-05-20T09:00:00")


def test_xml_bare_has_no_enclosing_element_and_text_has_a_count(store: str) -> None:
    full = ok("--db", store, "-t", "XML", "-l", "2")
    assert ET.fromstring(full.encode()).tag
    bare = ok("--db", store, "-t", "XML", "-b", "-l", "2")
    assert not bare.lstrip().startswith("<?xml")
    text = ok("--db", store, "-l", "5,3")
    assert "61" in text.splitlines()[-1]


@pytest.mark.parametrize(("args", "words"), [
    (["-c", "Nope"], "unknown audit class 'Nope'"),
    (["-l", "x"], "[offset,]count"),
    (["-f", "bogus"], "unknown field 'bogus'"),
    (["-t", "PDF"], "'PDF' is not one of"),
    (["action:(x"], "column"),
])
def test_bad_input_exits_2_with_a_message(store: str, args: list[str], words: str) -> None:
    result = subprocess.run([sys.executable, "-m", "trailkeeper", "search", "--db", store,
                             *args], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr


def test_unknown_encoding_lists_the_available_ones(store: str) -> None:
    result = run("--db", store, "-E", "klingon")
    assert result.exit_code == 2
    assert "utf_8" in result.output and "latin_1" in result.output


def test_output_in_another_encoding(store: str, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    ok("--db", store, "-E", "utf-16", "-t", "CSV", "-o", str(target), "--no-progress")
    assert target.read_bytes().decode("utf-16").startswith("Timestamp,Author")


def test_output_file_is_written_whole(store: str, tmp_path: Path) -> None:
    target = tmp_path / "sub" / "export.ndjson"
    ok("--db", store, "-t", "NDJSON", "-o", str(target), "--progress")
    lines = target.read_text().splitlines()
    assert len(lines) == len(EVENTS)
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".part")]


@pytest.fixture
def env_without_trailkeeper() -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("TRAILKEEPER_")}
    for key in saved:
        del os.environ[key]
    yield
    os.environ.update(saved)


def test_search_of_a_missing_store_is_an_error_not_a_new_file(
    tmp_path: Path, env_without_trailkeeper: None
) -> None:
    missing = tmp_path / "nowhere.db"
    result = run("--db", f"sqlite://{missing}")
    assert result.exit_code == 2
    assert "no store at" in result.output
    assert not missing.exists()
