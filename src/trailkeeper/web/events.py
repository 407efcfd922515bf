"""Stored events as the log page shows them: a summary line and every field.

Values are kept as the producer sent them; the templates escape every one (autoescape),
and `reveal` makes invisible and direction-changing characters visible. Only ``http`` and
``https`` URIs become links; any other (``javascript:``, ``data:``) is shown as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from markupsafe import Markup, escape

from trailkeeper.model.timestamps import format_iso
from trailkeeper.storage.base import StoredEvent

# Characters that change how the text around them is shown (bidi overrides and isolates,
# marks), are invisible (zero-width, word joiners, BOM), or break lines unexpectedly
# (U+2028, U+2029): shown as their code point instead.
_HIDDEN = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_LINK_SCHEMES = ("http", "https")


def reveal(value: object) -> Markup:
    """``value`` escaped for HTML, each hidden or bidi control character replaced by a
    visible ``U+202E`` marker (the only markup added is ours)."""
    text = str(escape(value))
    if not _HIDDEN.search(text):
        return Markup(text)  # noqa: S704 - escaped just above
    return Markup(_HIDDEN.sub(  # noqa: S704 - escaped text plus constant markup
        lambda m: f'<span class="ctl" title="hidden character">U+{ord(m.group()):04X}</span>',
        text))


def link(uri: object) -> str | None:
    """``uri`` when it is a plain http(s) URL, else None (shown as text, never a link)."""
    if not isinstance(uri, str) or not uri or len(uri) > 2000:
        return None
    if any(ch.isspace() or ord(ch) < 32 or _HIDDEN.match(ch) for ch in uri):
        return None
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    return uri if parts.scheme.lower() in _LINK_SCHEMES and parts.netloc else None


@dataclass(frozen=True, slots=True)
class Party:
    """An author or an affected object."""

    type: str
    id: str
    name: str
    uri: str  # as stored (shown as text)
    href: str | None  # the same when it may be a link


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    i18n_key: str
    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    i18n_key: str
    value: str


@dataclass(frozen=True, slots=True)
class Row:
    """One event of the page."""

    id: int
    timestamp_ms: int
    iso: str
    when: str  # UTC, to the second
    category: str
    action: str
    category_key: str
    action_key: str
    area: str
    level: str
    author: Party
    objects: list[Party]
    changes: list[Change]
    attributes: list[Attribute]
    source: str
    method: str
    system: str
    system_href: str | None
    node: str
    uid: str

    @property
    def dom_id(self) -> str:
        return f"event-{self.id}"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _party(raw: Any, kind: str = "") -> Party:
    data = raw if isinstance(raw, dict) else {}
    uri = _text(data.get("uri"))
    return Party(_text(data.get("type") or kind), _text(data.get("id")),
                 _text(data.get("name")), uri, link(uri))


def row(event: StoredEvent) -> Row:
    doc: dict[str, Any] = orjson.loads(event.doc)
    kind = doc.get("type") or {}
    iso = format_iso(event.timestamp_ms)
    changes = [Change(_text(c.get("key")), _text(c.get("i18nKey")),
                      c.get("from") if c.get("from") is None else str(c.get("from")),
                      c.get("to") if c.get("to") is None else str(c.get("to")))
               for c in doc.get("changedValues") or () if isinstance(c, dict)]
    attributes = [Attribute(_text(a.get("name")), _text(a.get("nameI18nKey")),
                            _text(a.get("value")))
                  for a in doc.get("extraAttributes") or () if isinstance(a, dict)]
    system = _text(doc.get("system"))
    return Row(
        id=event.id, timestamp_ms=event.timestamp_ms, iso=iso,
        when=f"{iso[:10]} {iso[11:19]}",
        category=_text(kind.get("category")), action=_text(kind.get("action")),
        category_key=_text(kind.get("categoryI18nKey")),
        action_key=_text(kind.get("actionI18nKey")),
        area=_text(kind.get("area")), level=_text(kind.get("level")),
        author=_party(doc.get("author")),
        objects=[_party(o) for o in doc.get("affectedObjects") or ()],
        changes=changes, attributes=attributes,
        source=_text(doc.get("source")), method=_text(doc.get("method")), system=system,
        system_href=link(system), node=_text(doc.get("node")), uid=_text(doc.get("uid")),
    )
