"""The run-time governance configuration, kept in the store so every node sees the same.

One setting per row (`Storage.put_settings`), the value as JSON, so that a partial change
(one coverage area) never overwrites a concurrent change of another:

====================================  ====================================================
``coverage.<area-kebab>``             ``"off"|"base"|"advanced"|"full"`` (default base)
``denylist``                          sorted list of exact action names (default empty)
``details``                           whether changed values are kept (false under BASIC)
``redaction.max_length``              longest string kept as it is (default 1,024)
``redaction.sensitive_keys``          word patterns of keys whose values are always hashed
``retention.period``                  ISO period, e.g. ``"P3Y"`` (default 3 years)
``retention.max_rows``                row cap (default 10,000,000)
``retention.file.max_file_count``     Atlassian log files kept per node (default 100)
====================================  ====================================================

A stored value that cannot be read (edited by hand, written by a newer version) falls back
to its default with a warning rather than stopping the service.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson

from trailkeeper.governance.period import DEFAULT_RETENTION, Period
from trailkeeper.model.areas import CoverageArea, CoverageLevel

log = logging.getLogger("trailkeeper.governance")

DEFAULT_MAX_LENGTH = 1024
DEFAULT_MAX_ROWS = 10_000_000
DEFAULT_MAX_FILE_COUNT = 100
# Words of a key (split at case changes, spaces and punctuation) that mark its value as a
# secret; shell-style patterns, matched case-insensitively against each word and the key.
DEFAULT_SENSITIVE_KEYS = ("password*", "passwd", "passphrase", "pwd", "secret*", "*token*",
                          "*key", "*keys", "credential*")

MAX_DENYLIST = 1000  # Atlassian reads at most 1,000 denied actions
MAX_ACTION_LENGTH = 255
MIN_MAX_LENGTH = 16  # "sha256:" plus a few characters: shorter would hash everything
MAX_MAX_LENGTH = 100_000
MAX_SENSITIVE_KEYS = 100
MIN_ROWS = 10_000  # the row cap never prunes below this (Atlassian's floor)
MAX_ROWS = 10**12
MAX_FILE_COUNT = 100_000

COVERAGE_PREFIX = "coverage."
DENYLIST = "denylist"
DETAILS = "details"
MAX_LENGTH = "redaction.max_length"
SENSITIVE_KEYS = "redaction.sensitive_keys"
RETENTION_PERIOD = "retention.period"
RETENTION_MAX_ROWS = "retention.max_rows"
FILE_COUNT = "retention.file.max_file_count"

DEFAULT_COVERAGE: Mapping[CoverageArea, CoverageLevel] = MappingProxyType(
    {area: CoverageLevel.BASE for area in CoverageArea})


def coverage_setting(area: CoverageArea) -> str:
    return COVERAGE_PREFIX + area.kebab


@dataclass(frozen=True, slots=True)
class GovernanceConfig:
    """One consistent snapshot of every governance setting."""

    coverage: Mapping[CoverageArea, CoverageLevel] = field(default_factory=lambda: DEFAULT_COVERAGE)
    denylist: frozenset[str] = frozenset()
    details: bool = True
    max_length: int = DEFAULT_MAX_LENGTH
    sensitive_keys: tuple[str, ...] = DEFAULT_SENSITIVE_KEYS
    retention: Period = DEFAULT_RETENTION
    max_rows: int = DEFAULT_MAX_ROWS
    max_file_count: int = DEFAULT_MAX_FILE_COUNT
    version: int = field(default=0, compare=False)

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], version: int = 0) -> GovernanceConfig:
        values: dict[str, Any] = {}
        coverage = dict(DEFAULT_COVERAGE)
        for area in CoverageArea:
            level = _read(settings, coverage_setting(area), parse_level)
            if level is not None:
                coverage[area] = level
        values["coverage"] = MappingProxyType(coverage)
        for name, key, parse in (
            ("denylist", DENYLIST, lambda v: frozenset(parse_denylist(v))),
            ("details", DETAILS, _parse_bool),
            ("max_length", MAX_LENGTH, parse_max_length),
            ("sensitive_keys", SENSITIVE_KEYS, parse_sensitive_keys),
            ("retention", RETENTION_PERIOD, lambda v: Period.parse_iso(_string(v))),
            ("max_rows", RETENTION_MAX_ROWS, parse_max_rows),
            ("max_file_count", FILE_COUNT, parse_max_file_count),
        ):
            value = _read(settings, key, parse)
            if value is not None:
                values[name] = value
        return cls(**values, version=version)

    def coverage_json(self) -> dict[str, dict[str, str]]:
        """The Atlassian body: ``{"levelByArea": {"audit-log": "base", ...}}``."""
        return {"levelByArea": {area.kebab: self.coverage[area].value.lower()
                                for area in CoverageArea}}

    def denylist_json(self) -> dict[str, list[str]]:
        return {"actions": sorted(self.denylist)}


def _read(settings: Mapping[str, str], key: str, parse: Any) -> Any:
    text = settings.get(key)
    if text is None:
        return None
    try:
        return parse(orjson.loads(text))
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        log.warning("ignoring the stored setting %s (%s); using its default", key, exc)
        return None


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else {bool: "a boolean", int: "a number", float: "a number",
                                         str: "a string", list: "a list", dict: "an object"
                                         }.get(type(value), type(value).__name__)


def _parse_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {_kind(value)}")
    return value


def _whole(value: Any, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} must be a whole number, not {_kind(value)}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low:,} and {high:,}; got {value:,}")
    return value


# -- validation of new values: each raises ValueError with a message fit for a 400 ---------

def parse_area(key: Any) -> CoverageArea:
    """A coverage area by its kebab-case key (``audit-log``) or enum name (``AUDIT_LOG``)."""
    if isinstance(key, str):
        name = key.strip().upper().replace("-", "_")
        if name in CoverageArea.__members__:
            return CoverageArea[name]
    raise ValueError(f"No such value found: {key} (areas: "
                     f"{', '.join(a.kebab for a in CoverageArea)})")


def parse_level(value: Any) -> CoverageLevel:
    """A configured level: ``off``, ``base``, ``advanced`` or ``full`` (any case)."""
    if isinstance(value, str) and value.strip().upper() in CoverageLevel.__members__:
        return CoverageLevel[value.strip().upper()]
    raise ValueError(f"No such value found: {value} (levels: off, base, advanced, full)")


def parse_denylist(value: Any) -> list[str]:
    """Exact action names: strings, at most 1,000, duplicates dropped, sorted."""
    if not isinstance(value, list):
        raise ValueError(f"actions must be a list of action names, not {_kind(value)}")
    names: set[str] = set()
    for index, item in enumerate(value):
        names.add(parse_action(item, f"actions[{index}]"))
    if len(names) > MAX_DENYLIST:
        raise ValueError(f"the denylist may hold at most {MAX_DENYLIST:,} actions; "
                         f"this one would hold {len(names):,}")
    return sorted(names)


def parse_action(item: Any, where: str) -> str:
    if not isinstance(item, str):
        raise ValueError(f"{where} must be a string, not {_kind(item)}")
    if not item.strip():
        raise ValueError(f"{where} must not be empty")
    if len(item) > MAX_ACTION_LENGTH:
        raise ValueError(f"{where} is {len(item)} characters long; "
                         f"action names have at most {MAX_ACTION_LENGTH}")
    return item


def parse_max_length(value: Any) -> int:
    return _whole(value, "max length", MIN_MAX_LENGTH, MAX_MAX_LENGTH)


def parse_sensitive_keys(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"sensitive keys must be a list of patterns, not {_kind(value)}")
    if len(value) > MAX_SENSITIVE_KEYS:
        raise ValueError(f"at most {MAX_SENSITIVE_KEYS} sensitive key patterns are allowed")
    patterns = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or len(item) > 100:
            raise ValueError(f"sensitive key pattern {index} must be a non-empty string of at "
                             f"most 100 characters")
        patterns.append(item.strip().lower())
    return tuple(dict.fromkeys(patterns))


def parse_max_rows(value: Any) -> int:
    return _whole(value, "the row cap", MIN_ROWS, MAX_ROWS)


def parse_max_file_count(value: Any) -> int:
    return _whole(value, "maxFileCount", 1, MAX_FILE_COUNT)


def dumps(value: Any) -> str:
    """A setting's stored JSON text."""
    return orjson.dumps(value).decode()
