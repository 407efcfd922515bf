"""``trailkeeper search``: bfauditlog's command line, on a server or a local store.

Usage: ``trailkeeper search [connection-options] [command-options] [query]``, with the
options, defaults and meanings of ``bfauditlog`` (seed 004): ``-c`` classes, ``-f`` fields,
``-s`` sorts, ``-l [offset,]count``, ``-a`` users, ``-t`` format, ``-b`` bare, ``-L`` list.
Any of ``-H -P -u -p -d`` means "ask a server"; otherwise the local store (``--db`` /
``--home``) is read directly.
"""

from __future__ import annotations

import codecs
import encodings.aliases
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click

from trailkeeper.cli.options import existing_store, resolve_store, store_options
from trailkeeper.cli.sources import ExportRequest, LocalSource, RemoteSource, Source
from trailkeeper.errors import BadRequestError
from trailkeeper.query.fields import resolve

FORMATS = ("CSV", "XML", "JSON", "TEXT", "NDJSON")
_ME = "\0authenticated-user"  # what -a means without a user


def _comma_list(values: tuple[str, ...]) -> list[str]:
    """Repeated options with comma-separated values, as one list (blanks dropped)."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def parse_limit(text: str | None) -> tuple[int, int | None]:
    """``-l [offset,]count`` -> (offset, count)."""
    if text is None:
        return 0, None
    first, comma, second = text.partition(",")
    try:
        if comma:
            offset, count = int(first), int(second)
        else:
            offset, count = 0, int(first)
    except ValueError:
        raise click.BadParameter(f"{text!r} should be [offset,]count, e.g. 100 or 100,50",
                                 param_hint="'-l'") from None
    if offset < 0 or count < 1:
        raise click.BadParameter("offset must be 0 or more and count 1 or more",
                                 param_hint="'-l'")
    return offset, count


def _encoding(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return codecs.lookup(value).name
    except LookupError:
        known = sorted(set(encodings.aliases.aliases.values()))
        click.echo(f"Unknown encoding {value!r}. Available encodings:", err=True)
        click.echo("  " + " ".join(known), err=True)
        ctx.exit(2)
    return None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-H", "--hostname", help="Server host name or base URL (http://host:8990/ctx)")
@click.option("-P", "--port", type=click.IntRange(1, 65535), help="Server port [8990]")
@click.option("-d", "--domain", help="Authentication realm (accepted; Trailkeeper has one)")
@click.option("-u", "--user", envvar="TRAILKEEPER_USER", help="User name for the server")
@click.option("-p", "--password", envvar="TRAILKEEPER_PASSWORD",
              help="Password or API token (better: TRAILKEEPER_PASSWORD, or the prompt)")
@click.option("-E", "--encoding", callback=_encoding, help="Output character set [UTF-8]")
@store_options
@click.option("-b", "--bare", is_flag=True, help="No header, column names or row count")
@click.option("-c", "--audit.class", "classes", multiple=True, metavar="CLASS[,CLASS...]",
              help="Audit classes (categories); repeatable, the union is searched")
@click.option("-f", "--field", "fields", multiple=True, metavar="FIELD[,FIELD...]",
              help="Fields to output (see -L -c CLASS)")
@click.option("-s", "--sort", metavar="FIELD[+|-][,...]",
              help="Sort keys, + ascending, - descending [default: audit.stamp-]")
@click.option("-l", "--limit", metavar="[OFFSET,]COUNT", help="Page: skip OFFSET, show COUNT")
@click.option("-a", "--audit.user", "users", multiple=True, is_flag=False, flag_value=_ME,
              metavar="USER[,USER...]",
              help="Only entries by these users (login or id); alone: the -u user")
@click.option("-t", "--format", "fmt", type=click.Choice(FORMATS, case_sensitive=False),
              default="TEXT", show_default=True, help="Output format")
@click.option("-L", "--list", "list_classes", is_flag=True,
              help="List audit classes (* = readable); with -c, their fields")
@click.option("--from", "since", metavar="TIME", help="Earliest time: ISO, date or now-7d")
@click.option("--to", "until", metavar="TIME", help="Latest time (inclusive): ISO or date")
@click.option("--tz", help="Time zone for dates in the query (IANA name) [UTC]")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE (atomically, with a progress bar) instead of stdout")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar for --output [default: when stderr is a terminal]")
@click.argument("query", nargs=-1)
def search(hostname: str | None, port: int | None, domain: str | None, user: str | None,
           password: str | None, encoding: str | None, home: Path | None, db_url: str | None,
           bare: bool, classes: tuple[str, ...], fields: tuple[str, ...], sort: str | None,
           limit: str | None, users: tuple[str, ...], fmt: str, list_classes: bool,
           since: str | None, until: str | None, tz: str | None, output: Path | None,
           progress: bool | None, query: tuple[str, ...]) -> None:
    """Search the audit log, as bfauditlog does.

    \b
    Examples:
      trailkeeper search -c Project,Step -L
      trailkeeper search -c Project -t CSV -f audit.target,sxProjectName \\
          --bare -l 10 'audit.type:Create'
      trailkeeper search -H audit.example.com -u apiuser -p 'My$ecret' -l 100
      trailkeeper search 'audit.stamp:[2011/05/23 TO 2011/05/27]'
      trailkeeper search -c Project 'ioLevel:[4 TO 6] AND inLevel:3'
      trailkeeper search -c Project,Step \\
          -f audit.class,audit.type,audit.target,audit.user,audit.stamp \\
          -a root,sv -l 10,5 -t CSV
    """
    remote = any(v is not None for v in (hostname, port, domain)) or bool(user and not db_url)
    if remote:
        if user and password is None:
            password = click.prompt(f"Password for {user}", hide_input=True, err=True)
        source: Source = RemoteSource(_base_url(hostname, port), user, password)
    else:
        source = LocalSource(existing_store(resolve_store(home, db_url)[1]))
    try:
        if list_classes:
            _list(source, _comma_list(classes))
            return
        fields, query = _continued_fields(fields, query)
        offset, count = parse_limit(limit)
        authors = _comma_list(users)
        if _ME in authors:
            if not user:
                raise click.UsageError("-a without a user means the authenticated user; "
                                       "give -u USER (or name the users: -a alice,bob)")
            authors = [user if a == _ME else a for a in authors]
        request = ExportRequest(
            query=" ".join(query), format=fmt.lower(),
            categories=tuple(_resolve_classes(source, _comma_list(classes))),
            authors=tuple(authors), fields=",".join(_comma_list(fields)) or None, sort=sort,
            offset=offset, limit=count, bare=bare, tz=tz, since=since, until=until,
            to_file=output is not None)
        _write(source, request, output, encoding, progress)
    finally:
        source.close()


def _continued_fields(fields: tuple[str, ...], query: tuple[str, ...]
                      ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``-f audit.target, sxProjectName``: a field list ending in a comma continues in the
    next word (bfauditlog's manual wraps its examples there)."""
    while fields and fields[-1].rstrip().endswith(",") and query \
            and resolve(query[0].strip()) is not None:
        fields = (*fields[:-1], fields[-1].rstrip() + query[0].strip())
        query = query[1:]
    return fields, query


