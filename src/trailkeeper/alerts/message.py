"""The message an action delivers for an alert, and its plain-text rendering.

`build_message` loads the first matched events from the store (REST shape, with ``id``)
and makes the link to them in the web UI. `render_subject` and `render_text` turn a message
into the subject and body of an e-mail (or any other human-read text): every value that
comes from events — group values, authors, object names — is attacker-controlled, so each
is put on a line of its own with control characters escaped, and the subject can never
hold a line break.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from trailkeeper.alerts.actions.base import AlertMessage
from trailkeeper.alerts.model import AlertRecord
from trailkeeper.model.timestamps import format_iso
from trailkeeper.storage.base import Storage

# Events loaded into a message, and event ids put into its link.
MESSAGE_EVENTS = 10
LINK_EVENTS = 50
# Longest value shown for one field, and longest subject.
MAX_VALUE_CHARS = 300
MAX_SUBJECT_CHARS = 200

# C0/C1 controls, DEL, Unicode line and paragraph separators, and the bidirectional
# overrides and isolates that can make text read differently from what it is.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: Any, *, limit: int = MAX_VALUE_CHARS) -> str:
    """One value as a single line of safe text: controls escaped (``\\n``, ``\\x1b``, ...),
    cut at ``limit`` characters."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    text = _UNSAFE.sub(_escape_char, text)
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return text


def alert_link(public_url: str | None, alert: AlertRecord) -> str | None:
    """The alert's events in the web UI's audit log (`/audit?q=id:(…)`), or None without a
    public URL."""
    if not public_url or not alert.event_ids:
        return None
    ids = " OR ".join(str(i) for i in alert.event_ids[:LINK_EVENTS])
    return f"{public_url.rstrip('/')}/audit?q={quote(f'id:({ids})', safe='')}"


def build_message(storage: Storage, alert: AlertRecord, *, public_url: str | None = None,
                  max_events: int = MESSAGE_EVENTS) -> AlertMessage:
    """The alert with its first ``max_events`` events still in the store."""
    events: list[dict[str, Any]] = []
    for event_id in alert.event_ids[:max_events]:
        stored = storage.get(event_id)
        if stored is not None:  # retention may have removed it since
            events.append(orjson.loads(stored.rest_json()))
    return AlertMessage(alert=alert, events=events, link=alert_link(public_url, alert))


def _group_text(group: Mapping[str, str]) -> str:
    return ", ".join(f"{clean(k)}={clean(v)}" for k, v in sorted(group.items()))


def render_subject(message: AlertMessage, prefix: str = "[Trailkeeper]") -> str:
    """``[Trailkeeper] HIGH: <rule title> (<group>)`` on one line."""
    a = message.alert
    level = (a.level or "alert").upper()
    subject = f"{level}: {clean(a.rule_title, limit=MAX_SUBJECT_CHARS)}"
    if a.group:
        subject += f" ({_group_text(a.group)})"
    if a.count > 1:
        subject += f" [{a.count} matches]"
    subject = f"{clean(prefix)} {subject}" if prefix else subject
    return clean(subject, limit=MAX_SUBJECT_CHARS)


def _author(event: Mapping[str, Any]) -> str:
    author = event.get("author")
    if not isinstance(author, Mapping):
        return ""
    name = author.get("name") or author.get("displayName") or ""
    parts = [clean(name)]
    if author.get("id") not in (None, "", name):
        parts.append(f"({clean(author['id'])})")
    if author.get("type") not in (None, "", "user"):
        parts.append(f"[{clean(author['type'])}]")
    return " ".join(p for p in parts if p)


def _objects(event: Mapping[str, Any]) -> Iterable[str]:
    objects = event.get("affectedObjects")
    if not isinstance(objects, list):
        return
    for obj in objects[:10]:
        if isinstance(obj, Mapping):
            text = f"{clean(obj.get('type'))} {clean(obj.get('name') or obj.get('id'))}"
            if obj.get("name") and obj.get("id"):
                text += f" ({clean(obj['id'])})"
            yield text.strip()
    if len(objects) > 10:
        yield f"… and {len(objects) - 10} more"


def _event_lines(event: Mapping[str, Any]) -> list[str]:
    kind = event.get("type") if isinstance(event.get("type"), Mapping) else {}
    assert isinstance(kind, Mapping)
    lines = [f"Event #{clean(event.get('id'))} at {clean(event.get('timestamp'))}"]
    fields = [
        ("Action", kind.get("action")),
        ("Category", kind.get("category")),
        ("Author", _author(event)),
        ("Source", event.get("source")),
        ("Node", event.get("node")),
    ]
    for label, value in fields:
        if value:
            lines.append(f"  {label + ':':<10}{clean(value)}")
    for i, obj in enumerate(_objects(event)):
        lines.append(f"  {'Objects:' if i == 0 else '':<10}{obj}")
    return lines


def render_text(message: AlertMessage) -> str:
    """The plain-text body: the alert, then its first events, one value per line."""
    a = message.alert
    when = format_iso(a.timestamp_ms)
    if a.last_ms != a.timestamp_ms:
        when += f" to {format_iso(a.last_ms)}"
    lines = [
        f"Rule:     {clean(a.rule_title)} ({clean(a.rule_id)})",
        f"Level:    {clean(a.level or 'none')}",
        f"Time:     {when}",
    ]
    if a.group:
        lines.append(f"Group:    {_group_text(a.group)}")
    lines.append(f"Count:    {a.count}")
    if a.tags:
        lines.append(f"Tags:     {', '.join(clean(t) for t in a.tags)}")
    if a.origin == "hunt":
        lines.append("Origin:   found by a hunt over stored events")
    lines.append(f"Alert:    #{a.id}")
    if message.link:
        lines.append(f"Link:     {message.link}")
    shown = len(message.events)
    lines.append("")
    if shown:
        total = len(a.event_ids)
        lines.append(f"First {shown} of {total} events:" if total > shown else "Events:")
        for event in message.events:
            lines.append("")
            lines.extend(_event_lines(event))
    else:
        lines.append("The matched events are no longer in the store.")
    lines.append("")
    lines.append("-- ")
    lines.append("Sent by Trailkeeper.")
    return "\n".join(lines) + "\n"
