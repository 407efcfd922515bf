"""`trailkeeper rules hunt` on a store, and `rules test` reporting correlations."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from tests.detection.test_live import failed_login, store, stream
from tests.factories import BOB
from trailkeeper.cli.main import cli
from trailkeeper.detection.rules import BUILTIN_DIR
from trailkeeper.storage.base import Storage


def hunt(db_url: str, home: Path, *args: str) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(cli, ["rules", "hunt", "--db", db_url, "--home", str(home),
                                      *args])
    lines = [orjson.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, lines, result.stderr


def test_hunt_records_once_and_prints_the_matches(storage: Storage, db_url: str,
                                                  tmp_path: Path) -> None:
    store(storage, stream())
    code, alerts, report = hunt(db_url, tmp_path, "--json")
    assert code == 0, report
    assert {a["rule_title"] for a in alerts} == {
        "Access Token Created With Admin Scope", "Many Failed Logins For One User",
        "Security Hook Skipped", "User Details Or Permissions Exported"}
    assert "new alerts recorded" in report and " 0 new alerts" not in report
    code, again, report = hunt(db_url, tmp_path, "--json")
    assert code == 0 and len(again) == len(alerts)
    assert " 0 new alerts recorded" in report  # the first hunt recorded them


def test_hunt_of_named_rules_over_a_range_without_recording(storage: Storage, db_url: str,
                                                            tmp_path: Path) -> None:
    store(storage, stream())
    code, alerts, report = hunt(db_url, tmp_path, "--json", "--dry-run",
                                "--from", "2024-03-01T12:00:00Z", "--to", "2024-03-01T12:30:00Z",
                                "Security Hook Skipped", "trailkeeper_user_data_exported")
    assert code == 0, report
    assert [a["rule_title"] for a in alerts] == ["Security Hook Skipped",
                                                 "User Details Or Permissions Exported"]
    assert "dry run" in report
    code, _, report = hunt(db_url, tmp_path, "--json")
    assert code == 0 and "4 new alerts recorded" in report  # the dry run recorded none


def test_hunt_names_what_is_wrong(storage: Storage, db_url: str, tmp_path: Path) -> None:
    code, _, report = hunt(db_url, tmp_path, "--from", "last tuesday")
    assert code == 2 and "--from" in report and "'last tuesday' is not a time" in report
    code, _, report = hunt(db_url, tmp_path, "no such rule")
    assert code == 2 and "no loaded rule is called 'no such rule'" in report


def test_rules_test_reports_a_correlation(tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join(orjson.dumps(failed_login(BOB, n * 0.5).to_rest())
                                  for n in range(10)) + b"\n")
    result = CliRunner().invoke(cli, ["rules", "test", str(BUILTIN_DIR / "failed_logins.yml"),
                                      "--events", str(events)])
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    [hit] = [line for line in lines if line["rule_title"] == "Many Failed Logins For One User"]
    assert hit["event_index"] == 9
    assert hit["event_indexes"] == list(range(10))
    assert hit["group"] == {"author.name": "bob"}
    # The single failures are reported too (they feed the correlation).
    assert sum(line["rule_title"] == "User Login Failed" for line in lines) == 10
