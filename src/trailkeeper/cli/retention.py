"""``trailkeeper retention run|status``: database retention on the store (``--db``/``--home``).

``run`` deletes now what the scheduled job would delete (events past the retention period,
then the oldest beyond the row limit), even if the cluster ran it less than 23 hours ago,
but never while another node is in the middle of a run. The run is recorded as an
"Audit Log retention run" event, like a scheduled one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from trailkeeper.cli.options import existing_store, operator, resolve_store, store_options
from trailkeeper.governance.config import MIN_ROWS, GovernanceConfig
from trailkeeper.governance.period import Period
from trailkeeper.governance.retention import (
    ACTION,
    AGE_INTERVAL_MS,
    AGE_JOB,
    CATEGORY,
    DEFAULT_BATCH_SIZE,
    ROW_LIMIT_INTERVAL_MS,
    ROW_LIMIT_JOB,
    RetentionJob,
    RetentionReport,
    row_limit_bounds,
)
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.event import AuditEvent
from trailkeeper.model.timestamps import format_iso, now_ms
from trailkeeper.query.ast import AuditQuery
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import JobRun, Storage


def _configured(storage: Storage) -> tuple[Period, int]:
    """The retention period and row limit stored in the shared settings."""
    version, settings = storage.load_settings()
    config = GovernanceConfig.from_settings(settings, version)
    return config.retention, config.max_rows


@contextlib.contextmanager
def _store(home: Path | None, db_url: str | None) -> Iterator[Storage]:
    storage = open_storage(existing_store(resolve_store(home, db_url)[1]))
    try:
        yield storage
    finally:
        storage.close()


def _period(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Period | None:
    if value is None:
        return None
    try:
        return Period.parse_iso(value.upper())
    except ValueError as exc:
        raise click.BadParameter(f"{exc} (e.g. P3Y, P1Y6M, P90D)") from None


@click.group()
def retention() -> None:
    """Database retention: delete events past the retention period or over the row limit."""


@retention.command("run")
@click.option("--period", callback=_period, metavar="PERIOD",
              help="Keep this long, ISO-8601: P3Y, P1Y6M, P90D [default: the configured "
                   "period, 3 years]")
@click.option("--max-rows", type=click.IntRange(min=MIN_ROWS), metavar="N",
              help="Row limit: over it the oldest events are deleted down to N - 1,000, "
                   "never below 10,000 [default: the configured limit, 10,000,000]")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=DEFAULT_BATCH_SIZE,
              show_default=True, help="Events deleted per transaction")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON")
@store_options
def retention_run(period: Period | None, max_rows: int | None, batch_size: int, as_json: bool,
                  home: Path | None, db_url: str | None) -> None:
    """Run database retention now and print what it deleted."""
    with _store(home, db_url) as storage:
        configured_period, configured_rows = _configured(storage)
        keep_for = period or configured_period
        row_limit = max_rows or configured_rows
        service = AuditService(storage)  # records the run's event, as the server would

        def record(event: AuditEvent) -> None:
            # Deleting is always on record, whatever the coverage and denylist say.
            service.submit([event], screen=False)

        try:
            job = RetentionJob(storage, period=lambda: keep_for, max_rows=lambda: row_limit,
                               record=record, batch_size=batch_size)
            click.echo(f"Deleting events older than {keep_for.describe()} "
                       f"and beyond {row_limit:,} rows...", err=True)
            report = job.run(force=True, started_by=operator().id)
        finally:
            service.close()
        if report is None:
            holder = storage.get_job(AGE_JOB)
            who = f" ({holder.owner}, until {format_iso(holder.lease_until_ms)})" \
                if holder is not None and holder.owner else ""
            raise click.ClickException(f"another node is running retention now{who};"
                                       " try again when it has finished")
        remaining = storage.estimated_count()
    if as_json:
        click.echo(orjson.dumps({**_report_json(report), "events_remaining": remaining})
                   .decode())
        return
    _print_report(report, remaining)


@retention.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
@store_options
def retention_status(as_json: bool, home: Path | None, db_url: str | None) -> None:
    """Show the retention settings, the last runs and what the last one did."""
    with _store(home, db_url) as storage:
        period, max_rows = _configured(storage)
        jobs = {name: storage.get_job(name) for name in (AGE_JOB, ROW_LIMIT_JOB)}
        stored = storage.estimated_count()
        page = storage.search(AuditQuery(actions=[ACTION], categories=[CATEGORY]).to_ast(),
                              limit=1)
        last_event = page.events[0].to_event() if page.events else None
    limit, keep = row_limit_bounds(max_rows)
    now = now_ms()
    status: dict[str, Any] = {
        "period": period.iso(),
        "period_text": period.describe(),
        "cutoff": format_iso(period.cutoff_ms(now)),
        "max_rows": max_rows,
        "keep_rows_when_over": keep,
        "events_stored_estimate": stored,
        "over_row_limit": stored > limit,
        "age_job": _job_json(jobs[AGE_JOB], AGE_INTERVAL_MS, now),
        "row_limit_job": _job_json(jobs[ROW_LIMIT_JOB], ROW_LIMIT_INTERVAL_MS, now),
        "last_run_event": None if last_event is None else {
            "id": last_event.id,
            "timestamp": format_iso(last_event.timestamp_ms or 0),
            "attributes": {a.name: a.value for a in last_event.extra_attributes},
        },
    }
    if as_json:
        click.echo(orjson.dumps(status).decode())
        return
    lines = [
        ("retention period", f"{status['period_text']} ({status['period']}): events before "
                             f"{status['cutoff']} are due for deletion"),
        ("row limit", f"{max_rows:,} (over it, the oldest are deleted down to {keep:,})"),
        ("events stored", f"about {stored:,}"),
        ("retention job", _job_text(status["age_job"])),
        ("row limit check", _job_text(status["row_limit_job"])),
    ]
    last = status["last_run_event"]
    if last is None:
        lines.append(("last run event", "none recorded"))
    else:
        lines.append(("last run event", f"{last['timestamp']} (event {last['id']})"))
        lines += [(f"  {name}", value) for name, value in last["attributes"].items()]
    _print_lines("Database retention", lines)


def _job_json(job: JobRun | None, interval_ms: int, now: int) -> dict[str, Any]:
    last = job.last_run_ms if job else None
    running = job is not None and job.owner is not None and job.lease_until_ms > now
    return {
        "last_run": format_iso(last) if last is not None else None,
        "next_due": format_iso(last + interval_ms) if last is not None else "now",
        "running_on": job.owner if running and job else None,
        "lease_until": format_iso(job.lease_until_ms) if running and job else None,
    }


def _job_text(job: dict[str, Any]) -> str:
    if job["running_on"]:
        return f"running on {job['running_on']} (lease until {job['lease_until']})"
    if job["last_run"] is None:
        return "never run; due at the next check"
    return f"last run {job['last_run']}, next due after {job['next_due']}"


def _report_json(report: RetentionReport) -> dict[str, Any]:
    return {
        "trigger": report.trigger,
        "outcome": report.outcome,
        "period": report.period.iso() if report.period else None,
        "cutoff": format_iso(report.cutoff_ms) if report.cutoff_ms is not None else None,
        "deleted_by_age": report.deleted_by_age,
        "max_rows": report.max_rows,
        "keep_rows_when_over": report.keep_rows,
        "deleted_by_row_limit": report.deleted_by_row_limit,
        "deleted": report.deleted,
        "batches": report.batches,
        "duration_ms": report.duration_ms,
    }


def _print_report(report: RetentionReport, remaining: int) -> None:
    assert report.period is not None
    assert report.cutoff_ms is not None
    _print_lines(f"Retention run {report.outcome} in {report.duration_ms / 1000:.1f} s", [
        ("retention period", f"{report.period.describe()} ({report.period.iso()}): "
                             f"events before {format_iso(report.cutoff_ms)}"),
        ("deleted by age", f"{report.deleted_by_age:,}"),
        ("row limit", f"{report.max_rows:,} (over it, the oldest are deleted down to "
                      f"{report.keep_rows:,})"),
        ("deleted by row limit", f"{report.deleted_by_row_limit:,}"),
        ("events remaining", f"about {remaining:,}"),
    ])


def _print_lines(title: str, lines: list[tuple[str, str]]) -> None:
    click.echo(title)
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        click.echo(f"  {name.ljust(width)}  {value}")
