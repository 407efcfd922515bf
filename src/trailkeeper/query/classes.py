"""Audit classes (categories) and the fields each one offers: bfauditlog's ``-L`` listing.

Standard fields apply to every class. Changed values and extra attributes differ by class,
so they are read from the class's most recent events and offered in bfauditlog's typed form
(``soName``/``snName`` for a changed value, ``ioLevel``/``inLevel`` when its values are
integers, ``sxMode`` for an attribute).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from trailkeeper.query.ast import Compare, Node, all_of
from trailkeeper.query.fields import ALIASES, FIELDS
from trailkeeper.storage.base import Storage

SAMPLE_EVENTS = 500
_INTEGER = re.compile(r"-?\d{1,18}")
_PARTS = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class AuditClass:
    name: str
    actions: tuple[str, ...]


def audit_classes(storage: Storage) -> list[AuditClass]:
    by_class: dict[str, list[str]] = {}
    for entry in storage.actions():
        by_class.setdefault(entry.category, []).append(entry.action)
    return [AuditClass(name, tuple(actions)) for name, actions in by_class.items()]


def standard_fields() -> list[str]:
    """Field names every class has: canonical names, then the bfauditlog aliases."""
    return [*FIELDS, *ALIASES]


def class_fields(storage: Storage, category: str, scope: Node | None = None) -> list[str]:
    """The typed change and attribute fields seen in the class's recent events."""
    where = all_of([Compare("category", "=", category), *([scope] if scope else [])])
    page = storage.search(where, limit=SAMPLE_EVENTS)
    return typed_fields(orjson.loads(row.doc) for row in page.events)


def typed_fields(docs: Iterable[dict[str, object]]) -> list[str]:
    changes: dict[str, bool] = {}  # CamelKey -> every value seen is an integer
    attributes: dict[str, bool] = {}
    for doc in docs:
        for change in doc.get("changedValues") or []:  # type: ignore[attr-defined]
            key = camel(str(change.get("key") or ""))
            if key:
                numeric = all(_INTEGER.fullmatch(str(change.get(side) or "0"))
                              for side in ("from", "to"))
                changes[key] = changes.get(key, True) and numeric
        for attribute in doc.get("extraAttributes") or []:  # type: ignore[attr-defined]
            name = camel(str(attribute.get("name") or ""))
            if name:
                numeric = bool(_INTEGER.fullmatch(str(attribute.get("value") or "")))
                attributes[name] = attributes.get(name, True) and numeric
    names: list[str] = []
    for key, numeric in sorted(changes.items()):
        names += [f"so{key}", f"sn{key}"] + ([f"io{key}", f"in{key}"] if numeric else [])
    for name, numeric in sorted(attributes.items()):
        names += [f"sx{name}"] + ([f"ix{name}"] if numeric else [])
    return names


def camel(key: str) -> str:
    """``Default branch`` -> ``DefaultBranch``: the form bfauditlog's typed fields use."""
    return "".join(part[:1].upper() + part[1:] for part in _PARTS.findall(key))
