"""``trailkeeper search``: print matching events as JSON lines, newest first.

A first version over a local store; the bfauditlog-compatible options and query language
replace it in the next issue.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from trailkeeper.cli.options import existing_store, resolve_store, store_options
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.timestamps import ms_to_datetime, parse_iso
from trailkeeper.query.ast import AuditQuery


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return ms_to_datetime(parse_iso(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _objects(ctx: click.Context, param: click.Parameter,
             values: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        kind, sep, ident = value.partition(",")
        if not sep or not kind.strip() or not ident.strip():
            raise click.BadParameter(f"{value!r} should be TYPE,ID (e.g. REPOSITORY,7)")
        pairs.append((kind.strip(), ident.strip()))
    return pairs


@click.command()
@store_options
@click.option("--from", "since", callback=_instant, metavar="ISO",
              help="Earliest timestamp (UTC, inclusive)")
@click.option("--to", "until", callback=_instant, metavar="ISO",
              help="Latest timestamp (UTC, inclusive)")
@click.option("--action", "actions", multiple=True, help="Action name (repeatable)")
@click.option("--category", "categories", multiple=True, help="Category name (repeatable)")
@click.option("--author-id", "author_ids", multiple=True, help="Author id (repeatable)")
@click.option("--object", "objects", multiple=True, callback=_objects, metavar="TYPE,ID",
              help="Affected object (repeatable; types AND, ids of one type OR)")
@click.option("--text", help="Full-text search terms (any may match)")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, None))
def search(home: Path | None, db_url: str | None, since: datetime | None,
           until: datetime | None, actions: tuple[str, ...], categories: tuple[str, ...],
           author_ids: tuple[str, ...], objects: list[tuple[str, str]], text: str | None,
           limit: int) -> None:
    """Print events of a local store as JSON lines (REST shape, with ids)."""
    db_url = existing_store(resolve_store(home, db_url)[1])
    query = AuditQuery(since=since, until=until, actions=actions, categories=categories,
                       author_ids=author_ids, objects=objects, search=text)
    out = sys.stdout.buffer
    with AuditService.open(db_url) as service:
        for printed, row in enumerate(service.stream(query), start=1):
            out.write(row.rest_json() + b"\n")
            if printed >= limit:
                break
    out.flush()
