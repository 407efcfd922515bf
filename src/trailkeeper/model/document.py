"""The REST document the store keeps for every event, rendered fast.

Byte for byte ``orjson.dumps`` of `AuditEvent.to_rest` without ``id`` (a property test holds
them together), at a third of the cost on the ingest path: a producer repeats a few dozen
types, authors and objects over millions of events, so their JSON is rendered once and
reused as an `orjson.Fragment`; the event's own values are rendered each time.
"""

from __future__ import annotations

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

# Parts are immutable and compared by value, so equal parts share one rendering. Bounded:
# past the limit a cache starts over.
_CACHE_LIMIT = 20_000
_types: dict[AuditType, orjson.Fragment] = {}
_authors: dict[AuditAuthor, orjson.Fragment] = {}
_objects: dict[AuditResource, orjson.Fragment] = {}


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
