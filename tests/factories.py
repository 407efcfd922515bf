"""Small builders for events used across the tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import (
    AuditAttribute,
    AuditAuthor,
    AuditEvent,
    AuditResource,
    AuditType,
    ChangedValue,
)
from trailkeeper.storage.base import NewEvent, Storage
from trailkeeper.storage.rows import Batch, encode

BASE_TIME = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

ALICE = AuditAuthor("11", "alice", "NORMAL")
BOB = AuditAuthor("12", "bob", "NORMAL")
PROJECT = AuditResource("PROJECT", "PRJ", "1")
OTHER_PROJECT = AuditResource("PROJECT", "OPS", "2")
REPO = AuditResource("REPOSITORY", "rep_1", "7")
OTHER_REPO = AuditResource("REPOSITORY", "rep_2", "8")


def event(
    action: str = "Repository created",
    *,
    category: str = "Repositories",
    minutes: float = 0,
    author: AuditAuthor | None = ALICE,
    objects: tuple[AuditResource, ...] = (PROJECT, REPO),
    uid: str | None = None,
    area: CoverageArea = CoverageArea.LOCAL_CONFIG_AND_ADMINISTRATION,
    level: CoverageLevel = CoverageLevel.BASE,
    **extra: Any,
) -> AuditEvent:
    return AuditEvent(
        type=AuditType(category, action, area, level),
        author=author,
        timestamp=BASE_TIME + timedelta(minutes=minutes),
        affected_objects=objects,
        uid=uid,
        **extra,
    )


def rich_event(**overrides: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "changed_values": (ChangedValue("Description", "old text", "new text",
                                        "bitbucket.audit.description"),),
        "extra_attributes": (AuditAttribute("target", "rep_1", "bitbucket.audit.target"),),
        "source": "10.50.73.5",
        "method": "Browser",
        "system": "http://bitbucket.internal:7990",
        "node": "8767044c-1b98-4d64-82db-ef29af8c3792",
    }
    fields.update(overrides)
    return event(**fields)


def new(e: AuditEvent, received_ms: int = 0) -> NewEvent:
    return encode(e, received_ms, AuditAuthor.SYSTEM)


def batch(storage: Storage, *events: AuditEvent) -> Batch:
    """Events as the writer hands them to a store: encoded and prepared."""
    encoded = [new(e) for e in events]
    return Batch.of(encoded, storage.prepare(encoded))


def ms(minutes: float) -> int:
    return int((BASE_TIME + timedelta(minutes=minutes)).timestamp() * 1000)
