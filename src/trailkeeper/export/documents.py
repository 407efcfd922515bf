"""Stored rows as the writers read them: typed documents, and field values for ``fields``.

A stored ``doc`` is the REST shape of an event as JSON (see `StoredEvent`). The writers
decode it into the `Doc` structs below (msgspec: faster than a dict, and the nested structs
declare their fields alphabetically, so encoding them yields the Atlassian *file* shape
directly). Chosen ``fields`` go through the field catalogue, which reads plain dicts.

Documents come from our own encoder, but a store may also hold rows written by other tools.
Nothing a row holds stops an export: a document that does not decode strictly (invalid
UTF-8, a lone surrogate escape such as ``"\\ud800"``, a number where a string belongs, a
missing key, not JSON at all) is read leniently instead (`rescue`): bytes that are not UTF-8
and lone surrogates become U+FFFD, scalars of the wrong type become their JSON text, and what
cannot be read at all is left out, so such an event keeps at least its id and timestamp.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import msgspec
import orjson

from trailkeeper.model.event import AuditEvent
from trailkeeper.model.timestamps import format_iso
from trailkeeper.query.fields import Field
from trailkeeper.storage.base import StoredEvent

# -- the REST document, typed ------------------------------------------------------------
# gc=False: these hold only strings and lists of leaves, so they can never form a cycle.


class Author(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    id: str
    name: str
    type: str
    uri: str | None = None  # REST's avatarUri is not declared: the file shape has none


class Type(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    action: str
    actionI18nKey: str | None = None  # the JSON names, as Atlassian spells them
    area: str | None = None
    category: str
    categoryI18nKey: str | None = None
    level: str | None = None


class Resource(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    id: str | None = None
    name: str
    type: str
    uri: str | None = None


class Change(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False,
             rename={"old": "from", "new": "to"}):
    old: str | None = None
    i18nKey: str | None = None
    key: str
    new: str | None = None


class Attribute(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    name: str
    nameI18nKey: str | None = None
    value: str


class Doc(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One event in the REST shape; ``id`` is the store's (set from the row)."""

    id: int = 0
    uid: str | None = None
    timestamp: str | None = None
    author: Author | None = None
    type: Type
    affectedObjects: list[Resource] = []  # msgspec copies these defaults
    changedValues: list[Change] = []
    source: str | None = None
    system: str | None = None
    node: str | None = None
    method: str | None = None
    extraAttributes: list[Attribute] = []


decode = msgspec.json.Decoder(Doc).decode
# What a strict decode raises on a document it cannot take as it is.
UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def doc_of(row: StoredEvent) -> Doc:
    """The row's document, decoded strictly or else leniently; id and timestamp filled in."""
    try:
        doc = decode(row.doc)
    except UNREADABLE:
        doc = rescue(row.doc)
    doc.id = row.id
    if doc.timestamp is None:
        doc.timestamp = format_iso(row.timestamp_ms)
    return doc


def docs_of(rows: Iterable[StoredEvent]) -> Iterator[Doc]:
    for row in rows:
        yield doc_of(row)


def doc_of_event(event: AuditEvent) -> Doc:
    """An `AuditEvent` as a `Doc`, its changed values in the event's own order."""
    a, t = event.author, event.type
    return Doc(
        id=event.id or 0,
        uid=event.uid,
        timestamp=None if event.timestamp_ms is None else format_iso(event.timestamp_ms),
        author=None if a is None else Author(id=a.id, name=a.name, type=a.type, uri=a.uri),
        type=Type(action=t.action, actionI18nKey=t.action_i18n_key, area=t.area.value,
                  category=t.category, categoryI18nKey=t.category_i18n_key,
                  level=t.level.value),
        affectedObjects=[Resource(id=o.id, name=o.name, type=o.type, uri=o.uri)
                         for o in event.affected_objects],
        changedValues=[Change(old=c.from_value, i18nKey=c.i18n_key, key=c.key, new=c.to_value)
                       for c in event.changed_values],
        source=event.source, system=event.system, node=event.node, method=event.method,
        extraAttributes=[Attribute(name=x.name, nameI18nKey=x.name_i18n_key, value=x.value)
                         for x in event.extra_attributes],
    )


# -- lenient reading ------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def load_lenient(data: bytes) -> Any:
    """Any JSON value from bytes orjson refuses (None when it is not JSON at all)."""
    try:
        return _clean(json.loads(data.decode("utf-8", "replace")))
    except (ValueError, RecursionError):
        return None


def _clean(value: Any) -> Any:
    # json.loads keeps lone surrogates, which no UTF-8 output can hold.
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def rescue(data: bytes | Any) -> Doc:
    """A `Doc` from whatever a document holds (bytes, or an already parsed value)."""
    raw = load_lenient(data) if isinstance(data, bytes) else data
    d = raw if isinstance(raw, dict) else {}
    author = d.get("author")
    kind = _mapping(d.get("type"))
    return Doc(
        uid=_opt(d.get("uid")),
        timestamp=_opt(d.get("timestamp")),
        author=Author(id=_req(author.get("id")), name=_req(author.get("name")),
                      type=_req(author.get("type")), uri=_opt(author.get("uri")))
        if isinstance(author, dict) else None,
        type=Type(action=_req(kind.get("action")), actionI18nKey=_opt(kind.get("actionI18nKey")),
                  area=_opt(kind.get("area")), category=_req(kind.get("category")),
                  categoryI18nKey=_opt(kind.get("categoryI18nKey")),
                  level=_opt(kind.get("level"))),
        affectedObjects=[Resource(id=_opt(o.get("id")), name=_req(o.get("name")),
                                  type=_req(o.get("type")), uri=_opt(o.get("uri")))
                         for o in _items(d.get("affectedObjects"))],
        changedValues=[Change(old=_opt(c.get("from")), i18nKey=_opt(c.get("i18nKey")),
                              key=_req(c.get("key")), new=_opt(c.get("to")))
                       for c in _items(d.get("changedValues"))],
        source=_opt(d.get("source")), system=_opt(d.get("system")),
        node=_opt(d.get("node")), method=_opt(d.get("method")),
        extraAttributes=[Attribute(name=_req(x.get("name")),
                                   nameI18nKey=_opt(x.get("nameI18nKey")),
                                   value=_req(x.get("value")))
                         for x in _items(d.get("extraAttributes"))],
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _opt(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:  # nested deeper than orjson goes, or an integer > 64 bits
        pass
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    except (ValueError, RecursionError):
        return "\ufffd"


def _req(value: Any) -> str:
    return _opt(value) or ""


# -- field values ---------------------------------------------------------------------------


def dict_of(row: StoredEvent) -> dict[str, Any]:
    """The row's document as the dict the field catalogue reads, with ``id``."""
    try:
        doc = orjson.loads(row.doc)
    except orjson.JSONDecodeError:
        doc = load_lenient(row.doc)
    if type(doc) is not dict:
        doc = {}
    doc["id"] = row.id
    if "timestamp" not in doc:
        doc["timestamp"] = format_iso(row.timestamp_ms)
    return doc


def values_of(row: StoredEvent, fields: Sequence[Field]) -> list[str]:
    """The chosen fields of a row, as text."""
    doc = dict_of(row)
    try:
        return [f.extract(doc) for f in fields]
    except (AttributeError, TypeError):  # a part of the wrong shape (e.g. author: "x")
        fixed = msgspec.to_builtins(rescue(doc))
        fixed["id"] = row.id
        return [f.extract(fixed) for f in fields]
