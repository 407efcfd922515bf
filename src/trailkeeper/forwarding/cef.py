"""ArcSight Common Event Format (CEF) lines of audit events and alerts. Pure: no I/O.

``CEF:0|Trailkeeper|Trailkeeper|<version>|<signature id>|<name>|<severity>|<extensions>``

Header fields escape ``\\`` and ``|`` (and have line breaks replaced by spaces);
extension values escape ``\\`` and ``=`` and write line breaks as ``\\n`` and ``\\r``, so a
line is always one line. Values are cut to the lengths of the CEF specification (``act``
63, ``msg`` and names 1023, ``cs1``-``cs6`` 4000 characters); the JSON format carries
everything in full.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from trailkeeper import __version__
from trailkeeper.alerts.model import AlertRecord
from trailkeeper.storage.base import StoredEvent

VENDOR = PRODUCT = "Trailkeeper"

# Severity of an audit event by its coverage area (CEF 0-10; 3 for anything else).
AREA_SEVERITY: dict[str, int] = {
    "SECURITY": 7, "PERMISSIONS": 6, "USER_MANAGEMENT": 5,
    "GLOBAL_CONFIG_AND_ADMINISTRATION": 5, "LOCAL_CONFIG_AND_ADMINISTRATION": 4,
    "AUDIT_LOG": 4,
}
DEFAULT_SEVERITY = 3
# Severity of an alert by its rule's level.
LEVEL_SEVERITY: dict[str, int] = {
    "critical": 10, "high": 8, "medium": 5, "low": 3, "informational": 1,
}

_HEADER = str.maketrans({"\\": "\\\\", "|": "\\|", "\n": " ", "\r": " "})
_VALUE = str.maketrans({"\\": "\\\\", "=": "\\=", "\n": "\\n", "\r": "\\r"})
_LIMITS = {"act": 63, "dvchost": 100, "externalId": 40, "deviceExternalId": 255}
_DEFAULT_LIMIT = 1023
_CUSTOM_LIMIT = 4000


def header(value: object) -> str:
    """A header field, escaped."""
    return str(value).translate(_HEADER)


def value(text: object) -> str:
    """An extension value, escaped."""
    return str(text).translate(_VALUE)


def _extensions(pairs: Iterable[tuple[str, object]]) -> str:
    parts = []
    for key, raw in pairs:
        if raw is None or raw == "":
            continue
        limit = _CUSTOM_LIMIT if key[:2] in ("cs", "cn") and not key.endswith("Label") \
            else _LIMITS.get(key, _DEFAULT_LIMIT)
        parts.append(f"{key}={value(str(raw)[:limit])}")
    return " ".join(parts)


def cef_line(*, signature_id: str, name: str, severity: int,
             extensions: Iterable[tuple[str, object]], version: str = __version__) -> str:
    """One CEF line (no line break); empty extension values are left out."""
    fields = (header(VENDOR), header(PRODUCT), header(version),
              header(signature_id[:1023]), header(name[:512]),
              str(min(10, max(0, severity))), _extensions(extensions))
    return "CEF:0|" + "|".join(fields)


def _ip_fields(source: object) -> list[tuple[str, object]]:
    if not isinstance(source, str):
        return []
    try:
        address = ipaddress.ip_address(source.strip())
    except ValueError:
        return [("cs5Label", "source"), ("cs5", source)]
    if address.version == 4:
        return [("src", str(address))]
    return [("c6a2Label", "Source IPv6 Address"), ("c6a2", str(address))]


def _host_of(system: object) -> str | None:
    if not isinstance(system, str) or not system:
        return None
    try:
        return urlsplit(system).hostname or system
    except ValueError:
        return system


def _joined(items: Iterable[str]) -> str:
    return ";".join(items)


def event_cef(event: StoredEvent) -> str:
    """The CEF line of a stored audit event (its REST document)."""
    doc: dict[str, Any] = orjson.loads(event.doc)
    kind: Mapping[str, Any] = doc.get("type") or {}
    author: Mapping[str, Any] = doc.get("author") or {}
    action = str(kind.get("action") or "")
    objects = doc.get("affectedObjects") or []
    changes = doc.get("changedValues") or []
    attributes = doc.get("extraAttributes") or []
    extensions: list[tuple[str, object]] = [
        ("rt", event.timestamp_ms),
        ("act", action),
        ("cat", kind.get("category")),
        ("suser", author.get("name")),
        ("suid", author.get("id")),
        *_ip_fields(doc.get("source")),
        ("dvchost", _host_of(doc.get("system"))),
        ("externalId", event.id),
        ("msg", _joined(f"{c.get('key')}: {c.get('from', '')} -> {c.get('to', '')}"
                        for c in changes)),
        ("cs1Label", "affectedObjects"),
        ("cs1", _joined(f"{o.get('type')}:{o.get('name')}" for o in objects)),
        ("cs2Label", "extraAttributes"),
        ("cs2", _joined(f"{a.get('name')}:{a.get('value')}" for a in attributes)),
        ("cs3Label", "area"), ("cs3", kind.get("area")),
        ("cs4Label", "uid"), ("cs4", doc.get("uid")),
        ("cs6Label", "method"), ("cs6", doc.get("method")),
        ("deviceExternalId", doc.get("node")),
    ]
    return cef_line(
        signature_id=str(kind.get("actionI18nKey") or action),
        name=action,
        severity=AREA_SEVERITY.get(str(kind.get("area")), DEFAULT_SEVERITY),
        extensions=extensions)


def alert_cef(alert: AlertRecord, *, link: str | None = None) -> str:
    """The CEF line of an alert."""
    return cef_line(
        signature_id=alert.rule_id,
        name=alert.rule_title,
        severity=LEVEL_SEVERITY.get(alert.level or "", DEFAULT_SEVERITY),
        extensions=[
            ("rt", alert.timestamp_ms),
            ("end", alert.last_ms),
            ("externalId", alert.id),
            ("cat", "alert"),
            ("cnt", alert.count),
            ("request", link),
            ("cs1Label", "tags"), ("cs1", _joined(alert.tags)),
            ("cs2Label", "eventIds"), ("cs2", _joined(str(i) for i in alert.event_ids)),
            ("cs3Label", "group"),
            ("cs3", _joined(f"{k}:{v}" for k, v in sorted(alert.group.items()))),
            ("cs4Label", "level"), ("cs4", alert.level),
            ("cs5Label", "origin"), ("cs5", alert.origin),
        ])
