"""A checkpoint as an audit event: "Audit Log checkpoint signed".

Each checkpoint is recorded in the log itself, so it travels wherever events go — the
Atlassian-format audit log files, syslog, Splunk HEC — and every SIEM that receives them keeps
a copy outside this store: the witness that makes rewriting history detectable. The event
carries the signed note's parts (a note spans lines; attribute values here stay one line)
and the compact range, so a directory of audit log files can be verified from any
checkpoint it holds.

Pure: building and reading the event, no I/O.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trailkeeper.integrity.note import checkpoint_body
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import AuditAttribute, AuditAuthor, AuditEvent, AuditType
from trailkeeper.storage.merkle import CheckpointRecord

ACTION = "Audit Log checkpoint signed"
CATEGORY = "Auditing"
CATEGORY_KEY = "atlassian.audit.event.category.audit"
# Hashes per "Compact range" attribute: 16 base64 hashes and spaces stay far below the
# length at which redaction would replace the value with its digest.
_HASHES_PER_ATTRIBUTE = 16


@dataclass(frozen=True, slots=True)
class CheckpointClaim:
    """What a checkpoint event says; ``note`` still has to be verified with a trusted key."""

    note: str
    size: int
    last_id: int
    compact_range: tuple[bytes, ...]


def checkpoint_event(checkpoint: CheckpointRecord, verifier_key: str,
                     node: str | None = None) -> AuditEvent:
    """The audit event recording ``checkpoint`` (category "Auditing", area AUDIT_LOG)."""
    signatures = signature_lines(checkpoint.note, checkpoint.origin, checkpoint.size,
                                 checkpoint.root)
    attributes = [
        ("Origin", checkpoint.origin),
        ("Tree size", str(checkpoint.size)),
        ("Root hash", _b64(checkpoint.root)),
        ("Last event ID", str(checkpoint.last_id)),
        *(("Signature", line) for line in signatures),
        ("Public verifier", verifier_key),
    ]
    hashes = [_b64(h) for h in checkpoint.compact_range]
    for start in range(0, len(hashes), _HASHES_PER_ATTRIBUTE):
        attributes.append(("Compact range",
                           " ".join(hashes[start:start + _HASHES_PER_ATTRIBUTE])))
    return AuditEvent(
        type=AuditType(category=CATEGORY, action=ACTION, area=CoverageArea.AUDIT_LOG,
                       level=CoverageLevel.BASE, category_i18n_key=CATEGORY_KEY),
        author=AuditAuthor.SYSTEM,
        extra_attributes=tuple(AuditAttribute(name, value) for name, value in attributes),
        node=node,
    )


def is_checkpoint_line(line: Mapping[str, Any]) -> bool:
    """Whether an exported line (file shape) is a checkpoint event."""
    kind = line.get("auditType")
    return isinstance(kind, dict) and kind.get("action") == ACTION


def claim_of(attributes: Iterable[Mapping[str, Any]]) -> CheckpointClaim:
    """The checkpoint a checkpoint event's ``extraAttributes`` describe; raises ``ValueError``
    when they do not describe one."""
    values: dict[str, list[str]] = {}
    for attribute in attributes:
        name, value = attribute.get("name"), attribute.get("value")
        if isinstance(name, str) and isinstance(value, str):
            values.setdefault(name, []).append(value)

    def one(name: str) -> str:
        found = values.get(name, [])
        if len(found) != 1:
            raise ValueError(f"a checkpoint event has one {name!r} attribute")
        return found[0]

    size, last_id = _count(one("Tree size")), _count(one("Last event ID"))
    root = _unb64(one("Root hash"))
    signatures = values.get("Signature", [])
    if not signatures:
        raise ValueError("a checkpoint event has a 'Signature' attribute")
    note = checkpoint_body(one("Origin"), size, root) + "\n" + "".join(
        f"{line}\n" for line in signatures)
    hashes = tuple(_unb64(h) for part in values.get("Compact range", []) for h in part.split())
    if len(hashes) != size.bit_count():
        raise ValueError(f"the compact range of a tree of {size} leaves has "
                         f"{size.bit_count()} hashes, not {len(hashes)}")
    return CheckpointClaim(note, size, last_id, hashes)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    data = base64.b64decode(text, validate=True)
    if len(data) != 32 or _b64(data) != text:
        raise ValueError(f"{text[:60]!r} is not a base64 SHA-256 hash")
    return data


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise ValueError(f"{text[:30]!r} is not a count")
    return int(text)


def signature_lines(note: str, origin: str, size: int, root: bytes) -> Sequence[str]:
    """The signature lines of a signed checkpoint note (without their newlines)."""
    body = checkpoint_body(origin, size, root)
    return note[len(body) + 1:].rstrip("\n").split("\n")
