"""What deleting events takes with them: their rows in the side tables (retention).

An event owns rows in ``event_objects`` (one per affected object), ``event_uids`` (its
idempotency key) and, on SQLite, the contentless full-text index, which can only forget an
event when given the same text again. None of these is indexed by event id, so the rows are
derived from the stored events themselves, outside the writer's lock, and deleted by key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

# Rows per statement when deleting by key (SQLite allows 32,766 parameters).
KEYS_PER_STATEMENT = 1000


@dataclass(slots=True)
class Doomed:
    """Events chosen for deletion, with the keys of everything they own."""

    ids: list[int] = field(default_factory=list)
    objects: list[tuple[str, str, int, int]] = field(default_factory=list)  # type, id, ts, event
    uids: list[tuple[str, int]] = field(default_factory=list)  # (uid, event id)
    texts: dict[int, str] = field(default_factory=dict)  # event id -> full-text body

    def only(self, ids: Iterable[int]) -> Doomed:
        """The part belonging to ``ids`` (the events that really were deleted)."""
        keep = set(ids)
        return Doomed([i for i in self.ids if i in keep],
                      [o for o in self.objects if o[3] in keep],
                      [u for u in self.uids if u[1] in keep],
                      {i: t for i, t in self.texts.items() if i in keep})


def doomed(rows: Iterable[tuple[int, int, str | None, bytes]], *, texts: bool) -> Doomed:
    """The keys owned by stored events given as (id, ts, uid, doc) rows; with ``texts``
    also the full-text body each was indexed with (SQLite's contentless index)."""
    out = Doomed()
    for event_id, ts, uid, doc in rows:
        rest = orjson.loads(doc)
        out.ids.append(event_id)
        # Mirrors rows.object_keys: one row per (TYPE, id) whatever its positions.
        seen: set[tuple[str, str]] = set()
        for obj in rest.get("affectedObjects") or ():
            key = (str(obj["type"]).upper(), obj.get("id") or "")
            if key not in seen:
                seen.add(key)
                out.objects.append((key[0], key[1], ts, event_id))
        if uid is not None:
            out.uids.append((uid, event_id))
        if texts:
            out.texts[event_id] = search_text_of_doc(rest)
    return out


def search_text_of_doc(rest: dict[str, Any]) -> str:
    """`rows.search_text` of the event whose stored REST document is ``rest``.

    The same words as at insert time (changed values and attributes may come in another
    order: the document sorts them, and FTS5 forgets a row's terms whatever their
    positions). Parsing the JSON alone is ten times cheaper than rebuilding the event, and
    retention runs it on every deleted event. A test holds the two functions together.
    """
    kind = rest["type"]
    parts: list[str] = [kind["action"], kind["category"]]
    author = rest.get("author")
    if author is not None:
        parts.append(author["name"])
    for name in ("source", "method", "node"):
        value = rest.get(name)
        if value:
            parts.append(value)
    for obj in rest.get("affectedObjects") or ():
        parts.append(obj["name"])
    for change in rest.get("changedValues") or ():
        parts.append(change["key"])
        if change.get("from"):
            parts.append(change["from"])
        if change.get("to"):
            parts.append(change["to"])
    for attribute in rest.get("extraAttributes") or ():
        parts.append(attribute["name"])
        parts.append(attribute["value"])
    return "\n".join(parts)


def flat(rows: Sequence[tuple[object, ...]]) -> list[object]:
    """Rows as one flat parameter list."""
    return [value for row in rows for value in row]
