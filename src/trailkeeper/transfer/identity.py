"""Deterministic uids for imported events, so that importing twice stores nothing twice.

An event without a uid gets ``imp-<epoch ms, 12 hex>-<128-bit digest>[-<n>]``:

- the digest is SHA-256 of the event's canonical REST document (`AuditEvent.to_rest`, which
  orders keys, changed values and attributes) without area and level, so the same event
  read from a log line, an NDJSON line or an Atlassian REST export (which has no area or
  level) gets the same uid, whatever the file is called; a second copy that differs only in
  area or level is then recognised as already stored (`is_imported` uid, clash ignored);
- ``n`` counts the earlier records of the same source with the same content, so two identical
  records (the same login failure twice in one millisecond) stay two events;
- the time prefix keeps new uids near the end of the store's uid index (files are written in
  time order), where random keys would touch a different index page for nearly every event.

Events that carry their own uid keep it.
"""

from __future__ import annotations

import hashlib

import orjson

from trailkeeper.model.event import AuditAuthor, AuditEvent
from trailkeeper.storage.base import NewEvent
from trailkeeper.storage.rows import encode, search_text

PREFIX = "imp-"
DIGEST_BYTES = 16
DEFAULT_AUTHOR = AuditAuthor.UNKNOWN  # a record that names no author: we do not know who


def content(event: AuditEvent) -> tuple[bytes, bytes]:
    """The document `encode` would store for an event without uid, and its content digest."""
    rest = event.to_rest()
    rest.pop("id", None)
    document = orjson.dumps(rest)
    kind = rest["type"]
    del kind["area"], kind["level"]  # absent from Atlassian's REST entities
    return document, hashlib.sha256(orjson.dumps(rest)).digest()[:DIGEST_BYTES]


def is_imported(uid: str) -> bool:
    """Whether a uid is one this module derives from content."""
    return uid.startswith(PREFIX)


def imported_uid(event: AuditEvent, content_digest: bytes, occurrence: int) -> str:
    ms = event.timestamp_ms
    stamp = "none" if ms is None else f"{ms:012x}"
    uid = f"{PREFIX}{stamp}-{content_digest.hex()}"
    return f"{uid}-{occurrence}" if occurrence else uid


class Occurrences:
    """How many earlier records of one source had the same content digest."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}

    def count(self, content_digest: bytes) -> int:
        """This record's occurrence number (0 for the first), counting it."""
        seen = self._seen.get(content_digest, 0)
        self._seen[content_digest] = seen + 1
        return seen

    def repeats(self, digests: bytes) -> dict[int, int]:
        """Occurrence numbers of a run of concatenated digests, only those above 0."""
        found = {}
        for position, start in enumerate(range(0, len(digests), DIGEST_BYTES)):
            seen = self.count(digests[start:start + DIGEST_BYTES])
            if seen:
                found[position] = seen
        return found


def assign_uid(event: AuditEvent, uid: str) -> None:
    """Give a freshly read event its uid, in place.

    The reader built the event a moment ago and no one else holds it yet; `replace` would
    validate every part of it again, which costs more than hashing it.
    """
    object.__setattr__(event, "uid", uid)


def encode_imported(event: AuditEvent, document: bytes | None, received_ms: int) -> NewEvent:
    """`storage.rows.encode` of an imported event, given its `content` (None when unknown).

    Byte for byte what ``encode`` makes (a test holds them together), without rendering the
    event a second time: the uid is spliced into the document as its first key, which is
    where `AuditEvent.to_rest` puts it.
    """
    uid = event.uid
    ms = event.timestamp_ms
    if document is None or uid is None or ms is None or event.author is None:
        return encode(event, received_ms, DEFAULT_AUTHOR)
    full = b'{"uid":' + orjson.dumps(uid) + b"," + document[1:]
    return NewEvent(event, ms, event.author,
                    hashlib.sha256(full).digest(), full, search_text(event))
