"""Decoding Atlassian log lines, reusing the validated parts of earlier lines.

A log repeats a few dozen event types, authors and affected objects over millions of lines;
building and validating them again for every line is a third of decoding. `LineDecoder`
decodes the common file shape (``auditType``) as `model.wire` does and takes types, authors
and objects it has built before from a bounded cache (they are immutable). Anything else —
the REST shape, unknown fields, unusual values, invalid parts — goes to
`model.wire.decode_event`, which stays the authority on what is accepted and how errors are
worded; a test checks that the two agree. (The cache would sit as well in `model.wire`.)
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, TypeVar

import msgspec

from trailkeeper.errors import InvalidEventError
from trailkeeper.model.event import (
    AuditAttribute,
    AuditAuthor,
    AuditEvent,
    AuditResource,
    AuditType,
    ChangedValue,
)
from trailkeeper.model.parse import AREAS, LEVELS
from trailkeeper.model.timestamps import ms_to_datetime, parse_timestamp
from trailkeeper.model.wire import decode_event

T = TypeVar("T")
Text = str | None
Ident = str | int | None
_CACHE_LIMIT = 20_000  # parts per kind; past it the cache starts over


class _Type(msgspec.Struct, forbid_unknown_fields=True,
            rename={"category_key": "categoryI18nKey", "action_key": "actionI18nKey"}):
    category: Text = None
    action: Text = None
    area: str = "ECOSYSTEM"
    level: str = "BASE"
    category_key: Text = None
    action_key: Text = None


class _Author(msgspec.Struct, forbid_unknown_fields=True, rename={"avatar": "avatarUri"}):
    id: Ident = None
    name: Text = None
    type: Text = None
    uri: Text = None
    avatar: Text = None


class _Resource(msgspec.Struct, forbid_unknown_fields=True):
    type: Text = None
    name: Text = None
    id: Ident = None
    uri: Text = None


class _Changed(msgspec.Struct, forbid_unknown_fields=True,
               rename={"old": "from", "new": "to", "i18n_key": "i18nKey"}):
    key: Text = None
    old: Text = None
    new: Text = None
    i18n_key: Text = None


class _Attribute(msgspec.Struct, forbid_unknown_fields=True, rename={"name_key": "nameI18nKey"}):
    name: Text = None
    value: Text = None
    name_key: Text = None


class _Line(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    audit_type: _Type
    version: str = "1.0"
    id: Any = None  # ignored: the store assigns ids
    uid: Text = None
    timestamp: str | int | dict[str, int] | None = None
    author: _Author | None = None
    affected_objects: list[_Resource] | None = None
    changed_values: list[_Changed] | None = None
    extra_attributes: list[_Attribute] | None = None
    source: Text = None
    method: Text = None
    system: Text = None
    node: Text = None


_LINE = msgspec.json.Decoder(_Line)


class _Unusual(Exception):
    """Not the common case; the reference decoder handles it."""


class LineDecoder:
    """Decodes one line into an event; keep one per process (its cache is its state)."""

    def __init__(self) -> None:
        self._types: dict[Hashable, AuditType] = {}
        self._authors: dict[Hashable, AuditAuthor] = {}
        self._objects: dict[Hashable, AuditResource] = {}

    def __call__(self, raw: bytes) -> AuditEvent:
        """The event of one line; `InvalidEventError` (from `decode_event`) when it is bad."""
        if b'"auditType"' in raw:
            try:
                return self._build(_LINE.decode(raw))
            except (msgspec.DecodeError, InvalidEventError, TypeError, _Unusual):
                pass
        return decode_event(raw)

    def _build(self, line: _Line) -> AuditEvent:
        # What model.wire does, with the parts taken from the caches when seen before.
        if line.version != "1.0":
            raise _Unusual
        k = line.audit_type
        area, level = AREAS.get(k.area), LEVELS.get(k.level)
        if area is None or level is None:
            raise _Unusual
        timestamp = None
        if line.timestamp is not None:
            try:
                timestamp = ms_to_datetime(parse_timestamp(line.timestamp))
            except ValueError:
                raise _Unusual from None
        type_key = (k.category, k.action, area, level, k.category_key, k.action_key)
        kind = self._types.get(type_key)
        if kind is None:
            kind = _remember(self._types, type_key, AuditType(
                k.category or "", k.action or "", area, level, k.category_key, k.action_key))
        author = None
        if (a := line.author) is not None:
            author_key = (a.id, a.name, a.type, a.uri)
            author = self._authors.get(author_key)
            if author is None:
                author = _remember(self._authors, author_key, AuditAuthor(
                    _ident(a.id), a.name or "Unknown", a.type or "user",  # type: ignore[arg-type]
                    a.uri or None))
        objects = []
        for r in line.affected_objects or ():
            object_key = (r.type, r.name, r.id, r.uri)
            found = self._objects.get(object_key)
            if found is None:
                found = _remember(self._objects, object_key, AuditResource(
                    r.type, r.name, _ident(r.id), r.uri))  # type: ignore[arg-type]
            objects.append(found)
        return AuditEvent(
            type=kind, author=author, timestamp=timestamp, affected_objects=objects,
            changed_values=[ChangedValue(c.key, c.old, c.new, c.i18n_key)  # type: ignore[arg-type]
                            for c in line.changed_values or ()],
            extra_attributes=[AuditAttribute(x.name, x.value,  # type: ignore[arg-type]
                                             x.name_key)
                              for x in line.extra_attributes or ()],
            source=line.source, method=line.method, system=line.system, node=line.node,
            uid=line.uid,
        )


def _remember(cache: dict[Hashable, T], key: Hashable, part: T) -> T:
    """Keep a validated part (the constructor raised if it was not valid)."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = part
    return part


def _ident(value: Ident) -> str | None:
    return str(value) if isinstance(value, int) else value
