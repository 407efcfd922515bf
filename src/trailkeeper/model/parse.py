"""Parsing events from JSON: the REST shape, the Atlassian file shape, and batches of either.

Every problem is collected with its field path (``affectedObjects[1].name``) and, for batches,
the item's index, so one round trip tells a producer everything that is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from trailkeeper.errors import FieldProblem, InvalidEventError
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import (
    AuditAttribute,
    AuditAuthor,
    AuditEvent,
    AuditResource,
    AuditType,
    ChangedValue,
)
from trailkeeper.model.timestamps import ms_to_datetime, parse_timestamp

T = TypeVar("T")

_REST_KEYS = frozenset({
    "id", "uid", "timestamp", "author", "type", "affectedObjects", "changedValues",
    "extraAttributes", "source", "method", "system", "node",
})
_FILE_KEYS = frozenset({
    "id", "uid", "timestamp", "author", "auditType", "affectedObjects", "changedValues",
    "extraAttributes", "source", "method", "system", "node", "version",
})
_TYPE_KEYS = frozenset({"category", "categoryI18nKey", "action", "actionI18nKey", "area", "level"})
_AUTHOR_KEYS = frozenset({"id", "name", "type", "uri", "avatarUri"})
_RESOURCE_KEYS = frozenset({"type", "name", "id", "uri"})
_CHANGED_KEYS = frozenset({"key", "i18nKey", "from", "to"})
_ATTRIBUTE_KEYS = frozenset({"name", "nameI18nKey", "value"})
_SCALARS = ("uid", "source", "method", "system", "node")


class _Problems:
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[FieldProblem] = []

    def add(self, field: str, message: str) -> None:
        self.items.append(FieldProblem(field, message))

    def absorb(self, prefix: str, error: InvalidEventError) -> None:
        for p in error.problems:
            self.add(f"{prefix}.{p.field}" if prefix else p.field, p.message)


def _object(value: Any, path: str, allowed: frozenset[str], problems: _Problems) -> dict[str, Any]:
    if not isinstance(value, dict):
        problems.add(path, f"must be a JSON object, not {_json_type(value)}")
        return {}
    if allowed.issuperset(value):
        return value
    for key in value.keys() - allowed:
        problems.add(f"{path}.{key}" if path else str(key), "is not a known field")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def _ident(value: Any) -> Any:
    """Ids are strings in Atlassian's JSON; accept integers too, as producers often send them."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# Area and level names are accepted as written by Atlassian (AUDIT_LOG), lower-case, or in the
# kebab-case of the coverage REST body (audit-log).
AREAS = {
    spelling: area
    for area in CoverageArea
    for spelling in (area.value, area.value.lower(), area.kebab)
}
LEVELS = {
    spelling: level
    for level in (CoverageLevel.BASE, CoverageLevel.ADVANCED, CoverageLevel.FULL)
    for spelling in (level.value, level.value.lower())
}


def _type(data: Any, path: str, problems: _Problems) -> AuditType | None:
    d = _object(data, path, _TYPE_KEYS, problems)
    if not d and not isinstance(data, dict):
        return None
    raw_area, raw_level = d.get("area", "ECOSYSTEM"), d.get("level", "BASE")
    area = AREAS.get(raw_area) if isinstance(raw_area, str) else None
    level = LEVELS.get(raw_level) if isinstance(raw_level, str) else None
    if area is None:
        problems.add(f"{path}.area", f"{d.get('area')!r} is not one of {', '.join(CoverageArea)}")
    if level is None:
        problems.add(f"{path}.level", f"{d.get('level')!r} is not one of BASE, ADVANCED, FULL")
    try:
        kind = AuditType(
            category=d.get("category") or "",
            action=d.get("action") or "",
            area=area or CoverageArea.ECOSYSTEM,
            level=level or CoverageLevel.BASE,
            category_i18n_key=d.get("categoryI18nKey"),
            action_i18n_key=d.get("actionI18nKey"),
        )
    except InvalidEventError as exc:
        problems.absorb(path, exc)
        return None
    return kind if area and level else None


def _author(data: Any, problems: _Problems) -> AuditAuthor | None:
    if data is None:
        return None
    d = _object(data, "author", _AUTHOR_KEYS, problems)
    if not d:
        return None
    try:
        return AuditAuthor(
            id=_ident(d.get("id")),
            name=d.get("name") or "Unknown",
            type=d.get("type") or "user",
            uri=d.get("uri") or None,
        )
    except InvalidEventError as exc:
        problems.absorb("author", exc)
        return None


