"""``trailkeeper config``: the governance configuration of a store.

Acts on the store directly (``--home``/``--db``), so every node of the cluster picks the
change up within a second or two. Each change is recorded as "Audit Log configuration
updated", authored by the operating-system user who ran the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from trailkeeper.cli.options import open_service, operator, store_options
from trailkeeper.governance import manage
from trailkeeper.governance.config import (
    DETAILS,
    GovernanceConfig,
    dumps,
    parse_area,
    parse_level,
)
from trailkeeper.governance.period import Period
from trailkeeper.governance.policy import parse_preset, preset_of
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.areas import CoverageArea


def _update(service: AuditService, values: dict[str, str]) -> GovernanceConfig:
    return manage.update(service, values, operator(), method="CLI")


def config_json(config: GovernanceConfig) -> dict[str, Any]:
    """Every setting, as ``config show --json`` prints it."""
    return {
        "policy": preset_of(config),
        "coverage": config.coverage_json()["levelByArea"],
        "details": config.details,
        "denylist": sorted(config.denylist),
        "redaction": {"maxLength": config.max_length,
                      "sensitiveKeys": list(config.sensitive_keys)},
        "retention": {"period": config.retention.to_json(), "maxRows": config.max_rows},
        "fileRetention": {"maxFileCount": config.max_file_count},
    }


def _show(config: GovernanceConfig, as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(config_json(config), option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"policy           {preset_of(config)}")
    click.echo(f"changed values   {'recorded' if config.details else 'not recorded'}")
    click.echo("coverage")
    for area in CoverageArea:
        click.echo(f"  {area.kebab:<34} {config.coverage[area].value.lower()}")
    click.echo(f"denylist         {len(config.denylist)} action(s)")
    for action in sorted(config.denylist):
        click.echo(f"  {action}")
    click.echo(f"redaction        values over {config.max_length:,} characters, and keys "
               f"matching {', '.join(config.sensitive_keys)}")
    click.echo(f"retention        {config.retention.describe()} ({config.retention.iso()}), "
               f"at most {config.max_rows:,} events")
    click.echo(f"log files        {config.max_file_count} per node")


def _json_flag(func: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON")(func)


@click.group()
def config() -> None:
    """Show and change what is recorded and how long it is kept."""


@config.command("show")
@_json_flag
@store_options
def show(as_json: bool, home: Path | None, db_url: str | None) -> None:
    """Print the whole configuration."""
    with open_service(home, db_url) as service:
        _show(service.governance.reload(), as_json)


@config.command("policy")
@click.argument("preset")
@store_options
def policy(preset: str, home: Path | None, db_url: str | None) -> None:
    """Apply an audit policy: NONE, SECURITY, BASIC or DETAILED.

    \b
    NONE      nothing is recorded
    SECURITY  security, user management, permissions and audit-log events only,
              without changed values
    BASIC     every area at BASE, without changed values (who, what, which object)
    DETAILED  every area at FULL, with changed values
    """
    try:
        chosen = parse_preset(preset)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="PRESET") from None
    with open_service(home, db_url) as service:
        _show(_update(service, manage.preset_values(chosen)), False)


@config.command("coverage")
@click.argument("settings", nargs=-1, metavar="[AREA=LEVEL]...")
@store_options
def coverage(settings: tuple[str, ...], home: Path | None, db_url: str | None) -> None:
    """Show coverage, or set areas, e.g. ``security=full end-user-activity=off``."""
    levels: dict[str, str] = {}
    for item in settings:
        area, sep, level = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not AREA=LEVEL", param_hint="AREA=LEVEL")
        try:
            kebab = parse_area(area).kebab
            levels[kebab] = parse_level(level).value.lower()
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="AREA=LEVEL") from None
    with open_service(home, db_url) as service:
        current = service.governance.reload()
        if levels:
            current = _update(service, manage.coverage_values({"levelByArea": levels}))
        for area in CoverageArea:
            click.echo(f"{area.kebab:<34} {current.coverage[area].value.lower()}")


@config.command("details")
@click.argument("state", type=click.Choice(["on", "off"]))
@store_options
def details(state: str, home: Path | None, db_url: str | None) -> None:
    """Record changed values (on, as DETAILED) or not (off, as BASIC)."""
    with open_service(home, db_url) as service:
        _show(_update(service, {DETAILS: dumps(state == "on")}), False)


@config.group("denylist")
def denylist() -> None:
    """Actions that are never recorded (exact, case-sensitive action names)."""


@denylist.command("show")
@store_options
def denylist_show(home: Path | None, db_url: str | None) -> None:
    """List the denied actions."""
    with open_service(home, db_url) as service:
        for action in sorted(service.governance.reload().denylist):
            click.echo(action)


@denylist.command("add")
@click.argument("actions", nargs=-1, required=True)
@store_options
def denylist_add(actions: tuple[str, ...], home: Path | None, db_url: str | None) -> None:
    """Deny ACTIONS."""
    _edit_denylist(home, db_url, {"add": list(actions)})


@denylist.command("remove")
@click.argument("actions", nargs=-1, required=True)
@store_options
def denylist_remove(actions: tuple[str, ...], home: Path | None, db_url: str | None) -> None:
    """Record ACTIONS again."""
    _edit_denylist(home, db_url, {"delete": list(actions)})


@denylist.command("set")
@click.argument("actions", nargs=-1)
@store_options
def denylist_set(actions: tuple[str, ...], home: Path | None, db_url: str | None) -> None:
    """Replace the whole list with ACTIONS (none: empty it)."""
    with open_service(home, db_url) as service:
        changed = _update(service, manage.denylist_replacement({"actions": list(actions)}))
        click.echo(f"{len(changed.denylist)} action(s) denied")


def _edit_denylist(home: Path | None, db_url: str | None, body: dict[str, Any]) -> None:
    with open_service(home, db_url) as service:
        current = service.governance.reload().denylist
        changed = _update(service, manage.denylist_edit(body, current))
        click.echo(f"{len(changed.denylist)} action(s) denied")


@config.command("redaction")
@click.option("--max-length", type=int, help="Longest value kept as it is (default 1024)")
@click.option("--sensitive-keys", metavar="PATTERN,...",
              help="Word patterns of keys whose values are always hashed, e.g. "
                   "'password*,secret*,*token*'")
@store_options
def redaction(max_length: int | None, sensitive_keys: str | None, home: Path | None,
              db_url: str | None) -> None:
    """Show or change redaction (values become sha256:<hex>)."""
    patterns = None if sensitive_keys is None else [
        p.strip() for p in sensitive_keys.split(",") if p.strip()]
    with open_service(home, db_url) as service:
        current = service.governance.reload()
        values = manage.redaction_values(max_length, patterns)
        if values:
            current = _update(service, values)
        click.echo(f"max length       {current.max_length}")
        click.echo(f"sensitive keys   {', '.join(current.sensitive_keys)}")


@config.command("retention")
@click.option("--period", metavar="ISO", help="How long events are kept, e.g. P3Y, P6M, P90D")
@click.option("--max-rows", type=int, help="Most events kept (oldest deleted first)")
@click.option("--max-files", type=int, help="Audit log files kept per node")
@store_options
def retention(period: str | None, max_rows: int | None, max_files: int | None,
              home: Path | None, db_url: str | None) -> None:
    """Show or change database and log-file retention."""
    values: dict[str, str] = {}
    if period is not None:
        try:
            parsed = Period.parse_iso(period.strip().upper())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--period") from None
        values.update(manage.retention_values({"period": parsed.to_json()}))
    if max_rows is not None:
        values.update(manage.retention_values({"maxRows": max_rows}))
    if max_files is not None:
        values.update(manage.file_retention_values({"maxFileCount": max_files}))
    with open_service(home, db_url) as service:
        current = _update(service, values) if values else service.governance.reload()
        click.echo(f"period           {current.retention.describe()} "
                   f"({current.retention.iso()})")
        click.echo(f"max rows         {current.max_rows:,}")
        click.echo(f"log files        {current.max_file_count}")

