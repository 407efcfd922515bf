"""``trailkeeper config`` on a real store: presets, coverage, denylist, redaction, retention."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from trailkeeper.cli.main import cli
from trailkeeper.errors import TrailkeeperError
from trailkeeper.governance.changes import CONFIG_UPDATED
from trailkeeper.ingest.service import AuditService
from trailkeeper.query.ast import In


def _run(db_url: str, *args: str) -> str:
    result = CliRunner().invoke(cli, ["config", *args, "--db", db_url])
    assert result.exit_code == 0, result.output
    return result.output


def _show(db_url: str) -> dict[str, object]:
    shown: dict[str, object] = orjson.loads(_run(db_url, "show", "--json"))
    return shown


@pytest.fixture
def store(db_url: str) -> str:
    AuditService.open(db_url).close()  # create the schema, as serve would
    return db_url


@pytest.mark.parametrize("preset", ["NONE", "security", "Basic", "DETAILED"])
def test_policy_presets(store: str, preset: str) -> None:
    _run(store, "policy", preset)
    shown = _show(store)
    assert shown["policy"] == preset.upper()
    assert shown["details"] is (preset.upper() == "DETAILED")


def test_every_setting_round_trips_and_is_recorded(store: str) -> None:
    _run(store, "coverage", "security=full", "END_USER_ACTIVITY=off")
    _run(store, "denylist", "add", "User logged in", "Repository created")
    _run(store, "denylist", "remove", "Repository created")
    _run(store, "redaction", "--max-length", "200", "--sensitive-keys", "pin,secret*")
    _run(store, "retention", "--period", "P90D", "--max-rows", "50000", "--max-files", "10")
    _run(store, "details", "off")
    shown = _show(store)
    assert shown["coverage"]["security"] == "full"  # type: ignore[index]
    assert shown["coverage"]["end-user-activity"] == "off"  # type: ignore[index]
    assert shown["denylist"] == ["User logged in"]
    assert shown["redaction"] == {"maxLength": 200, "sensitiveKeys": ["pin", "secret*"]}
    assert shown["retention"] == {"period": {"years": 0, "months": 0, "days": 90},
                                  "maxRows": 50000}
    assert shown["fileRetention"] == {"maxFileCount": 10}
    assert shown["details"] is False
    with AuditService.open(store) as service:
        records = service.search_rows(In("action", (CONFIG_UPDATED,)), limit=50).events
        assert len(records) == 6
        first = records[-1].to_event()
        assert first.method == "CLI" and first.author is not None
        assert first.author.type == "os-user"
        # The change records keep their changed values even once details are off.
        assert records[0].to_event().changed_values


@pytest.mark.parametrize("args", [
    ("policy", "LOUD"),
    ("coverage", "security"),
    ("coverage", "nowhere=full"),
    ("coverage", "security=loud"),
    ("retention", "--period", "3 years"),
    ("retention", "--max-rows", "5"),
    ("retention", "--max-files", "0"),
    ("redaction", "--max-length", "3"),
])
def test_bad_values_exit_2_and_change_nothing(store: str, args: tuple[str, ...]) -> None:
    before = _show(store)
    result = CliRunner().invoke(cli, ["config", *args, "--db", store])
    # Usage errors exit 2 through click; refused values are errors main() turns into exit 2.
    error = result.exception
    code = error.exit_code if isinstance(error, TrailkeeperError) else result.exit_code
    assert code == 2, result.output
    assert _show(store) == before
