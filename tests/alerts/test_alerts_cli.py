"""``trailkeeper alerts list|show|ack`` on the store of ``--db``, both backends."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys

import orjson
from click.testing import CliRunner, Result

from trailkeeper.alerts.model import NewAlert
from trailkeeper.cli.alerts import alerts
from trailkeeper.query.ast import Compare
from trailkeeper.storage import open_storage

T0 = 1_700_000_000_000


def run(db_url: str, *args: str) -> Result:
    """The ``alerts`` group as ``trailkeeper alerts ARGS --db URL`` runs it, in process."""
    return CliRunner().invoke(alerts, [*args, "--db", db_url])


def seed(db_url: str) -> None:
    storage = open_storage(db_url)
    try:
        storage.record_alerts([
            NewAlert("rule-a", "[red]Brute[/red] \x1b[31mforce", "low", T0, 1, (1,)),
            NewAlert("rule-b", "Mass deletion", "critical", T0 + 1000, 2, (2,),
                     group={"user": "[bold]eve[/bold]"}),
            NewAlert("rule-c", "Hunted", "high", T0 + 2000, 3, (3,), origin="hunt"),
        ], throttle_ms=0, now_ms=T0)
    finally:
        storage.close()


def test_list_prints_a_plain_table_newest_first(db_url: str) -> None:
    """Markup in titles and groups is shown as written; control characters become '?'."""
    seed(db_url)
    result = run(db_url, "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "LEVEL", "FIRST", "COUNT", "RULE", "GROUP"]
    assert [line.split()[0] for line in lines[1:]] == ["3", "2", "1"]
    assert "user=[bold]eve[/bold]" in lines[2]
    assert "[red]Brute[/red] ?[31mforce" in lines[3]
    assert "\x1b" not in result.output


def test_list_filters_and_prints_json(db_url: str) -> None:
    """--status, --level, --rule, --from/--to and --limit narrow the JSON list."""
    seed(db_url)

    def ids(*args: str) -> list[int]:
        result = run(db_url, "list", "--json", *args)
        assert result.exit_code == 0, result.output
        return [a["id"] for a in json.loads(result.output)]

    assert ids() == [3, 2, 1]
    assert ids("--level", "high") == [3, 2]
    assert ids("--rule", "rule-a", "--rule", "rule-c") == [3, 1]
    assert ids("--from", str(T0 + 1000)) == [3, 2]
    assert ids("--to", str(T0 + 1000)) == [2, 1]
    assert ids("--limit", "1") == [3]
    assert run(db_url, "ack", "2").exit_code == 0
    assert ids("--status", "open") == [3, 1]
    assert ids("--status", "acknowledged") == [2]
    assert run(db_url, "list", "--from", "someday").exit_code == 2


def test_show_prints_one_alert_as_json(db_url: str) -> None:
    seed(db_url)
    shown = json.loads(run(db_url, "show", "2").output)
    assert (shown["id"], shown["group"], shown["status"]) == (2, {"user": "[bold]eve[/bold]"},
                                                             "open")
    missing = run(db_url, "show", "9")
    assert missing.exit_code != 0 and "9" in str(missing.exception)


def test_ack_acknowledges_as_the_operator_and_records_it(db_url: str) -> None:
    """The operating-system user acknowledges; the change is stored as an event."""
    seed(db_url)
    result = run(db_url, "ack", "1", "3", "1")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "acknowledged 2 of 2 alerts"
    again = run(db_url, "ack", "1")
    assert again.output.strip() == "acknowledged 0 of 1 alert"
    storage = open_storage(db_url)
    try:
        acked = storage.get_alert(3)
        assert acked is not None and acked.status == "acknowledged"
        assert acked.acknowledged_by == f"os:{getpass.getuser()}"
        (record,) = storage.search(Compare("action", "=", "Alert acknowledged"), limit=5).events
        doc = orjson.loads(record.doc)
        assert doc["method"] == "CLI"
        assert sorted(o["id"] for o in doc["affectedObjects"]) == ["1", "3"]
    finally:
        storage.close()


def test_ack_of_an_unknown_alert_changes_nothing_and_fails(db_url: str) -> None:
    """The real command exits non-zero with a message naming the id; no alert changes."""
    seed(db_url)
    done = subprocess.run([sys.executable, "-m", "trailkeeper", "alerts", "ack", "1", "42",
                           "--db", db_url], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TRAILKEEPER_HOME": os.devnull + "-unused"},
                          check=False)
    assert done.returncode == 1, done.stderr
    assert "42" in done.stderr
    storage = open_storage(db_url)
    try:
        alert = storage.get_alert(1)
        assert alert is not None and alert.status == "open"
    finally:
        storage.close()
