"""Trailkeeper: keep, search, export, watch and prove an audit trail."""

import typing as _typing

from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import (
    AuditAttribute,
    AuditAuthor,
    AuditEvent,
    AuditResource,
    AuditType,
    ChangedValue,
)
from trailkeeper.query.ast import AuditQuery

if _typing.TYPE_CHECKING:
    from trailkeeper.ingest.service import AuditService

__all__ = [
    "AuditAttribute",
    "AuditAuthor",
    "AuditEvent",
    "AuditQuery",
    "AuditResource",
    "AuditService",
    "AuditType",
    "ChangedValue",
    "CoverageArea",
    "CoverageLevel",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> _typing.Any:
    """`AuditService` on first use (PEP 562): importing it loads the recording pipeline,
    which a command that only reads, or a verifier's worker process, does not need."""
    if name == "AuditService":
        from trailkeeper.ingest.service import AuditService

        globals()[name] = AuditService  # found directly from now on
        return AuditService
    raise AttributeError(f"module 'trailkeeper' has no attribute {name!r}")
