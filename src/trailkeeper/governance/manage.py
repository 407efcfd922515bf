"""Changing the governance configuration: validate, store, apply, and record the change.

Every entry point (Atlassian REST, native admin API, CLI, the demo) goes through `update`,
so every change is recorded as "Audit Log configuration updated" with its from/to values.
The record is written whatever the coverage and denylist say (it is still redacted): an
administrator cannot switch auditing off without it showing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trailkeeper.errors import BadRequestError
from trailkeeper.governance import config as cfg
from trailkeeper.governance.changes import config_updated_event
from trailkeeper.governance.config import GovernanceConfig, coverage_setting, dumps
from trailkeeper.governance.period import Period
from trailkeeper.governance.policy import PRESETS, Preset
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.event import AuditAuthor


class ConfigurationChangeError(BadRequestError):
    """A refused change (400 with Atlassian's error body); nothing was stored."""


def update(service: AuditService, values: Mapping[str, str], author: AuditAuthor, *,
           source: str | None = None, method: str | None = None) -> GovernanceConfig:
    """Store validated settings, apply them on this node at once, record the change."""
    if not values:
        return service.governance.reload()
    before, after = service.governance.change(values)
    event = config_updated_event(before, after, author, source=source, method=method)
    if event is not None:
        service.submit([event], author=author, screen=False)
    return after


def _refuse(message: str) -> ConfigurationChangeError:
    return ConfigurationChangeError(message)


def _checked(parse: Any, value: Any) -> Any:
    try:
        return parse(value)
    except ValueError as exc:
        raise _refuse(str(exc)) from None


# -- request bodies -> settings (each raises ConfigurationChangeError) ---------------------

def coverage_values(body: Any) -> dict[str, str]:
    """``{"levelByArea": {"security": "full", ...}}`` (partial) -> settings."""
    if not isinstance(body, dict) or not isinstance(body.get("levelByArea"), dict):
        raise _refuse('The body must be {"levelByArea": {"<area>": "<level>", ...}}')
    unknown = sorted(set(body) - {"levelByArea"})
    if unknown:
        raise _refuse(f"Unknown field {unknown[0]!r}; the body holds only levelByArea")
    values = {}
    for key, level in body["levelByArea"].items():
        area = _checked(cfg.parse_area, key)
        values[coverage_setting(area)] = dumps(_checked(cfg.parse_level, level).value.lower())
    return values


def retention_values(body: Any) -> dict[str, str]:
    """``{"period": {"years": 3, "months": 0, "days": 0}}`` (plus our ``maxRows``)."""
    if not isinstance(body, dict) or ("period" not in body and "maxRows" not in body):
        raise _refuse('The body must be {"period": {"years": N, "months": N, "days": N}}')
    unknown = sorted(set(body) - {"period", "maxRows"})
    if unknown:
        raise _refuse(f"Unknown field {unknown[0]!r}; the body holds period (and maxRows)")
    values = {}
    if "period" in body:
        period = _checked(Period.from_json, body["period"])
        values[cfg.RETENTION_PERIOD] = dumps(period.iso())
    if "maxRows" in body:
        values[cfg.RETENTION_MAX_ROWS] = dumps(_checked(cfg.parse_max_rows, body["maxRows"]))
    return values


def file_retention_values(body: Any) -> dict[str, str]:
    """``{"maxFileCount": 100}``."""
    if not isinstance(body, dict) or "maxFileCount" not in body:
        raise _refuse('The body must be {"maxFileCount": N}')
    unknown = sorted(set(body) - {"maxFileCount"})
    if unknown:
        raise _refuse(f"Unknown field {unknown[0]!r}; the body holds only maxFileCount")
    return {cfg.FILE_COUNT: dumps(_checked(cfg.parse_max_file_count, body["maxFileCount"]))}


def denylist_replacement(body: Any) -> dict[str, str]:
    """PUT ``{"actions": [...]}``: the whole list."""
    if not isinstance(body, dict) or "actions" not in body:
        raise _refuse('The body must be {"actions": ["<action name>", ...]}')
    unknown = sorted(set(body) - {"actions"})
    if unknown:
        raise _refuse(f"Unknown field {unknown[0]!r}; the body holds only actions")
    return {cfg.DENYLIST: dumps(_checked(cfg.parse_denylist, body["actions"]))}


def denylist_edit(body: Any, current: frozenset[str]) -> dict[str, str]:
    """POST ``{"add": [...], "delete": [...]}`` against the current list."""
    if not isinstance(body, dict) or not ({"add", "delete"} & set(body)):
        raise _refuse('The body must be {"add": [...], "delete": [...]}')
    unknown = sorted(set(body) - {"add", "delete"})
    if unknown:
        raise _refuse(f"Unknown field {unknown[0]!r}; the body holds add and delete")
    lists = {}
    for name in ("add", "delete"):
        items = body.get(name) or []
        if not isinstance(items, list):
            raise _refuse(f"{name} must be a list of action names")
        lists[name] = [_checked(lambda v, n=name, i=i: cfg.parse_action(v, f"{n}[{i}]"), item)
                       for i, item in enumerate(items)]
    actions = (set(current) | set(lists["add"])) - set(lists["delete"])
    return {cfg.DENYLIST: dumps(_checked(cfg.parse_denylist, sorted(actions)))}


def preset_values(preset: Preset) -> dict[str, str]:
    """The settings of a `bfauditlog` Audit Policy preset."""
    coverage, details = PRESETS[preset]
    values = {coverage_setting(area): dumps(level.value.lower())
              for area, level in coverage.items()}
    values[cfg.DETAILS] = dumps(details)
    return values


def redaction_values(max_length: Any = None, sensitive_keys: Any = None) -> dict[str, str]:
    values = {}
    if max_length is not None:
        values[cfg.MAX_LENGTH] = dumps(_checked(cfg.parse_max_length, max_length))
    if sensitive_keys is not None:
        values[cfg.SENSITIVE_KEYS] = dumps(list(_checked(cfg.parse_sensitive_keys,
                                                         sensitive_keys)))
    return values
