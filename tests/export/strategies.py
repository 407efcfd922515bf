"""Events and stored rows for the export tests: realistic, hostile, and broken."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from trailkeeper.model.areas import EVENT_LEVELS, CoverageArea
from trailkeeper.model.event import (
    AuditAttribute,
    AuditAuthor,
    AuditEvent,
    AuditResource,
    AuditType,
    ChangedValue,
)
from trailkeeper.model.timestamps import MAX_MS, ms_to_datetime
from trailkeeper.storage.base import StoredEvent
from trailkeeper.storage.rows import encode

# What a spreadsheet, a browser, an XML parser or a terminal could take for something else.
HOSTILE = [
    "=cmd|' /C calc'!A0", "=1+2\";=1+2", "+SUM(A1)", "-2+3", "@SUM(1)", " =HYPERLINK(x)",
    "-1", "-1.5", "-\u0661", "<script>alert(1)</script>", "a & b <c> \"d\" 'e'", "]]>",
    "&amp;", "a,b", '"', "\u202eevil\u202c", "\ufeffbom", "\ufffe", "\uffff", "日本語テキスト",
    "e\u0301", "👩‍👩‍👧", "\u00a0", "x" * 60,
]
# Free text (changed values, attribute values) may also hold line breaks and C1 controls.
HOSTILE_TEXT = [
    *HOSTILE, "line1\nline2", "cr\rlf\r\n", "\ttab", "nel\x85", "ls\u2028ps\u2029", "\x9b31m",
    "\r=cmd", "\n-1",
]
LONE_SURROGATES = ["\ud800", "a\udfffb", "\udc80"]

# The model refuses control characters in names and ids, and NUL/C0 (but tab, LF, CR) in
# free text: generate within that, and reach the rest with raw documents.
_ONE_LINE = st.characters(exclude_categories=("Cs", "Cc"),
                          exclude_characters="\u2028\u2029")
_FREE = st.characters(exclude_categories=["Cs"],
                      exclude_characters="".join(map(chr, [*range(0x09), 0x0B, 0x0C,
                                                           *range(0x0E, 0x20), 0x7F])))
lines = (st.text(_ONE_LINE, min_size=1, max_size=25) | st.sampled_from(HOSTILE)).filter(
    lambda s: s.strip() != "")
texts = st.text(_FREE, max_size=25) | st.sampled_from(HOSTILE_TEXT)


def _optional(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.none() | strategy


audit_types = st.builds(AuditType, lines, lines, st.sampled_from(list(CoverageArea)),
                        st.sampled_from(EVENT_LEVELS), _optional(lines), _optional(lines))
authors = st.builds(AuditAuthor, lines, lines, lines, _optional(lines))
resources = st.builds(AuditResource, lines, lines, _optional(lines), _optional(lines))
changes = st.builds(ChangedValue, lines, _optional(texts), _optional(texts), _optional(lines))
attributes = st.builds(AuditAttribute, lines, texts, _optional(lines))
events = st.builds(
    AuditEvent,
    type=audit_types,
    author=st.none() | authors,
    timestamp=st.none() | st.integers(0, MAX_MS).map(ms_to_datetime),
    affected_objects=st.lists(resources, max_size=3),
    changed_values=st.lists(changes, max_size=3),
    extra_attributes=st.lists(attributes, max_size=3),
    source=_optional(lines), method=_optional(lines), system=_optional(lines),
    node=_optional(lines), uid=_optional(lines),
)


def row_of(event: AuditEvent, row_id: int = 1, received_ms: int = 1_700_000_000_000
           ) -> StoredEvent:
    """The row a store would hold for an event."""
    new = encode(event, received_ms, AuditAuthor.SYSTEM)
    return StoredEvent(row_id, new.timestamp_ms, new.doc)


# -- documents no producer of ours writes ----------------------------------------------------

_ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=15) | st.sampled_from(
    [*HOSTILE_TEXT, *LONE_SURROGATES, "\x00", "\x1b[2J", "\x07", "\x7f", "\u0085"])
_SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | _ANY_TEXT | st.floats()


def _part(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A part of the right shape, mostly, or any value."""
    return st.one_of(strategy, strategy, strategy, _SCALARS, st.lists(_SCALARS, max_size=2))


def _item(keys: list[str]) -> st.SearchStrategy[Any]:
    return _part(st.fixed_dictionaries({}, optional={k: _part(_ANY_TEXT) for k in keys}))


raw_dicts = st.fixed_dictionaries({}, optional={
    "uid": _part(_ANY_TEXT),
    "timestamp": _part(_ANY_TEXT),
    "author": _item(["name", "type", "id", "uri", "avatarUri"]),
    "type": _item(["category", "categoryI18nKey", "action", "actionI18nKey", "area", "level"]),
    "affectedObjects": _part(st.lists(_item(["name", "type", "id", "uri"]), max_size=2)),
    "changedValues": _part(st.lists(_item(["key", "i18nKey", "from", "to"]), max_size=2)),
    "extraAttributes": _part(st.lists(_item(["name", "nameI18nKey", "value"]), max_size=2)),
    "source": _part(_ANY_TEXT), "system": _part(_ANY_TEXT), "node": _part(_ANY_TEXT),
    "method": _part(_ANY_TEXT), "extra": _part(_ANY_TEXT),
})


@st.composite
def raw_docs(draw: st.DrawFn) -> bytes:
    """Stored documents as another tool might have written them, or worse."""
    doc = draw(raw_dicts)
    how = draw(st.sampled_from(["ascii", "utf-8", "cesu", "broken", "junk"]))
    if how == "junk":
        return draw(st.sampled_from([b"", b"not json", b"[]", b"{}", b"null", b'{"a"',
                                     b"[" * 5000, b'{"type":' * 3000, b"\xff\xfe"]))
    if how == "ascii":  # lone surrogates become \udXXX escapes, which orjson refuses
        return json.dumps(doc).encode()
    text = json.dumps(doc, ensure_ascii=False)
    if how == "cesu":  # lone surrogates written raw: not UTF-8
        return text.encode("utf-8", "surrogatepass")
    data = text.encode("utf-8", "replace")
    if how == "broken" and len(data) > 2:
        cut = draw(st.integers(1, len(data) - 1))
        data = data[:cut] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\n"])) + data[cut:]
    return data


def raw_row(doc: bytes, row_id: int = 7, ts_ms: int = 1_600_000_000_123) -> StoredEvent:
    return StoredEvent(row_id, ts_ms, doc)
