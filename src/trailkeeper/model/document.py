"""The REST document the store keeps for every event, rendered fast.

Byte for byte ``orjson.dumps`` of `AuditEvent.to_rest` without ``id`` (a property test holds
them together), at a third of the cost on the ingest path: a producer repeats a few dozen
types, authors and objects over millions of events, so their JSON is rendered once and
reused as an `orjson.Fragment`; the event's own values are rendered each time.

`rest_document_and_digest` renders, from the same parts, the event's canonical bytes
(`trailkeeper.integrity.canonical`) as well, split where the id goes: the store assigns ids
later. Hashed up to the id (`CanonicalDigest`), they let the store keep each event's Merkle
leaf digest for the cost of hashing the id and a short tail, which spares the tree's builder
reading the document back and re-encoding it (a property test holds the two ways together).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

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
# A part's REST rendering and its canonical one (keys sorted; an author without its avatar).
Rendered = tuple[orjson.Fragment, bytes]

# Parts are immutable and compared by value, so equal parts share one rendering. Bounded:
# past the limit a cache starts over.
_CACHE_LIMIT = 20_000
_types: dict[AuditType, Rendered] = {}
_authors: dict[AuditAuthor, Rendered] = {}
_objects: dict[AuditResource, Rendered] = {}
_SORTED = orjson.OPT_SORT_KEYS
_TAIL_KEYS = ("method", "node", "source", "system", "uid")  # the document's, sorting after "id"
_ID_KEY = b',"id":'


class CanonicalDigest:
    """An event's canonical bytes cut where its id goes, with the part before it hashed
    ahead: `digest` finishes the SHA-256 for the id the store assigns (as often as asked: a
    failed commit is retried); `canonical` joins the bytes themselves."""

    __slots__ = ("_hashed", "_head", "_rest")

    def __init__(self, head: bytes, tail: bytes) -> None:
        """``head``: ``{"affectedObjects":…,"extraAttributes":[…]``, the keys before "id";
        ``tail``: ``{"method":…,"version":"1.0"}``, an object of the keys after it."""
        self._head = head
        self._hashed = hashlib.sha256(head + _ID_KEY)
        self._rest = tail[1:]

    def canonical(self, event_id: int) -> bytes:
        return b"%s%s%d,%s" % (self._head, _ID_KEY, event_id, self._rest)

    def digest(self, event_id: int) -> bytes:
        # One update of the id and the rest: this runs under the store's write lock.
        sha = self._hashed.copy()
        sha.update(b"%d,%s" % (event_id, self._rest))
        return sha.digest()


def _render(cache: dict[P, Rendered], part: P,
            render: Callable[[P], dict[str, Any]]) -> Rendered:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    rest = render(part)
    found = cache[part] = (orjson.Fragment(orjson.dumps(rest)),
                           orjson.dumps(_canonical_part(rest), option=_SORTED))
    return found


def _canonical_part(rest: dict[str, Any]) -> dict[str, Any]:
    """An author's canonical form leaves out ``avatarUri`` and an empty ``uri``; types and
    objects are as in REST."""
    return {key: value for key, value in rest.items()
            if key != "avatarUri" and not (key == "uri" and not value)}


def rest_document(event: AuditEvent, timestamp: str | None,
                  author: AuditAuthor | None) -> bytes:
    """The event's REST document (without ``id``) with this timestamp (`format_iso`'s
    text) and author: its own, or the defaults the store fills in, or None to leave them
    out."""
    return _document(event, timestamp, author, None)[0]


def rest_document_and_digest(event: AuditEvent, timestamp: str, timestamp_ms: int,
                             author: AuditAuthor) -> tuple[bytes, CanonicalDigest]:
    """`rest_document`, and the canonical bytes of the document it renders (for
    ``timestamp``, which is ``format_iso(timestamp_ms)``), hashed as far as the id."""
    doc, head, tail = _document(event, timestamp, author, timestamp_ms)
    return doc, CanonicalDigest(head, tail)


def _document(event: AuditEvent, timestamp: str | None, author: AuditAuthor | None,
              timestamp_ms: int | None) -> tuple[bytes, bytes, bytes]:
    """The document, and with ``timestamp_ms`` (and an author) the head and tail of the
    canonical bytes (`CanonicalDigest`); empty otherwise."""
    # Written out rather than in helpers and comprehensions: every call costs here.
    doc: dict[str, Any] = {}
    if event.uid is not None:
        doc["uid"] = event.uid
    if timestamp is not None:
        doc["timestamp"] = timestamp
    who = None
    if author is not None:
        who = _authors.get(author)
        if who is None:
            who = _render(_authors, author, author_rest)
        doc["author"] = who[0]
    kind = _types.get(event.type)
    if kind is None:
        kind = _render(_types, event.type, type_rest)
    doc["type"] = kind[0]
    objects = []
    for r in event.affected_objects:
        found = _objects.get(r)
        objects.append(_render(_objects, r, resource_rest) if found is None else found)
    doc["affectedObjects"] = [found[0] for found in objects]
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
    if timestamp_ms is None or who is None:
        return orjson.dumps(doc), b"", b""
    # The keys before "id", in order, joined from the parts' canonical renderings.
    changes, attributes = doc["changedValues"], doc["extraAttributes"]
    head = b"".join((
        b'{"affectedObjects":[', b",".join([found[1] for found in objects]),
        b'],"auditType":', kind[1], b',"author":', who[1],
        b',"changedValues":', orjson.dumps(changes, option=_SORTED) if changes else b"[]",
        b',"extraAttributes":',
        orjson.dumps(attributes, option=_SORTED) if attributes else b"[]"))
    # The keys after it (sorted as it is dumped): the event's own strings, time, version.
    tail = {key: value for key in _TAIL_KEYS if (value := doc.get(key)) is not None}
    tail["timestamp"] = {"epochSecond": timestamp_ms // 1000,
                         "nano": timestamp_ms % 1000 * 1_000_000}
    tail["version"] = "1.0"
    return orjson.dumps(doc), head, orjson.dumps(tail, option=_SORTED)
