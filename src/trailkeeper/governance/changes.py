"""The "Audit Log configuration updated" record of a configuration change.

Changed values follow Atlassian's (`atlassian-audit.md` §1.6): coverage as
``"security : base"`` -> ``"security : full"``, the retention period as ``"3 Years"``, the
denylist as a Java list string ``[a, b]``; Trailkeeper's own settings add their own keys.
"""

from __future__ import annotations

from trailkeeper.governance.config import GovernanceConfig
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import AuditAuthor, AuditEvent, AuditType, ChangedValue

CONFIG_UPDATED = "Audit Log configuration updated"
_CATEGORY_KEY = "atlassian.audit.event.category.audit"
_ACTION_KEY = "atlassian.audit.event.action.audit.config.updated"


def _coverage_text(area: CoverageArea, level: CoverageLevel) -> str:
    return f"{area.value.lower()} : {level.value.lower()}"


def _java_list(items: frozenset[str]) -> str:
    return "[" + ", ".join(sorted(items)) + "]"


def changed_values(before: GovernanceConfig, after: GovernanceConfig) -> list[ChangedValue]:
    """What differs between two configurations, in Atlassian's words where it has them."""
    changes: list[ChangedValue] = []
    for area in CoverageArea:
        old, new = before.coverage[area], after.coverage[area]
        if old != new:
            changes.append(ChangedValue("Coverage level", _coverage_text(area, old),
                                        _coverage_text(area, new),
                                        "atlassian.audit.event.change.coverage.level"))
    if before.retention != after.retention:
        changes.append(ChangedValue("Retention period", before.retention.describe(),
                                    after.retention.describe(),
                                    "atlassian.audit.event.change.retention"))
    if before.max_file_count != after.max_file_count:
        changes.append(ChangedValue("Retention file count", str(before.max_file_count),
                                    str(after.max_file_count),
                                    "atlassian.audit.event.change.retention.file"))
    if before.denylist != after.denylist:
        changes.append(ChangedValue("Deny list", _java_list(before.denylist),
                                    _java_list(after.denylist),
                                    "atlassian.audit.event.change.deny.list"))
    for key, old_value, new_value in (
        ("Changed values recorded", before.details, after.details),
        ("Redaction max length", before.max_length, after.max_length),
        ("Redaction patterns", before.sensitive_keys, after.sensitive_keys),
        ("Retention row cap", before.max_rows, after.max_rows),
    ):
        if old_value != new_value:
            changes.append(ChangedValue(key, _text(old_value), _text(new_value)))
    return changes


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def config_updated_event(before: GovernanceConfig, after: GovernanceConfig,
                         author: AuditAuthor, *, source: str | None = None,
                         method: str | None = None) -> AuditEvent | None:
    """The record of a change, or None when nothing changed."""
    changes = changed_values(before, after)
    if not changes:
        return None
    return AuditEvent(
        type=AuditType("Auditing", CONFIG_UPDATED, CoverageArea.AUDIT_LOG, CoverageLevel.BASE,
                       category_i18n_key=_CATEGORY_KEY, action_i18n_key=_ACTION_KEY),
        author=author,
        changed_values=tuple(changes),
        source=source,
        method=method,
    )
