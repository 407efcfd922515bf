"""One line of an Atlassian audit log file, rendered straight from a stored REST document.

The reference is ``AuditEvent.to_file()`` of the event the row holds (`StoredEvent.to_event`),
serialised with sorted keys. Building that event costs four times the rest of the file sink
together, and the stored document differs from the file shape in four places only, so this
module edits the document instead:

- ``type`` becomes ``auditType`` (the stored type already holds ``area`` and ``level``);
- the author loses ``avatarUri`` (and an empty ``uri``, which the model reads as none);
- ``timestamp`` becomes ``{"epochSecond", "nano"}``, from the row's epoch milliseconds;
- ``id`` (the row's) and ``"version": "1.0"`` are added.

Objects, changed values and attributes are stored with exactly the keys the file shape has,
nulls already left out. The document is decoded by msgspec against the form `encode` writes
(strings where the model has strings, no nulls, known areas and levels), in C and as fast as
a plain decode; anything else goes the reference way. A test checks the two agree byte for
byte. Pure: no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, Required, TypedDict, cast

import msgspec
import orjson

from trailkeeper.storage.base import StoredEvent

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

_Name = Annotated[str, msgspec.Meta(min_length=1)]  # the model reads "" as another value
_Area = Literal["AUDIT_LOG", "GLOBAL_CONFIG_AND_ADMINISTRATION", "USER_MANAGEMENT",
                "PERMISSIONS", "LOCAL_CONFIG_AND_ADMINISTRATION", "SECURITY",
                "END_USER_ACTIVITY", "ECOSYSTEM"]
_Level = Literal["BASE", "ADVANCED", "FULL"]


class _Type(TypedDict, total=False):
    category: Required[_Name]
    action: Required[_Name]
    area: Required[_Area]
    level: Required[_Level]
    categoryI18nKey: str
    actionI18nKey: str


class _Author(TypedDict, total=False):
    id: Required[str]
    name: Required[_Name]
    type: Required[_Name]
    uri: str
    avatarUri: str


class _Resource(TypedDict, total=False):
    type: Required[str]
    name: Required[str]
    id: str
    uri: str


_Changed = TypedDict("_Changed", {"key": Required[str], "i18nKey": str, "from": str,
                                  "to": str}, total=False)


class _Attribute(TypedDict, total=False):
    name: Required[str]
    nameI18nKey: str
    value: Required[str]


class _Doc(TypedDict, total=False):
    uid: str
    timestamp: Required[str]
    author: Required[_Author]
    type: Required[_Type]
    affectedObjects: Required[list[_Resource]]
    changedValues: Required[list[_Changed]]
    source: str
    system: str
    node: str
    method: str
    extraAttributes: Required[list[_Attribute]]


_DOC = msgspec.json.Decoder(_Doc)


def file_line(event: StoredEvent) -> bytes:
    """The event's line of an Atlassian audit log file, with its newline (UTF-8 JSON).

    Raises what `StoredEvent.to_event` raises for a document the model refuses.
    """
    try:
        doc = _DOC.decode(event.doc)
    except msgspec.DecodeError:  # ValidationError included
        return reference_line(event)
    ts = event.timestamp_ms
    try:
        same_time = (datetime.fromisoformat(doc["timestamp"]) - _EPOCH) // _ONE_MS == ts
    except (ValueError, TypeError):
        same_time = False
    if not same_time:  # the row and its document disagree
        return reference_line(event)
    out = cast(dict[str, object], doc)
    out["auditType"] = out.pop("type")
    author = doc["author"]
    author.pop("avatarUri", None)
    if "uri" in author and not author["uri"]:
        del author["uri"]
    out["timestamp"] = {"epochSecond": ts // 1000, "nano": ts % 1000 * 1_000_000}
    out["id"] = event.id
    out["version"] = "1.0"
    try:
        return orjson.dumps(out, option=_OPTIONS)
    except TypeError:  # e.g. a lone surrogate, which orjson does not write
        return reference_line(event)


def reference_line(event: StoredEvent) -> bytes:
    """The same line through the model: parse the document, then `AuditEvent.to_file`."""
    return orjson.dumps(event.to_event().to_file(), option=_OPTIONS)
