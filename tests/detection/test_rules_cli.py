"""`trailkeeper rules list|lint|test`, run for real through click."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from trailkeeper.cli.main import cli

RULE = """title: Security Hook Skipped Here
id: 99999999-9999-4999-8999-999999999999
level: high
logsource: {product: bitbucket, service: audit}
detection:
  sel:
    type.action: 'Security hook skipped'
  filter:
    author.name|startswith: 'svc_'
  condition: sel and not filter
"""

REST_EVENT = {"id": 7, "timestamp": "2026-11-01T10:00:00Z", "author": {"name": "alice"},
              "type": {"category": "Repositories", "action": "Security hook skipped"},
              "affectedObjects": [], "changedValues": [], "extraAttributes": []}
FILE_EVENT = {"auditType": {"category": "Repositories", "action": "SECURITY HOOK SKIPPED"},
              "author": {"name": "bob"}, "timestamp": {"epochSecond": 1, "nano": 0}}
SVC_EVENT = {**FILE_EVENT, "author": {"name": "svc_ci"}}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "hook.yml").write_text(RULE)
    return folder


def test_list_shows_builtin_home_and_given_rules(runner: CliRunner, tmp_path: Path,
                                                 rules_dir: Path) -> None:
    """`rules list --json` lists built-ins, $HOME/rules and --rules, with their source."""
    home = tmp_path / "home"
    (home / "rules").mkdir(parents=True)
    (home / "rules" / "mine.yml").write_text(RULE.replace("99999999-9999-4999-8999-999999999999",
                                                          "aaaaaaaa-9999-4999-8999-999999999999"))
    result = runner.invoke(cli, ["rules", "list", "--json", "--home", str(home),
                                 "--rules", str(rules_dir)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by_id = {r["id"]: r for r in rows}
    assert by_id["99999999-9999-4999-8999-999999999999"]["source"] == str(rules_dir / "hook.yml")
    assert by_id["aaaaaaaa-9999-4999-8999-999999999999"]["builtin"] is False
    assert any(r["builtin"] for r in rows)
    assert {"id", "title", "level", "status", "builtin", "source"} <= set(rows[0])

    plain = runner.invoke(cli, ["rules", "list", "--no-builtin", "--home", str(home),
                                "--rules", str(rules_dir)])
    assert plain.exit_code == 0
    lines = plain.stdout.splitlines()
    assert lines[0].split() == ["ID", "TITLE", "LEVEL", "STATUS", "BUILTIN", "SOURCE"]
    assert len(lines) == 3 and "Security Hook Skipped Here" in lines[1]


def test_lint_exits_1_on_errors_and_names_the_file(runner: CliRunner, tmp_path: Path,
                                                   rules_dir: Path) -> None:
    """`rules lint` prints each problem with its path; errors make it exit 1."""
    home = tmp_path / "emptyhome"
    ok = runner.invoke(cli, ["rules", "lint", "--home", str(home), "--rules", str(rules_dir)])
    assert ok.exit_code == 0, ok.output
    broken = rules_dir / "broken.yml"
    broken.write_text("title: Broken\nlogsource: {product: bitbucket}\n"
                      "detection:\n  sel:\n    a|utf8le: x\n  condition: sel\n")
    bad = runner.invoke(cli, ["rules", "lint", "--home", str(home), "--rules", str(rules_dir)])
    assert bad.exit_code == 1
    assert f"{broken}: error [Broken]: Unknown modifier 'utf8le'" in bad.stdout


def test_test_prints_one_json_object_per_match(runner: CliRunner, tmp_path: Path,
                                               rules_dir: Path) -> None:
    """`rules test` reads REST and file-shape NDJSON and explains each match."""
    events = tmp_path / "events.ndjson"
    events.write_text("\n".join(json.dumps(e) for e in
                                (REST_EVENT, SVC_EVENT, {"type": {"action": "x"}}, FILE_EVENT))
                      + "\n")
    result = runner.invoke(cli, ["rules", "test", str(rules_dir / "hook.yml"),
                                 "--events", str(events)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["event_index"] for line in lines] == [0, 3]
    assert lines[0] == {"rule_id": "99999999-9999-4999-8999-999999999999",
                        "rule_title": "Security Hook Skipped Here", "event_index": 0,
                        "why": ["auditType.action equals 'Security hook skipped'",
                                "not author.name starts with 'svc_'"]}


def test_test_reads_standard_input(runner: CliRunner, rules_dir: Path) -> None:
    """`--events -` reads the events from standard input."""
    result = runner.invoke(cli, ["rules", "test", str(rules_dir), "--events", "-"],
                           input=json.dumps(FILE_EVENT) + "\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["event_index"] == 0


@pytest.mark.parametrize(("bad_line", "message"), [
    ("{not json", "events line 2: not valid JSON"),
    ("[1, 2]", "events line 2: not a JSON object"),
])
def test_test_rejects_a_bad_line_with_its_number(runner: CliRunner, rules_dir: Path,
                                                 bad_line: str, message: str) -> None:
    """A line that is not a JSON object stops the run with exit code 2, naming the line."""
    text = json.dumps(FILE_EVENT) + "\n" + bad_line + "\n"
    result = runner.invoke(cli, ["rules", "test", str(rules_dir), "--events", "-"],
                           input=text)
    assert result.exit_code == 2
    assert message in result.stderr
