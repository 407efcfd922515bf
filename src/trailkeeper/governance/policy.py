"""The audit policy every event passes before it is stored: denylist, coverage, redaction.

Order as Atlassian's pipeline (`DESIGN.md` §2): an event whose action is denied, or whose
level is above its area's configured level, is not recorded at all (counted by reason);
the rest are redacted. Presets (`bfauditlog`'s Audit Policy) set coverage and details.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from trailkeeper.governance.config import GovernanceConfig
from trailkeeper.governance.redaction import Redactor
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import AuditEvent

# Why an event was not recorded (a metric label and the ingest response's reason).
DENYLIST = "denylist"
COVERAGE = "coverage"

_RANK = {CoverageLevel.OFF: 0, CoverageLevel.BASE: 1, CoverageLevel.ADVANCED: 2,
         CoverageLevel.FULL: 3}


class Policy:
    """A compiled snapshot of the configuration: `screen` is called once per event."""

    def __init__(self, config: GovernanceConfig) -> None:
        self.config = config
        self._allowed = {area: _RANK[level] for area, level in config.coverage.items()}
        self._denied = config.denylist
        self._redactor = Redactor(config.max_length, config.sensitive_keys,
                                  keep_changes=config.details)

    def redact(self, event: AuditEvent) -> AuditEvent:
        """Redaction alone, keeping changed values whatever the policy (for Trailkeeper's
        own records, such as configuration changes, whose changes are their substance)."""
        return self._redactor.redact(event, keep_changes=True)

    def screen(self, event: AuditEvent) -> AuditEvent | str:
        """The event to store (redacted), or the reason it is not recorded."""
        t = event.type
        if t.action in self._denied:
            return DENYLIST
        if _RANK[t.level] > self._allowed[t.area]:
            return COVERAGE
        return self._redactor.redact(event)


class Preset(StrEnum):
    """`bfauditlog`'s Audit Policy values."""

    NONE = "NONE"
    SECURITY = "SECURITY"
    BASIC = "BASIC"
    DETAILED = "DETAILED"


def _levels(default: CoverageLevel, **areas: CoverageLevel
            ) -> Mapping[CoverageArea, CoverageLevel]:
    levels = {area: default for area in CoverageArea}
    levels.update({CoverageArea[name]: level for name, level in areas.items()})
    return MappingProxyType(levels)


_OFF, _BASE, _FULL = CoverageLevel.OFF, CoverageLevel.BASE, CoverageLevel.FULL

# (coverage, details) of each preset.
#  NONE      nothing is recorded;
#  SECURITY  sign-ins, tokens, users, groups, permissions and the audit log's own
#            configuration ("access group creation and user session activity"), without
#            changed values;
#  BASIC     every area at BASE, without changed values ("user, object type, uuid, action");
#  DETAILED  everything, with changed values.
PRESETS: Mapping[Preset, tuple[Mapping[CoverageArea, CoverageLevel], bool]] = {
    Preset.NONE: (_levels(_OFF), False),
    Preset.SECURITY: (_levels(_OFF, SECURITY=_FULL, USER_MANAGEMENT=_BASE, PERMISSIONS=_BASE,
                              AUDIT_LOG=_BASE), False),
    Preset.BASIC: (_levels(_BASE), False),
    Preset.DETAILED: (_levels(_FULL), True),
}


def preset_of(config: GovernanceConfig) -> str:
    """The preset the configuration equals, or ``CUSTOM``."""
    for preset, (coverage, details) in PRESETS.items():
        if dict(config.coverage) == dict(coverage) and config.details == details:
            return preset.value
    return "CUSTOM"


def parse_preset(name: str) -> Preset:
    try:
        return Preset(name.strip().upper())
    except ValueError:
        raise ValueError(f"unknown audit policy {name!r} (use NONE, SECURITY, BASIC or "
                         f"DETAILED)") from None
