"""The canonical bytes of an event and the leaf record the Merkle tree hashes.

**Canonical bytes** are the event as one line of an Atlassian audit log file, the shape
Trailkeeper writes to its log files and NDJSON exports (`trailkeeper.consumers.fileline`):
``auditType`` (with ``area`` and ``level``), the author without ``avatarUri`` (and without an
empty ``uri``), ``timestamp`` as ``{"epochSecond", "nano"}``, our ``id``, the producer's
``uid`` when there is one, and ``"version": "1.0"``; nulls left out. Serialised as JSON with
the keys of every object sorted by code point, no whitespace, UTF-8, and only ``"``, ``\\``
and the C0 controls escaped (``\\b \\f \\n \\r \\t``, the others as ``\\u00xx``) — which is
what both ``orjson.dumps(..., option=OPT_SORT_KEYS)`` and ``json.dumps(..., sort_keys=True,
separators=(",", ":"), ensure_ascii=False)`` write. So anyone can recompute them from an
exported line: parse it, serialise it again so. Re-encoding the same content (other
escapes, another key order, pretty printing) gives the same bytes; changing any value does
not.

The **leaf record** (49 bytes) is what the tree's leaf hash covers, ``SHA-256(0x00 ||
record)``::

    version (1 byte, 0x01) || id (uint64, big-endian) || timestamp (int64 ms, big-endian)
    || SHA-256(canonical bytes)

The id and time are bound in the clear so that the record of an event removed by retention
still shows which event it was and how old: enough to tell an expiry from a deletion.

Pure functions: no I/O.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from trailkeeper.integrity.merkle import leaf_hash
from trailkeeper.model.timestamps import format_iso

__all__ = [
    "LEAF_VERSION",
    "RECORD_SIZE",
    "CanonicalError",
    "LeafRecord",
    "canonical_from_doc",
    "canonical_from_line",
    "digest_record",
    "leaf_record",
    "record_event_id",
    "stored_record",
]

LEAF_VERSION = 1
RECORD_SIZE = 49
_RECORD = struct.Struct(">BQq32s")


class CanonicalError(ValueError):
    """The input is not an event whose canonical bytes can be computed."""


@dataclass(frozen=True, slots=True)
class LeafRecord:
    """A decoded leaf record."""

    event_id: int
    timestamp_ms: int
    digest: bytes  # SHA-256 of the canonical bytes

    @classmethod
    def decode(cls, record: bytes) -> LeafRecord:
        if len(record) != RECORD_SIZE:
            raise CanonicalError(f"a leaf record has {RECORD_SIZE} bytes, not {len(record)}")
        version, event_id, ts, digest = _RECORD.unpack(record)
        if version != LEAF_VERSION:
            raise CanonicalError(f"unknown leaf record version {version}")
        return cls(event_id, ts, digest)

    def encode(self) -> bytes:
        return _RECORD.pack(LEAF_VERSION, self.event_id, self.timestamp_ms, self.digest)

    @property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.encode())


def record_event_id(record: bytes) -> int:
    """The event id field of a leaf record as it stands, whatever its version byte says
    (for finding a leaf; checking the record is the verifier's work)."""
    return int.from_bytes(record[1:9], "big")


def leaf_record(event_id: int, timestamp_ms: int, canonical: bytes) -> bytes:
    """The 49-byte leaf record of an event."""
    return digest_record(event_id, timestamp_ms, hashlib.sha256(canonical).digest())


# digest_record(event_id, timestamp_ms, digest): the leaf record of an event whose canonical
# bytes hash to ``digest`` (the leaf digest its writer stored, `model.document.CanonicalDigest`).
# A partial of the C packer: the tree builder calls it for every event.
digest_record: Callable[[int, int, bytes], bytes] = functools.partial(_RECORD.pack, LEAF_VERSION)


def stored_record(event_id: int, row_ts: int, doc: bytes) -> bytes:
    """The leaf record of a stored event. A document that is not an event (which ingest
    never writes) is hashed as it is stored, with the row's time, so that it still has a
    leaf and any later change to it shows."""
    try:
        ts, canonical = canonical_from_doc(doc, event_id)
    except CanonicalError:
        ts, canonical = row_ts, doc
    return leaf_record(event_id, ts, canonical)


def canonical_from_doc(doc: bytes, event_id: int) -> tuple[int, bytes]:
    """(timestamp ms, canonical bytes) of a stored event from its REST document.

    The time is the document's own (a row whose indexed time disagrees with it is caught by
    comparing the row with the record). Raises `CanonicalError` when the document is not a
    JSON object with a readable ``timestamp``, ``type`` and ``author``.
    """
    try:
        out = orjson.loads(doc)
    except orjson.JSONDecodeError as exc:
        raise CanonicalError(f"the stored document is not JSON: {exc}") from None
    if not isinstance(out, dict):
        raise CanonicalError("the stored document is not a JSON object")
    author, stamp = out.get("author"), out.get("timestamp")
    if not isinstance(author, dict) or not isinstance(stamp, str) or "type" not in out:
        raise CanonicalError("the stored document lacks its author, type or timestamp")
    ts = _iso_ms(stamp)
    if not _spelled_as_written(stamp, ts) and format_iso(ts) != stamp:
        # Only the spelling Trailkeeper writes is canonical: the instant alone would let
        # "…T10:00:00Z" become "…X10:00:00Z" (fromisoformat takes any separator) unseen,
        # though clients are served the document as stored.
        raise CanonicalError(f"the stored timestamp {stamp!r} is not in canonical form")
    out["auditType"] = out.pop("type")
    author.pop("avatarUri", None)
    if "uri" in author and not author["uri"]:
        del author["uri"]
    out["timestamp"] = {"epochSecond": ts // 1000, "nano": ts % 1000 * 1_000_000}
    out["id"] = event_id
    out["version"] = "1.0"
    return ts, _dump(out)


def canonical_from_line(line: Any) -> tuple[int, int, bytes]:
    """(id, timestamp ms, canonical bytes) of an event read from an exported line (its
    parsed JSON object: NDJSON export or audit log file). Raises `CanonicalError` when it
    has no integer ``id`` or no ``{"epochSecond", "nano"}`` timestamp."""
    if not isinstance(line, dict):
        raise CanonicalError("the line is not a JSON object")
    event_id, stamp = line.get("id"), line.get("timestamp")
    if type(event_id) is not int or event_id <= 0:
        raise CanonicalError("the line has no positive integer id")
    if not isinstance(stamp, dict):
        raise CanonicalError("the line has no {epochSecond, nano} timestamp")
    seconds, nano = stamp.get("epochSecond"), stamp.get("nano")
    if type(seconds) is not int or type(nano) is not int or not 0 <= nano < 1_000_000_000:
        raise CanonicalError("the line's timestamp is not {epochSecond, nano} integers")
    return event_id, seconds * 1000 + nano // 1_000_000, _dump(line)


def _dump(value: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:  # e.g. an integer beyond 64 bits
        raise CanonicalError(f"the event cannot be serialised canonically: {exc}") from None


def _spelled_as_written(stamp: str, ts: int) -> bool:
    """The shape `format_iso` writes for four-digit years (``…-DDTHH:MM:SS.mmmZ``, or
    ``…:SSZ`` at whole seconds), checked without formatting: ``stamp`` already parsed to
    ``ts``, so its digits are digits. A False here is decided by `format_iso` itself."""
    n = len(stamp)
    if n == 24:
        shaped = stamp[19] == "." and ts % 1000 != 0
    elif n == 20:
        shaped = ts % 1000 == 0
    else:
        return False
    return (shaped and stamp[23 if n == 24 else 19] == "Z" and stamp[10] == "T"
            and stamp[0] != "0" and stamp[4] == "-" and stamp[7] == "-" and stamp[13] == ":"
            and stamp[16] == ":")


def _iso_ms(stamp: str) -> int:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        raise CanonicalError(f"the stored timestamp {stamp!r} is not ISO-8601") from None
    if moment.tzinfo is None:
        raise CanonicalError(f"the stored timestamp {stamp!r} has no time zone")
    # Exact for millisecond times (a double holds them with digits to spare); a finer time
    # is not canonical anyway (see _spelled_as_written).
    return round(moment.timestamp() * 1000)
