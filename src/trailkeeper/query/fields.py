"""The field catalogue: every name a query, a sort or an output column may use.

One table serves the query language (what a ``field:value`` compares), ``sort`` / ``-s``
(which column orders the results) and ``fields`` / ``-f`` (what an output column shows), so
a name means the same thing everywhere. Besides the canonical names it knows the
``bfauditlog`` aliases (``audit.class``, ``audit.type``, ``audit.user``, ``audit.stamp``,
``audit.target``) and its typed prefixes: ``so``/``sn`` (old/new changed value, string),
``io``/``in`` (the same compared as integers) and ``sx``/``ix`` (an extra attribute).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from trailkeeper.model.areas import CoverageArea, CoverageLevel

Kind = Literal[
    "column",  # a scalar column of the events table (``column`` names it)
    "author",  # the author's name or id
    "author.type",
    "object",  # an affected object's id or name, or TYPE,ID
    "object.type",
    "object.id",
    "object.name",
    "changed",  # a changed value's old or new value
    "old",
    "new",
    "attr",  # an extra attribute's value
]
ValueKind = Literal["text", "int", "time", "enum", "ip"]


@dataclass(frozen=True, slots=True)
class Field:
    """One searchable, sortable or printable field."""

    name: str  # canonical name, as printed in headers
    kind: Kind
    help: str
    value: ValueKind = "text"
    column: str | None = None  # the AST column of "column" fields
    key: str | None = None  # the change key or attribute name of dynamic fields
    numeric: bool = False  # dynamic fields compared as integers (io/in/ix)
    choices: tuple[str, ...] = ()  # the values an "enum" field may take

    @property
    def sort_column(self) -> str | None:
        """The AST column results can be ordered by, or None."""
        if self.kind == "column":
            return self.column
        return "author.name" if self.kind == "author" else None

    def extract(self, doc: Mapping[str, Any]) -> str:
        """This field of a REST-shape event, as text for an output column ('' if absent)."""
        return _extract(self, doc)


def _column(name: str, help: str, value: ValueKind = "text", *,
            choices: Iterable[str] = ()) -> Field:
    return Field(name, "column", help, value, column=name, choices=tuple(choices))


FIELDS: dict[str, Field] = {f.name: f for f in (
    _column("id", "the event's id in this store", "int"),
    _column("timestamp", "when it happened (UTC)", "time"),
    _column("area", "coverage area", "enum", choices=[a.value for a in CoverageArea]),
    _column("level", "coverage level", "enum", choices=[v.value for v in CoverageLevel]),
    _column("category", "category (Atlassian) or class (bfauditlog)"),
    _column("action", "what happened"),
    Field("author", "author", "the author's name or id"),
    _column("author.id", "the author's id"),
    _column("author.name", "the author's name"),
    Field("author.type", "author.type", "the author's type (NORMAL, SYSTEM, ...)"),
    _column("source", "client IP address; a CIDR such as 10.0.0.0/8 matches a network", "ip"),
    _column("method", "how it was done (Browser, REST, ...)"),
    _column("node", "the cluster node that recorded it"),
    _column("system", "the base URL of the application"),
    _column("uid", "the producer's idempotency key"),
    Field("object", "object", "an affected object's id or name, or TYPE,ID"),
    Field("object.type", "object.type", "an affected object's type (PROJECT, REPOSITORY, ...)"),
    Field("object.id", "object.id", "an affected object's id"),
    Field("object.name", "object.name", "an affected object's name"),
)}

ALIASES = {
    "audit.class": "category",
    "audit.type": "action",
    "audit.user": "author",
    "audit.stamp": "timestamp",
    "audit.target": "object",
    "audit.id": "id",
}

_DYNAMIC = {"changed": "changed", "old": "old", "new": "new", "attr": "attr"}
# bfauditlog: s|i (string|integer) + o|n|x (old|new|extended) + the key in CamelCase.
_TYPED = re.compile(r"(?P<type>[si])(?P<state>[onx])(?P<key>[A-Z0-9].*)")
_STATES: dict[str, Kind] = {"o": "old", "n": "new", "x": "attr"}
_DYNAMIC_HELP = {
    "changed": "the old or new value of the changed value {key!r}",
    "old": "the old value of the changed value {key!r}",
    "new": "the new value of the changed value {key!r}",
    "attr": "the extra attribute {key!r}",
}


def resolve(name: str) -> Field | None:
    """The field a name (canonical, alias or bfauditlog-typed) stands for, or None.

    The field keeps the name as the caller spelled it, for headers and keys of the output.
    """
    lowered = name.lower()
    fixed = FIELDS.get(ALIASES.get(lowered, lowered))
    if fixed is not None:
        return fixed if fixed.name == name else replace(fixed, name=name)
    prefix, dot, key = name.partition(".")
    kind = _DYNAMIC.get(prefix.lower())
    if dot and key and kind is not None:
        return _dynamic(kind, key, numeric=False)  # type: ignore[arg-type]
    typed = _TYPED.fullmatch(name)
    if typed is not None:
        return _dynamic(_STATES[typed["state"]], typed["key"], numeric=typed["type"] == "i",
                        name=name)
    return None


def _dynamic(kind: Kind, key: str, *, numeric: bool, name: str | None = None) -> Field:
    return Field(name or f"{kind}.{key}", kind, _DYNAMIC_HELP[kind].format(key=key),
                 "int" if numeric else "text", key=key, numeric=numeric)


def suggestion(name: str) -> str:
    """A hint for an unknown field name: the closest known ones, else the list."""
    known = [*FIELDS, *ALIASES]
    close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(close) + "?"
    return ("known fields: " + ", ".join(known)
            + ", changed.<key>, old.<key>, new.<key>, attr.<name>, so<Key>, sn<Key>, io<Key>,"
              " in<Key>, sx<Name>")


# -- output ---------------------------------------------------------------------------------

def _extract(f: Field, doc: Mapping[str, Any]) -> str:
    kind = f.kind
    if kind == "column":
        return _scalar(f.column or f.name, doc)
    if kind == "author":
        return str((doc.get("author") or {}).get("name") or "")
    if kind == "author.type":
        return str((doc.get("author") or {}).get("type") or "")
    objects = doc.get("affectedObjects") or []
    if kind == "object":
        return "; ".join(_object_label(o) for o in objects)
    if kind in ("object.type", "object.id", "object.name"):
        part = kind.removeprefix("object.")
        return "; ".join(str(o.get(part) or "") for o in objects)
    assert f.key is not None
    wanted = fold_key(f.key)
    if kind == "attr":
        return "; ".join(str(a.get("value") or "") for a in doc.get("extraAttributes") or []
                         if _named(a, "name", "nameI18nKey", f.key, wanted))
    values = []
    for change in doc.get("changedValues") or []:
        if not _named(change, "key", "i18nKey", f.key, wanted):
            continue
        old, new = str(change.get("from") or ""), str(change.get("to") or "")
        values.append(old if kind == "old" else new if kind == "new" else f"{old} → {new}")
    return "; ".join(values)


def _scalar(name: str, doc: Mapping[str, Any]) -> str:
    if name in ("id", "uid", "timestamp", "source", "method", "node", "system"):
        value = doc.get(name)
    elif name in ("area", "level", "category", "action"):
        value = (doc.get("type") or {}).get(name)
    else:  # author.id, author.name
        value = (doc.get("author") or {}).get(name.removeprefix("author."))
    return "" if value is None else str(value)


def _object_label(o: Mapping[str, Any]) -> str:
    """``name (TYPE id)``, the way an administrator recognises an object."""
    ident = f" {o['id']}" if o.get("id") else ""
    return f"{o.get('name') or ''} ({o.get('type') or ''}{ident})"


def fold_key(key: str) -> str:
    """A change key or attribute name as it is compared: no case, spaces, '_', '-' or '.'."""
    return key.replace(" ", "").replace("_", "").replace("-", "").replace(".", "").lower()


def _named(item: Mapping[str, Any], name_key: str, i18n_key: str, key: str, folded: str) -> bool:
    return fold_key(str(item.get(name_key) or "")) == folded or item.get(i18n_key) == key
