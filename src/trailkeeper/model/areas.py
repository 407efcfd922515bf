"""Coverage areas and levels, named as Atlassian names them."""

from __future__ import annotations

from enum import StrEnum


class CoverageArea(StrEnum):
    """What part of the system an event is about; coverage is configured per area."""

    AUDIT_LOG = "AUDIT_LOG"
    GLOBAL_CONFIG_AND_ADMINISTRATION = "GLOBAL_CONFIG_AND_ADMINISTRATION"
    USER_MANAGEMENT = "USER_MANAGEMENT"
    PERMISSIONS = "PERMISSIONS"
    LOCAL_CONFIG_AND_ADMINISTRATION = "LOCAL_CONFIG_AND_ADMINISTRATION"
    SECURITY = "SECURITY"
    END_USER_ACTIVITY = "END_USER_ACTIVITY"
    ECOSYSTEM = "ECOSYSTEM"

    @property
    def kebab(self) -> str:
        """The key used by the coverage REST body, e.g. ``audit-log``."""
        return self.value.lower().replace("_", "-")


class CoverageLevel(StrEnum):
    """An event's level (BASE..FULL) or an area's configured level (OFF..FULL)."""

    OFF = "OFF"
    BASE = "BASE"
    ADVANCED = "ADVANCED"
    FULL = "FULL"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {
    CoverageLevel.OFF: 0,
    CoverageLevel.BASE: 1,
    CoverageLevel.ADVANCED: 2,
    CoverageLevel.FULL: 3,
}

EVENT_LEVELS = (CoverageLevel.BASE, CoverageLevel.ADVANCED, CoverageLevel.FULL)
