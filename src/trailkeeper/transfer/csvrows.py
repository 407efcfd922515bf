"""Events back from the 12 columns of Atlassian's CSV export (and ours, `export.csv`).

The CSV is lossy: it has no area, level, i18n keys, author type or object URIs, and it joins
affected objects, changed values and attributes into one cell each. Those cells are split
back as the exporter joined them (``name (TYPE, id ID)``, ``key: from -> to``,
``name: value``, separated by ``", "``); a value that itself contains such a separator may
split differently. The event then has the model's defaults: area ECOSYSTEM, level BASE,
author type ``user`` (or the built-in System, Anonymous, Unknown by their ids).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from trailkeeper.errors import FieldProblem, InvalidEventError
from trailkeeper.export.csv import ATLASSIAN_COLUMNS
from trailkeeper.model.event import (
    AuditAttribute,
    AuditAuthor,
    AuditEvent,
    AuditResource,
    AuditType,
    ChangedValue,
)
from trailkeeper.model.timestamps import datetime_to_ms, ms_to_datetime

_WIDTH = len(ATLASSIAN_COLUMNS)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
_BUILT_IN = {a.id: a for a in (AuditAuthor.SYSTEM, AuditAuthor.ANONYMOUS, AuditAuthor.UNKNOWN)}
# Java's ZonedDateTime.toString(): 2021-11-27T17:38:58.087Z[UTC], +01:00[Europe/Paris].
_ZONE_SUFFIX = re.compile(r"\[[^\]]*\]$")
_OBJECT = re.compile(r"(.+?) \(([^(),]+?)(?:, id ([^()]*?))?\)(?:, |$)")
_CHANGE = re.compile(r"(.+?): (.*?) -> (.*?)(?:, (?=[^,]+?: .*? -> )|$)", re.DOTALL)
_ATTRIBUTE = re.compile(r"(.+?): (.*?)(?:, (?=[^,:]+: )|$)", re.DOTALL)


def is_header(row: list[str]) -> bool:
    return len(row) == _WIDTH and row[0].strip().lower() == "timestamp"


def is_footer(row: list[str]) -> bool:
    """``# 42 matching entries``, the last line of ``trailkeeper search -t CSV``."""
    return len(row) == 1 and row[0].startswith("# ")


def event_from_row(row: list[str]) -> AuditEvent:
    """One event from one CSV row; `InvalidEventError` says which column is wrong."""
    if len(row) != _WIDTH:
        raise InvalidEventError([FieldProblem(
            "(row)", f"has {len(row)} columns; Atlassian's CSV has {_WIDTH}")])
    cells = [_unescape(cell) for cell in row]
    (stamp, author_name, author_id, category, action, system, objects, changes, source,
     method, node, attributes) = cells
    problems: list[FieldProblem] = []
    timestamp = None
    if stamp:
        try:
            timestamp = _timestamp(stamp)
        except ValueError as exc:
            problems.append(FieldProblem("Timestamp", str(exc)))
    parts: dict[str, object] = {}
    for column, parse, cell in (("Affected objects", _objects, objects),
                                ("Changed values", _changes, changes),
                                ("Attributes", _attributes, attributes)):
        try:
            parts[column] = parse(cell)
        except InvalidEventError as exc:
            problems += [FieldProblem(f"{column}: {p.field}", p.message) for p in exc.problems]
        except ValueError as exc:
            problems.append(FieldProblem(column, str(exc)))
    try:
        kind = AuditType(category, action)
        author = _author(author_name, author_id)
    except InvalidEventError as exc:
        problems += exc.problems
    if problems:
        raise InvalidEventError(problems)
    return AuditEvent(
        type=kind, author=author, timestamp=timestamp,
        affected_objects=parts["Affected objects"],  # type: ignore[arg-type]
        changed_values=parts["Changed values"],  # type: ignore[arg-type]
        extra_attributes=parts["Attributes"],  # type: ignore[arg-type]
        system=system or None, source=source or None, method=method or None, node=node or None,
    )


def _unescape(cell: str) -> str:
    """Undo the exporter's formula guard: a leading apostrophe before = + - @ ..."""
    if cell.startswith("'") and cell[1:].lstrip(" ").startswith(_FORMULA_START):
        return cell[1:]
    return cell


def _timestamp(text: str) -> datetime:
    bare = _ZONE_SUFFIX.sub("", text.strip())
    try:
        parsed = datetime.fromisoformat(bare)
    except ValueError:
        raise ValueError(f"{text!r} is not a timestamp like 2021-11-27T17:38:58.087Z[UTC]") \
            from None
    if parsed.utcoffset() is None:
        raise ValueError(f"{text!r} has no time zone offset")
    return ms_to_datetime(datetime_to_ms(parsed.astimezone(UTC)))


def _author(name: str, author_id: str) -> AuditAuthor | None:
    if not name and not author_id:
        return None
    built_in = _BUILT_IN.get(author_id)
    if built_in is not None and name in ("", built_in.name):
        return built_in
    return AuditAuthor(author_id or "-3", name or "Unknown")


def _split(pattern: re.Pattern[str], cell: str, shape: str) -> list[re.Match[str]]:
    matches, position = [], 0
    while position < len(cell):
        match = pattern.match(cell, position)
        if match is None:
            raise ValueError(f"cannot read {cell[position:][:60]!r}; expected {shape}")
        matches.append(match)
        position = match.end()
    return matches


def _objects(cell: str) -> list[AuditResource]:
    return [AuditResource(m[2], m[1], m[3] or None)
            for m in _split(_OBJECT, cell, "name (TYPE, id ID), ...")]


def _changes(cell: str) -> list[ChangedValue]:
    return [ChangedValue(m[1], m[2] or None, m[3] or None)
            for m in _split(_CHANGE, cell, "key: from -> to, ...")]


def _attributes(cell: str) -> list[AuditAttribute]:
    return [AuditAttribute(m[1], m[2]) for m in _split(_ATTRIBUTE, cell, "name: value, ...")]
