"""Finding a rule's field in an event.

A Sigma field name is looked up in the event (a file-shape dict, see `document.matchable`):

1. **Flat key first**: a top-level key spelled exactly like the whole name (``"author.name"``)
   wins.
2. **Dotted path**: otherwise the name is split on ``.`` and followed through nested objects.
3. **Arrays**: when the path meets a list, the rest of the path is followed in every element
   and the values found are collected in a list; a leaf then matches when *any* element
   matches (``affectedObjects.name`` matches if any affected object has that name).

Field names are **case-sensitive**: ``auditType.action`` is not ``audittype.action``.
A top-level ``timestamp`` that is an ISO-8601 string (a stored event, see `document.matchable`)
reads as ``{"epochSecond", "nano"}``, converted only when a rule looks at it.
Rule fields written in the REST shape (``type.action``, ``type.category``, ``type.area``,
``type.level``, ``type.categoryI18nKey``, ``type.actionI18nKey``) are aliased to their
file-shape names (``auditType.*``) when the rule is compiled, so both spellings work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from trailkeeper.detection.document import epoch_nano

__all__ = ["MISSING", "REST_ALIASES", "Resolver", "canonical_field", "event_strings",
           "reads_time", "resolver", "string_leaves"]


class _Missing:
    """The value of a field the event does not have (distinct from JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

REST_ALIASES: Final[Mapping[str, str]] = {
    f"type.{name}": f"auditType.{name}"
    for name in ("action", "category", "area", "level", "categoryI18nKey", "actionI18nKey")
}

Resolver = Callable[[Mapping[str, Any]], Any]


def canonical_field(name: str) -> str:
    """The file-shape name of a rule field (REST ``type.*`` names are aliases)."""
    return REST_ALIASES.get(name, name)


def _walk(node: Any, parts: list[str], start: int) -> Any:
    for i in range(start, len(parts)):
        if isinstance(node, Mapping):
            node = node.get(parts[i], MISSING)
            if node is MISSING:
                return MISSING
        elif isinstance(node, list):
            found: list[Any] = []
            for element in node:
                value = _walk(element, parts, i)
                if value is MISSING:
                    continue
                if isinstance(value, list):
                    found.extend(value)
                else:
                    found.append(value)
            return found if found else MISSING
        else:
            return MISSING
    return node


def reads_time(name: str) -> bool:
    """Whether field ``name`` can reach the event's top-level ``timestamp``."""
    return name.split(".", 1)[0] == "timestamp"


def _timed(name: str) -> Resolver:
    """The resolver of a ``timestamp`` field: an ISO string reads as its file shape."""
    parts = name.split(".")

    def timed(doc: Mapping[str, Any]) -> Any:
        value = doc.get(name, MISSING)
        if len(parts) > 1:
            if value is not MISSING:
                return value
            value = doc.get("timestamp", MISSING)
        if isinstance(value, str):
            value = epoch_nano(value) or value
        return value if len(parts) == 1 else _walk(value, parts, 1)
    return timed


def resolver(name: str) -> Resolver:
    """A function returning the value of field ``name`` in an event, or `MISSING`.

    The value is a list when the path went through an array (any-element semantics).
    """
    if reads_time(name):
        return _timed(name)
    parts = name.split(".")
    if len(parts) == 1:
        def flat(doc: Mapping[str, Any]) -> Any:
            return doc.get(name, MISSING)
        return flat
    if len(parts) == 2:
        head, tail = parts

        def dotted2(doc: Mapping[str, Any]) -> Any:
            value = doc.get(name, MISSING)
            if value is not MISSING:
                return value
            node = doc.get(head)
            if type(node) is dict:
                return node.get(tail, MISSING)
            if node is None:
                return MISSING
            return _walk(node, parts, 1)
        return dotted2

    def dotted(doc: Mapping[str, Any]) -> Any:
        value = doc.get(name, MISSING)
        if value is not MISSING:
            return value
        return _walk(doc, parts, 0)
    return dotted


def event_strings(doc: Mapping[str, Any]) -> list[str]:
    """Every string value of an event (what keywords search), an ISO ``timestamp`` excluded
    since rules see it as numbers."""
    stamp = doc.get("timestamp")
    if isinstance(stamp, str) and epoch_nano(stamp) is not None:
        return string_leaves([v for k, v in doc.items() if k != "timestamp"], [])
    return string_leaves(doc, [])


def string_leaves(node: Any, out: list[str]) -> list[str]:
    """Every string value anywhere in ``node`` (keys excluded), appended to ``out``."""
    stack = [node]
    pop, push = stack.pop, stack.extend
    append = out.append
    while stack:
        value = pop()
        kind = type(value)
        if kind is str:
            append(value)
        elif kind is dict:
            push(value.values())
        elif kind is list:
            push(value)
        elif isinstance(value, Mapping):
            push(value.values())
        elif isinstance(value, str):
            append(value)
    return out
