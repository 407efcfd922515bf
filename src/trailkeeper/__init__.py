"""Trailkeeper: keep, search, export, watch and prove an audit trail."""

from trailkeeper.ingest.service import AuditService
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