def _base_url(hostname: str | None, port: int | None) -> str:
    host = hostname or "localhost"
    if "://" in host:
        return host
    return f"http://{host}:{port or 8990}"


def _resolve_classes(source: Source, names: list[str]) -> list[str]:
    """Class names as stored, matched without regard to case; unknown ones are an error."""
    if not names:
        return []
    known = {c.name.lower(): c.name for c in source.classes()}
    resolved = []
    for name in names:
        found = known.get(name.lower())
        if found is None:
            raise BadRequestError(f"unknown audit class {name!r}; list them with -L")
        resolved.append(found)
    return resolved


def _list(source: Source, classes: list[str]) -> None:
    out = click.echo
    if not classes:
        for info in source.classes():
            out(f"{'*' if info.readable else ' '} {info.name}")
        return
    resolved = _resolve_classes(source, classes)
    standard, typed = source.fields(resolved)
    out("Fields of every class:")
    out("  " + ", ".join(standard))
    for name in resolved:
        out(f"Fields of class {name}:")
        out("  " + (", ".join(typed.get(name) or []) or "(no changed values or attributes "
                                                         "seen yet)"))


def _write(source: Source, request: ExportRequest, output: Path | None,
           encoding: str | None, progress: bool | None) -> None:
    chunks = source.export(request)
    if encoding and encoding != "utf-8":
        chunks = _transcode(chunks, encoding, xml=request.format == "xml")
    if output is None:
        stream = sys.stdout.buffer
        for chunk in chunks:
            stream.write(chunk)
        stream.flush()
        return
    show = progress if progress is not None else sys.stderr.isatty()
    total = source.count(request) if show else None
    if total is not None and request.limit is not None:
        total = min(max(total - request.offset, 0), request.limit)
    _to_file(chunks, output, total, request.format)


def _to_file(chunks: Iterator[bytes], output: Path, total: int | None, fmt: str) -> None:
    """Written beside the target and renamed at the end: a partial export never looks done."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            if total is None:
                for chunk in chunks:
                    file.write(chunk)
            else:
                _with_progress(chunks, file, total, fmt)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, output)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _with_progress(chunks: Iterator[bytes], file: IO[bytes], total: int, fmt: str) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    newline = b"\n"
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(), transient=True,
                  console=Console(stderr=True)) as bar:
        task = bar.add_task(f"Exporting {fmt.upper()}", total=total)
        for chunk in chunks:
            file.write(chunk)
            # Lines approximate events for the line formats; close enough for a bar.
            bar.update(task, advance=chunk.count(newline), refresh=False)


def _transcode(chunks: Iterator[bytes], encoding: str, *, xml: bool) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    errors = "xmlcharrefreplace" if xml else "replace"
    first = True
    for chunk in chunks:
        text = decoder.decode(chunk)
        if first and xml:
            text = text.replace('encoding="UTF-8"', f'encoding="{encoding}"', 1)
        first = False
        yield text.encode(encoding, errors)
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail.encode(encoding, errors)