def _list(
    data: Any, path: str, allowed: frozenset[str], build: Callable[[dict[str, Any]], Any],
    problems: _Problems,
) -> list[Any]:
    if data is None:
        return []
    if not isinstance(data, list):
        problems.add(path, f"must be an array, not {_json_type(data)}")
        return []
    out = []
    for i, item in enumerate(data):
        where = f"{path}[{i}]"
        d = _object(item, where, allowed, problems)
        if not isinstance(item, dict):
            continue
        try:
            out.append(build(d))
        except InvalidEventError as exc:
            problems.absorb(where, exc)
        except TypeError as exc:  # a missing required argument
            problems.add(where, str(exc))
    return out


def _resource(d: dict[str, Any]) -> AuditResource:
    return AuditResource(type=d.get("type"), name=d.get("name"),  # type: ignore[arg-type]
                         id=_ident(d.get("id")), uri=d.get("uri"))


def _changed(d: dict[str, Any]) -> ChangedValue:
    return ChangedValue(key=d.get("key"), from_value=d.get("from"),  # type: ignore[arg-type]
                        to_value=d.get("to"), i18n_key=d.get("i18nKey"))


def _attribute(d: dict[str, Any]) -> AuditAttribute:
    return AuditAttribute(name=d.get("name"), value=d.get("value"),  # type: ignore[arg-type]
                          name_i18n_key=d.get("nameI18nKey"))


def _event(data: Any, *, file_shape: bool) -> AuditEvent:
    problems = _Problems()
    d = _object(data, "", _FILE_KEYS if file_shape else _REST_KEYS, problems)
    if not isinstance(data, dict):
        raise InvalidEventError(problems.items)
    type_key = "auditType" if file_shape else "type"
    kind = None
    if type_key not in d:
        problems.add(type_key, "is required")
    else:
        kind = _type(d[type_key], type_key, problems)
    if file_shape and d.get("version", "1.0") != "1.0":
        problems.add("version", f"{d.get('version')!r} is not supported; expected '1.0'")
    timestamp = None
    if d.get("timestamp") is not None:
        try:
            timestamp = ms_to_datetime(parse_timestamp(d["timestamp"]))
        except ValueError as exc:
            problems.add("timestamp", str(exc))
    author = _author(d.get("author"), problems)
    objects = _list(d.get("affectedObjects"), "affectedObjects", _RESOURCE_KEYS, _resource,
                    problems)
    changed = _list(d.get("changedValues"), "changedValues", _CHANGED_KEYS, _changed, problems)
    attributes = _list(d.get("extraAttributes"), "extraAttributes", _ATTRIBUTE_KEYS, _attribute,
                       problems)
    if problems.items or kind is None:
        raise InvalidEventError(problems.items)
    try:
        # ``id`` on input is ignored: the store assigns ids (exports can be re-posted as-is).
        return AuditEvent(
            type=kind, author=author, timestamp=timestamp, affected_objects=objects,
            changed_values=changed, extra_attributes=attributes,
            **{name: d.get(name) for name in _SCALARS},
        )
    except InvalidEventError as exc:
        problems.absorb("", exc)
        raise InvalidEventError(problems.items) from None


def event_from_rest(data: Any) -> AuditEvent:
    """An event from the REST shape (``type``, ISO or epoch-ms timestamp)."""
    return _event(data, file_shape=False)


def event_from_file(data: Any) -> AuditEvent:
    """An event from one line of an Atlassian audit log file (``auditType``)."""
    return _event(data, file_shape=True)


def event_from_any(data: Any) -> AuditEvent:
    """Either shape, told apart by ``auditType``."""
    return _event(data, file_shape=isinstance(data, dict) and "auditType" in data)


def parse_batch(items: Sequence[Any]) -> list[AuditEvent]:
    """Every item parsed, or `InvalidEventError` listing every problem of every item."""
    return parse_all(items, event_from_any)


def parse_all(items: Sequence[T], parse: Callable[[T], AuditEvent]) -> list[AuditEvent]:
    """``parse`` applied to every item; `InvalidEventError` collects every item's problems,
    each with the item's index."""
    events: list[AuditEvent] = []
    problems: list[FieldProblem] = []
    for index, item in enumerate(items):
        try:
            events.append(parse(item))
        except InvalidEventError as exc:
            problems.extend(FieldProblem(p.field or "(event)", p.message, index)
                            for p in exc.problems)
    if problems:
        raise InvalidEventError(problems)
    return events
