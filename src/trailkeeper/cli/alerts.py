"""``trailkeeper alerts [list|show|ack]``: the alerts of a store, as ``/api/v1/alerts`` shows them.

Works on the store of ``--home``/``--db`` directly, like ``trailkeeper config``. The table is
plain text: rule titles and groups come from rule files and events, so control characters
are shown as ``?`` and nothing in them is interpreted (no markup, no terminal escapes).
Acknowledging is recorded as "Alert acknowledged", authored by the operating-system user.
"""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from trailkeeper.alerts import manage
from trailkeeper.alerts.model import AlertQuery, AlertRecord
from trailkeeper.cli.options import open_service, operator, store_options, trail
from trailkeeper.errors import NotFoundError
from trailkeeper.model.event import NOT_ONE_LINE
from trailkeeper.model.timestamps import format_iso, now_ms
from trailkeeper.query.dates import TimeValueError, parse_span

_STATUS = click.Choice(["open", "acknowledged", "all"], case_sensitive=False)
_LEVEL = click.Choice(["informational", "low", "medium", "high", "critical"],
                      case_sensitive=False)
_COLUMNS = ("ID", "STATUS", "LEVEL", "FIRST", "COUNT", "RULE", "GROUP")
_MAX_CELL = 80


class _Store:
    """``--home``/``--db`` given to the group (``trailkeeper alerts --home X list``)."""

    def __init__(self, home: Path | None, db_url: str | None) -> None:
        self.home, self.db_url = home, db_url


def _store(ctx: click.Context, home: Path | None, db_url: str | None) -> tuple[Path | None,
                                                                              str | None]:
    given = ctx.find_object(_Store)
    if given is None:
        return home, db_url
    return home or given.home, db_url or given.db_url


@click.group(invoke_without_command=True)
@store_options
@click.pass_context
def alerts(ctx: click.Context, home: Path | None, db_url: str | None) -> None:
    """List, show and acknowledge alerts raised by detection rules (default: list)."""
    ctx.obj = _Store(home, db_url)
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_alerts)


def _time(name: str, text: str | None, *, end: bool) -> int | None:
    if not text:
        return None
    try:
        span = parse_span(text, now_ms=now_ms())
    except TimeValueError as exc:
        raise click.BadParameter(str(exc), param_hint=f"'--{name}'") from None
    return span.end if end else span.start


@alerts.command("list")
@click.option("--status", type=_STATUS, default="all", show_default=True)
@click.option("--level", type=_LEVEL, help="This level and above")
@click.option("--rule", "rules", multiple=True, metavar="RULE_ID", help="Rule id (repeatable)")
@click.option("--from", "since", metavar="TIME", help="First event at or after: a date, an "
                                                      "ISO time, epoch ms or now-7d")
@click.option("--to", "until", metavar="TIME", help="First event at or before (inclusive)")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of alerts)")
@store_options
@click.pass_context
def list_alerts(ctx: click.Context, status: str = "all", level: str | None = None,
                rules: tuple[str, ...] = (), since: str | None = None,
                until: str | None = None, limit: int = 100, as_json: bool = False,
                home: Path | None = None, db_url: str | None = None) -> None:
    """Alerts, newest first."""
    query = AlertQuery(
        status=None if status.lower() == "all" else status.lower(),  # type: ignore[arg-type]
        rule_ids=rules, min_level=level.lower() if level else None,
        from_ms=_time("from", since, end=False), to_ms=_time("to", until, end=True),
        limit=limit)
    with open_service(*_store(ctx, home, db_url)) as service:
        found = service.storage.list_alerts(query)
    if as_json:
        click.echo(orjson.dumps([manage.alert_json(a) for a in found]).decode())
        return
    _table([_row(a) for a in found])


def _cell(text: str) -> str:
    clean = NOT_ONE_LINE.sub("?", text)
    return clean if len(clean) <= _MAX_CELL else clean[:_MAX_CELL - 1] + "…"


def _row(alert: AlertRecord) -> tuple[str, ...]:
    group = ", ".join(f"{k}={v}" for k, v in sorted(alert.group.items()))
    return (str(alert.id), alert.status, alert.level or "-", format_iso(alert.timestamp_ms),
            str(alert.count), _cell(alert.rule_title), _cell(group) or "-")


def _table(rows: list[tuple[str, ...]]) -> None:
    if not rows:
        click.echo("no alerts")
        return
    widths = [max(len(r[i]) for r in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
    for row in [_COLUMNS, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                   .rstrip())


@alerts.command("show")
@click.argument("alert_id", type=click.IntRange(1, (1 << 63) - 1), metavar="ID")
@store_options
@click.pass_context
def show_alert(ctx: click.Context, alert_id: int, home: Path | None,
               db_url: str | None) -> None:
    """One alert as JSON."""
    with open_service(*_store(ctx, home, db_url)) as service:
        found = service.storage.get_alert(alert_id)
    if found is None:
        raise NotFoundError(f"No alert with id {alert_id}")
    click.echo(orjson.dumps(manage.alert_json(found), option=orjson.OPT_INDENT_2).decode())


@alerts.command("ack")
@click.argument("ids", nargs=-1, required=True, type=click.IntRange(1, (1 << 63) - 1),
                metavar="ID...")
@store_options
@click.pass_context
def acknowledge(ctx: click.Context, ids: tuple[int, ...], home: Path | None,
                db_url: str | None) -> None:
    """Acknowledge alerts (all must exist; acknowledged ones are left as they are)."""
    with open_service(*_store(ctx, home, db_url)) as service:
        storage = service.storage
        missing = [i for i in dict.fromkeys(ids) if storage.get_alert(i) is None]
        if missing:
            raise NotFoundError(f"No alert with id {', '.join(map(str, missing))}")
        count = manage.acknowledge(storage, ids, by=operator().id, now_ms=now_ms(),
                                   trail=trail(service))
    unique = len(set(ids))
    click.echo(f"acknowledged {count} of {unique} alert{'s' if unique != 1 else ''}")
