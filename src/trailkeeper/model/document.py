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
from trailkeeper.model.timestamps import format_iso

P = TypeVar("P", bound=Hashable)

# Parts are immutable and compared by value, so equal parts share one rendering. Bounded:
# past the limit a cache starts over.
_CACHE_LIMIT = 20_000
_types: dict[AuditType, orjson.Fragment] = {}
_authors: dict[AuditAuthor, orjson.Fragment] = {}
_objects: dict[AuditResource, orjson.Fragment] = {}


def _rendered(cache: dict[P, orjson.Fragment], part: P,
              render: Callable[[P], dict[str, Any]]) -> orjson.Fragment:
    found = cache.get(part)
    if found is None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        found = cache[part] = orjson.Fragment(orjson.dumps(render(part)))
    return found


def rest_document(event: AuditEvent, timestamp_ms: int | None,
                  author: AuditAuthor | None) -> bytes:
    """The event's REST document (without ``id``) with this timestamp and author: its own,
    or the defaults the store fills in, or None to leave them out."""
    doc: dict[str, Any] = {}
    if event.uid is not None:
        doc["uid"] = event.uid
    if timestamp_ms is not None:
        doc["timestamp"] = format_iso(timestamp_ms)
    if author is not None:
        doc["author"] = _rendered(_authors, author, author_rest)
    doc["type"] = _rendered(_types, event.type, type_rest)
    doc["affectedObjects"] = [_rendered(_objects, r, resource_rest)
                              for r in event.affected_objects]
    doc["changedValues"] = changes_rest(event.changed_values)
    if event.source is not None:
        doc["source"] = event.source
    if event.system is not None:
        doc["system"] = event.system
    if event.node is not None:
        doc["node"] = event.node
    if event.method is not None:
        doc["method"] = event.method
    doc["extraAttributes"] = attributes_rest(event.extra_attributes)
    return orjson.dumps(doc)
