"""The REST document the store keeps for every event, rendered fast.

Byte for byte ``orjson.dumps`` of `AuditEvent.to_rest` without ``id`` (a property test holds
them together), at a third of the cost on the ingest path: a producer repeats a few dozen
types, authors and objects over millions of events, so their JSON is rendered once and
reused as an `orjson.Fragment`; the event's own values are rendered each time.

`canonical_parts` renders the event's canonical bytes (`trailkeeper.integrity.canonical`)
the same way, split where the id goes: the store assigns ids later. Hashed up to the id
(`CanonicalDigest`), they let the store keep each event's Merkle leaf digest for the cost of
hashing the id and a short tail, which spares the tree's builder reading the document back
and re-encoding it (a property test holds the two ways together). Only writers with
integrity on render them; the plain document's path is untouched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, TypeVar

import orjson

from trailkeeper.model.event import (
    AuditAuthor,
    AuditEvent,
    AuditResource,
    AuditType,
    attributes_rest,
    author_rest,
    changes_rest,
    resource_rest,
    type_rest,
)

P = TypeVar("P", bound=Hashable)

# Parts are immutable and compared by value, so equal parts share one rendering. Bounded:
# past the limit a cache starts over.
_CACHE_LIMIT = 20_000
_types: dict[AuditType, orjson.Fragment] = {}
_authors: dict[AuditAuthor, orjson.Fragment] = {}
_objects: dict[AuditResource, orjson.Fragment] = {}
# The same parts in canonical form: keys sorted, an author without its avatar.
_canonical_types: dict[AuditType, bytes] = {}
_canonical_authors: dict[AuditAuthor, bytes] = {}
_canonical_objects: dict[AuditResource, bytes] = {}
_SORTED = orjson.OPT_SORT_KEYS
_TAIL_KEYS = ("method", "node", "source", "system", "uid")  # the ones that sort after "id"


class CanonicalParts(NamedTuple):
    """An event's canonical bytes without its id: ``head + b',"id":N,' + tail[1:]``."""

    head: bytes  # ``{"affectedObjects":…,"extraAttributes":[…]`` — the keys before "id"
    tail: bytes  # ``{"method":…,"version":"1.0"}`` — an object of the keys after it

    def join(self, event_id: int) -> bytes:
        return b'%s,"id":%d,%s' % (self.head, event_id, self.tail[1:])


class CanonicalDigest:
    """SHA-256 of an event's canonical bytes, hashed as far as its id: `digest` finishes it
    for the id the store assigns (as often as asked: a failed commit is retried)."""

    __slots__ = ("_head", "_tail")

    def __init__(self, parts: CanonicalParts) -> None:
        self._head = hashlib.sha256(parts.head)
        self._tail = parts.tail

    def digest(self, event_id: int) -> bytes:
        sha = self._head.copy()
        sha.update(b',"id":%d,' % event_id)
        sha.update(self._tail[1:])
        return sha.digest()


def _render(cache: dict[P, orjson.Fragment], part: P,
            render: Callable[[P], dict[str, Any]]) -> orjson.Fragment:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    found = cache[part] = orjson.Fragment(orjson.dumps(render(part)))
    return found


def rest_document(event: AuditEvent, timestamp: str | None,
                  author: AuditAuthor | None) -> bytes:
    """The event's REST document (without ``id``) with this timestamp (`format_iso`'s
    text) and author: its own, or the defaults the store fills in, or None to leave them
    out."""
    # Written out rather than in helpers and comprehensions: every call costs here.
    doc: dict[str, Any] = {}
    if event.uid is not None:
        doc["uid"] = event.uid
    if timestamp is not None:
        doc["timestamp"] = timestamp
    if author is not None:
        found = _authors.get(author)
        doc["author"] = _render(_authors, author, author_rest) if found is None else found
    kind = _types.get(event.type)
    doc["type"] = _render(_types, event.type, type_rest) if kind is None else kind
    objects = []
    for r in event.affected_objects:
        found = _objects.get(r)
        objects.append(_render(_objects, r, resource_rest) if found is None else found)
    doc["affectedObjects"] = objects
    doc["changedValues"] = changes_rest(event.changed_values) if event.changed_values else []
    if event.source is not None:
        doc["source"] = event.source
    if event.system is not None:
        doc["system"] = event.system
    if event.node is not None:
        doc["node"] = event.node
    if event.method is not None:
        doc["method"] = event.method
    doc["extraAttributes"] = (attributes_rest(event.extra_attributes)
                              if event.extra_attributes else [])
    return orjson.dumps(doc)


def canonical_parts(event: AuditEvent, timestamp_ms: int,
                    author: AuditAuthor) -> CanonicalParts:
    """The canonical bytes of the document `rest_document` renders for this time (as
    ``format_iso(timestamp_ms)``) and author, but for the id."""
    who = _canonical_authors.get(author)
    if who is None:
        who = _render_canonical(_canonical_authors, author, author_rest)
    kind = _canonical_types.get(event.type)
    if kind is None:
        kind = _render_canonical(_canonical_types, event.type, type_rest)
    objects = []
    for r in event.affected_objects:
        found = _canonical_objects.get(r)
        objects.append(_render_canonical(_canonical_objects, r, resource_rest)
                       if found is None else found)
    changes, attributes = event.changed_values, event.extra_attributes
    head = b"".join((
        b'{"affectedObjects":[', b",".join(objects), b'],"auditType":', kind,
        b',"author":', who,
        b',"changedValues":',
        orjson.dumps(changes_rest(changes), option=_SORTED) if changes else b"[]",
        b',"extraAttributes":',
        orjson.dumps(attributes_rest(attributes), option=_SORTED) if attributes else b"[]"))
    tail = {key: value for key in _TAIL_KEYS if (value := getattr(event, key)) is not None}
    tail["timestamp"] = {"epochSecond": timestamp_ms // 1000,
                         "nano": timestamp_ms % 1000 * 1_000_000}
    tail["version"] = "1.0"
    return CanonicalParts(head, orjson.dumps(tail, option=_SORTED))


def _render_canonical(cache: dict[P, bytes], part: P,
                      render: Callable[[P], dict[str, Any]]) -> bytes:
    """A part's canonical rendering: its REST one with keys sorted, an author without
    ``avatarUri`` and without an empty ``uri``."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    found = cache[part] = orjson.dumps(
        {key: value for key, value in render(part).items()
         if key != "avatarUri" and not (key == "uri" and not value)}, option=_SORTED)
    return found
