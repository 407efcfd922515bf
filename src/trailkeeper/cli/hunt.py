"""``trailkeeper rules hunt``: the rules over stored history (`trailkeeper.detection.hunt`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from trailkeeper.cli.options import existing_store, resolve_store, store_options
from trailkeeper.detection.hunt import hunt as run_hunt
from trailkeeper.detection.hunt import select, time_range
from trailkeeper.errors import BadRequestError
from trailkeeper.model.timestamps import format_iso, now_ms
from trailkeeper.node import load_node_rules
from trailkeeper.query.dates import TimeValueError, parse_span
from trailkeeper.settingsfile import load_file_settings
from trailkeeper.storage import open_storage


def _time(value: str | None, *, end: bool, option: str) -> int | None:
    if value is None:
        return None
    try:
        span = parse_span(value, now_ms=now_ms())
    except TimeValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None
    return span.end if end else span.start


@click.command("hunt")
@store_options
@click.option("--from", "from_", metavar="TIME",
              help="Start of the range: ISO time, date, epoch ms or date math (now-7d)")
@click.option("--to", metavar="TIME", help="End of the range (exclusive); default: now")
@click.option("--rules", "rule_dirs", multiple=True,
              type=click.Path(exists=True, path_type=Path),
              help="More rule files or directories; repeatable")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="trailkeeper.toml (default: $TRAILKEEPER_HOME/trailkeeper.toml)")
@click.option("--dry-run", is_flag=True, help="Show the alerts without recording them")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per alert on stdout")
@click.argument("names", nargs=-1, metavar="[RULE]...")
def hunt(home: Path | None, db_url: str | None, from_: str | None, to: str | None,
         rule_dirs: tuple[Path, ...], config_file: Path | None, dry_run: bool,
         as_json: bool, names: tuple[str, ...]) -> None:
    """Run the rules (all, or those named by id, name or title) over stored events.

    Alerts are recorded with origin "hunt"; a rule already alerted on an event (live, or by
    an earlier hunt) is not recorded again. Alert actions get hunt alerts only when they
    ask for them (include_hunts).
    """
    home, url = resolve_store(home, db_url)
    settings = load_file_settings(home, config_file)
    try:
        ruleset = select(load_node_rules(home, settings, rule_dirs), names)
    except BadRequestError as exc:
        raise click.BadParameter(exc.message, param_hint="RULE") from None
    from_ms = _time(from_, end=False, option="--from")
    to_ms = _time(to, end=True, option="--to")
    err = Console(stderr=True)
    storage = open_storage(existing_store(url))
    try:
        total = storage.count(time_range(from_ms, to_ms))
        with Progress(TextColumn("hunting"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=err, transient=True,
                      disable=not err.is_terminal) as progress:
            task = progress.add_task("events", total=total)
            report = run_hunt(storage, ruleset, from_ms=from_ms, to_ms=to_ms,
                              throttle_ms=settings.detection.throttle_ms,
                              record=not dry_run,
                              progress=lambda n: progress.advance(task, n))
    finally:
        storage.close()
    if as_json:
        for alert in report.alerts:
            sys.stdout.write(orjson.dumps({
                "rule_id": alert.rule_id, "rule_title": alert.rule_title,
                "level": alert.level, "timestamp": format_iso(alert.timestamp_ms),
                "event_ids": list(alert.event_ids), "group": alert.group,
            }).decode() + "\n")
    rate = report.events / report.seconds if report.seconds else 0.0
    click.echo(f"{report.events} events, {len(ruleset.rules)} rules and "
               f"{len(ruleset.correlations)} correlations: {len(report.alerts)} matches, "
               + ("not recorded (dry run)" if dry_run else
                  f"{len(report.created)} new alerts recorded")
               + f" in {report.seconds:.1f} s ({rate:,.0f} events/s)", err=True)
