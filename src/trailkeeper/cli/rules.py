"""``trailkeeper rules``: list, lint, try out and hunt with Sigma detection rules.

``list`` and ``lint`` show what ``serve`` would run: ``$TRAILKEEPER_HOME/rules`` when it
exists, the ``[detection]`` settings of trailkeeper.toml (rule directories, disabled rules,
built-ins on or off), plus ``--rules PATH`` (repeatable); ``--no-builtin`` leaves out the
built-in rules. ``rules test`` runs the given rule files over an NDJSON file of events (REST
or file shape) and prints one JSON object per match; ``rules hunt`` runs the rules over the
stored history (`trailkeeper.cli.hunt`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import orjson

from trailkeeper.cli.hunt import hunt
from trailkeeper.config import default_home
from trailkeeper.detection.correlation import Correlator
from trailkeeper.detection.document import event_time, matchable
from trailkeeper.detection.engine import Engine
from trailkeeper.detection.model import RuleProblem, RuleSet
from trailkeeper.detection.rules import BUILTIN_DIR, load_rules
from trailkeeper.node import rule_sources
from trailkeeper.settingsfile import load_file_settings

F = TypeVar("F", bound=Callable[..., Any])


class BadEvents(click.ClickException):
    """An events file that cannot be read: exit code 2."""

    exit_code = 2


def source_options(func: F) -> F:
    func = click.option("--no-builtin", is_flag=True,
                        help="Leave out the rules that ship with Trailkeeper.")(func)
    func = click.option("--home", type=click.Path(file_okay=False, path_type=Path),
                        envvar="TRAILKEEPER_HOME",
                        help="Data directory; its rules/ folder is read "
                             "[default: ~/.trailkeeper]")(func)
    func = click.option("--rules", "rule_dirs", multiple=True,
                        type=click.Path(exists=True, path_type=Path), metavar="PATH",
                        help="A rule file or folder (repeatable).")(func)
    return func


def load(rule_dirs: tuple[Path, ...], home: Path | None, no_builtin: bool) -> RuleSet:
    """The rules `serve` would load on this home, plus ``rule_dirs``."""
    home = home or default_home()
    settings = load_file_settings(home)
    detection = settings.detection
    return load_rules(rule_sources(home, settings, rule_dirs),
                      builtin_dir=BUILTIN_DIR if detection.builtin and not no_builtin else None,
                      disabled=detection.disabled)


def format_problem(problem: RuleProblem) -> str:
    where = str(problem.path) if problem.path is not None else "-"
    rule = f" [{problem.rule}]" if problem.rule else ""
    return f"{where}: {problem.severity}{rule}: {problem.message}"


@click.group()
def rules() -> None:
    """Sigma detection rules: list, lint, test, hunt."""


rules.add_command(hunt)


@rules.command("list")
@source_options
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
def list_(rule_dirs: tuple[Path, ...], home: Path | None, no_builtin: bool,
          as_json: bool) -> None:
    """List the rules that load (and the correlations)."""
    ruleset = load(rule_dirs, home, no_builtin)
    rows = [{"id": r.id, "title": r.title, "kind": "rule", "level": r.level,
             "status": r.status, "builtin": r.builtin, "generate": r.generate,
             "source": str(r.path) if r.path else None} for r in ruleset.rules]
    rows += [{"id": c.id, "title": c.title, "kind": "correlation", "level": c.level,
              "status": c.status, "builtin": c.builtin, "generate": c.generate,
              "source": str(c.path) if c.path else None} for c in ruleset.correlations]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        headers = ("ID", "TITLE", "LEVEL", "STATUS", "BUILTIN", "SOURCE")
        table = [(str(r["id"]),
                  f"{r['title']}{' (correlation)' if r['kind'] == 'correlation' else ''}",
                  str(r["level"] or "-"), str(r["status"] or "-"),
                  "yes" if r["builtin"] else "no", str(r["source"] or "-")) for r in rows]
        widths = [max([len(h)] + [len(str(row[i])) for row in table])
                  for i, h in enumerate(headers)]
        for row in [headers, *table]:
            click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True))
                       .rstrip())
    if ruleset.problems:
        click.echo(f"{len(ruleset.errors)} error(s), "
                   f"{len(ruleset.problems) - len(ruleset.errors)} warning(s): "
                   "see `trailkeeper rules lint`", err=True)


@rules.command()
@source_options
def lint(rule_dirs: tuple[Path, ...], home: Path | None, no_builtin: bool) -> None:
    """Check the rules; exit 1 when any has an error (it would not be loaded)."""
    ruleset = load(rule_dirs, home, no_builtin)
    for problem in ruleset.problems:
        click.echo(format_problem(problem))
    loaded = len(ruleset.rules) + len(ruleset.correlations)
    errors = len(ruleset.errors)
    click.echo(f"{loaded} rule(s) loaded, {errors} error(s), "
               f"{len(ruleset.problems) - errors} warning(s)", err=True)
    if errors:
        sys.exit(1)


def event_time_ms(event: dict[str, Any]) -> int:
    """The event's time in epoch milliseconds (0 when it has none)."""
    moment = event_time(event.get("timestamp"))
    return 0 if moment is None else int(moment.timestamp() * 1000)


def read_events(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(0-based line index, matchable event) for each non-blank line; `BadEvents` names the
    line that is not a JSON object."""
    for index, line in enumerate(stream):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise BadEvents(f"events line {index + 1}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise BadEvents(f"events line {index + 1}: not a JSON object")
        yield index, matchable(doc)


@rules.command()
@click.argument("rule_paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--events", "events_file", required=True, type=click.File("rb"),
              help="NDJSON events (REST or file shape); - for standard input.")
def test(rule_paths: tuple[Path, ...], events_file: IO[bytes]) -> None:
    """Run RULE_PATH... over --events; print one JSON object per match.

    Each line is {"rule_id", "rule_title", "event_index", "why"}, where event_index is the
    0-based line number in the events file. Exit 1 if a rule has errors, 2 if the events
    cannot be read.
    """
    ruleset = load_rules(list(rule_paths))
    for problem in ruleset.problems:
        click.echo(format_problem(problem), err=True)
    engine = Engine(ruleset.rules)
    correlator = Correlator(ruleset.correlations)
    for index, event in read_events(events_file):
        matched = engine.match(event)
        for rule in matched:
            click.echo(json.dumps({"rule_id": rule.id, "rule_title": rule.title,
                                   "event_index": index,
                                   "why": engine.explain(event, rule)}))
        # Correlations see the events in file order, at their own times; the event that
        # completes a window is the match's event_index.
        for hit in correlator.observe(matched, event, index, event_time_ms(event)):
            click.echo(json.dumps({"rule_id": hit.correlation.id,
                                   "rule_title": hit.correlation.title,
                                   "event_index": index, "event_indexes": list(hit.event_ids),
                                   "group": hit.group,
                                   "why": [f"{hit.correlation.sigma.type.name.lower()} "
                                           f"over {len(hit.event_ids)} events"]}))
    if ruleset.errors:
        sys.exit(1)
