"""Fast decoding of events from JSON bytes, for the ingest hot path.

msgspec decodes and type-checks a line in C; the event is then built with the same
constructors (and so the same validation) as `trailkeeper.model.parse`. Anything unusual —
unknown fields, wrong types, spellings the slow parser tolerates, invalid values — falls
back to that parser on the same bytes, which stays the one authority for what is accepted
and for the error messages. A property test checks the two agree.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, TypeVar

import msgspec
import orjson

from trailkeeper.errors import FieldProblem, InvalidEventError
from trailkeeper.model.event import (
    AuditAttribute,
    AuditAuthor,
    AuditEvent,
    AuditResource,
    AuditType,
    ChangedValue,
)
from trailkeeper.model.parse import AREAS, LEVELS, event_from_any, parse_all
from trailkeeper.model.timestamps import ms_to_datetime, parse_timestamp

T = TypeVar("T")
Text = str | None
Ident = str | int | None


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


class _Common(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
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


class _Rest(_Common, forbid_unknown_fields=True, rename="camel"):
    type: _Type | msgspec.UnsetType = msgspec.UNSET


class _File(_Common, forbid_unknown_fields=True, rename="camel"):
    audit_type: _Type | msgspec.UnsetType = msgspec.UNSET
    version: str | msgspec.UnsetType = msgspec.UNSET


_REST = msgspec.json.Decoder(_Rest)
_FILE = msgspec.json.Decoder(_File)
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])


class _Fallback(Exception):
    """The fast path does not handle this input; the reference parser will."""


def _ident(value: Ident) -> str | None:
    return str(value) if isinstance(value, int) else value


# Validated, immutable parts by their wire values. A producer repeats a few dozen types,
# authors and objects over millions of events; building and validating them again was a
# third of decoding. Bounded: past the limit a cache starts over.
_CACHE_LIMIT = 20_000
_types: dict[Hashable, AuditType] = {}
_authors: dict[Hashable, AuditAuthor] = {}
_objects: dict[Hashable, AuditResource] = {}


def _remember(cache: dict[Hashable, T], key: Hashable, part: T) -> T:
    """Keep a part its constructor accepted (it raised otherwise, and nothing is kept)."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = part
    return part


def _event(wire: _Rest | _File, kind: _Type) -> AuditEvent:
    area, level = AREAS.get(kind.area), LEVELS.get(kind.level)
    if area is None or level is None:
        raise _Fallback
    timestamp = None
    if wire.timestamp is not None:
        try:
            timestamp = ms_to_datetime(parse_timestamp(wire.timestamp))
        except ValueError:
            raise _Fallback from None
    type_key = (kind.category, kind.action, area, level, kind.category_key, kind.action_key)
    audit_type = _types.get(type_key)
    if audit_type is None:
        audit_type = _remember(_types, type_key, AuditType(
            kind.category or "", kind.action or "", area, level, kind.category_key,
            kind.action_key))
    author = None
    if (a := wire.author) is not None:
        author_key = (a.id, a.name, a.type, a.uri)
        author = _authors.get(author_key)
        if author is None:
            author = _remember(_authors, author_key, AuditAuthor(
                _ident(a.id), a.name or "Unknown", a.type or "user",  # type: ignore[arg-type]
                a.uri or None))
    objects = []
    for r in wire.affected_objects or ():
        object_key = (r.type, r.name, r.id, r.uri)
        found = _objects.get(object_key)
        if found is None:
            found = _remember(_objects, object_key, AuditResource(
                r.type, r.name, _ident(r.id), r.uri))  # type: ignore[arg-type]
        objects.append(found)
    return AuditEvent(
        type=audit_type,
        author=author,
        timestamp=timestamp,
        affected_objects=objects,
        changed_values=[ChangedValue(c.key, c.old, c.new, c.i18n_key)  # type: ignore[arg-type]
                        for c in wire.changed_values or ()],
        extra_attributes=[AuditAttribute(x.name, x.value, x.name_key)  # type: ignore[arg-type]
                          for x in wire.extra_attributes or ()],
        source=wire.source, method=wire.method, system=wire.system, node=wire.node,
        uid=wire.uid,
    )


def _fast(raw: bytes) -> AuditEvent:
    try:
        if b'"auditType"' in raw:
            file_wire = _FILE.decode(raw)
            if file_wire.version not in (msgspec.UNSET, "1.0") or \
                    isinstance(file_wire.audit_type, msgspec.UnsetType):
                raise _Fallback
            return _event(file_wire, file_wire.audit_type)
        rest_wire = _REST.decode(raw)
        if isinstance(rest_wire.type, msgspec.UnsetType):
            raise _Fallback
        return _event(rest_wire, rest_wire.type)
    except (msgspec.DecodeError, InvalidEventError, TypeError):
        raise _Fallback from None


def decode_event(raw: bytes) -> AuditEvent:
    """One event from its JSON bytes (either shape); `InvalidEventError` lists every problem."""
    try:
        return _fast(raw)
    except _Fallback:
        pass
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError([FieldProblem("(event)", f"malformed JSON: {exc}")]) from None
    return event_from_any(data)


def decode_events(items: list[bytes]) -> list[AuditEvent]:
    """Every item decoded, or `InvalidEventError` with every problem of every item."""
    return parse_all(items, decode_event)


def split_array(body: bytes) -> list[bytes] | None:
    """The raw items of a JSON array, or None when the body is not one."""
    try:
        return [bytes(item) for item in _ITEMS.decode(body)]
    except msgspec.DecodeError:
        return None
