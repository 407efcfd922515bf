"""The audit event and its parts, with both JSON shapes Atlassian uses.

Each part validates itself on construction and reports *every* problem it finds, so an event
that exists is an event that may be stored and rendered anywhere. Parsing lives in
`trailkeeper.model.parse`; this module renders:

- the REST shape (`to_rest`): ``type``, ISO timestamp, nulls omitted, plus our ``id``;
- the file shape (`to_file` / `file_line`): ``auditType`` with area and level,
  ``{"epochSecond", "nano"}``, ``"version": "1.0"``, keys sorted, nulls omitted.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from trailkeeper.errors import FieldProblem, InvalidEventError
from trailkeeper.model import i18n
from trailkeeper.model.areas import EVENT_LEVELS, CoverageArea, CoverageLevel
from trailkeeper.model.timestamps import (
    datetime_to_ms,
    format_instant,
    ms_to_datetime,
    to_epoch_nano,
)

# Identifiers and names must fit on one line: no C0/C1 controls, DEL or Unicode line breaks.
NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Free-text values (changed values, attribute values) may hold tabs and line breaks, which every
# renderer escapes, but no NUL or other control characters.
NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

MAX_KEY = 255  # keys, types, ids, names of actions and categories
MAX_UID = 128
MAX_NAME = 1024
MAX_URI = 2048
MAX_VALUE = 100_000
MAX_ITEMS = 1000


class _Checker:
    """Collects problems for one part, so all of them are reported together."""

    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def add(self, name: str, message: str) -> None:
        self.problems.append(FieldProblem(name, message))

    def line(self, name: str, value: object, *, required: bool, limit: int = MAX_NAME) -> None:
        if value is None:
            if required:
                self.add(name, "is required")
            return
        if not isinstance(value, str):
            self.add(name, f"must be a string, not {type(value).__name__}")
        elif required and not value.strip():
            self.add(name, "must not be empty")
        elif len(value) > limit:
            self.add(name, f"is {len(value)} characters long; the limit is {limit}")
        elif NOT_ONE_LINE.search(value):
            self.add(name, "contains a control character or line break")

    def text(self, name: str, value: object) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            self.add(name, f"must be a string, not {type(value).__name__}")
        elif len(value) > MAX_VALUE:
            self.add(name, f"is {len(value)} characters long; the limit is {MAX_VALUE}")
        elif NOT_TEXT.search(value):
            self.add(name, "contains a NUL or control character")

    def items(self, name: str, items: Sequence[Any], kind: type) -> None:
        if isinstance(items, str | bytes) or not isinstance(items, Sequence):
            self.add(name, "must be a list")
            return
        if len(items) > MAX_ITEMS:
            self.add(name, f"has {len(items)} items; the limit is {MAX_ITEMS}")
        for i, item in enumerate(items):
            if not isinstance(item, kind):
                self.add(f"{name}[{i}]", f"must be a {kind.__name__}")

    def nested(self, name: str, error: InvalidEventError) -> None:
        for p in error.problems:
            self.add(f"{name}.{p.field}", p.message)

    def done(self) -> None:
        if self.problems:
            raise InvalidEventError(self.problems)


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, slots=True)
class AuditType:
    """What happened: category and action (display names), area and level."""

    category: str = ""
    action: str = ""
    area: CoverageArea = CoverageArea.ECOSYSTEM
    level: CoverageLevel = CoverageLevel.BASE
    category_i18n_key: str | None = None
    action_i18n_key: str | None = None

    def __post_init__(self) -> None:
        c, a, ck, ak = self.category, self.action, self.category_i18n_key, self.action_i18n_key
        if (  # the common case in one expression; the checker below explains failures
            type(self.area) is CoverageArea and type(self.level) is CoverageLevel
            and self.level is not CoverageLevel.OFF
            and type(c) is str and type(a) is str
            and 0 < len(c) <= MAX_KEY and 0 < len(a) <= MAX_KEY
            and not c.isspace() and not a.isspace()
            and (ck is None or (type(ck) is str and len(ck) <= MAX_KEY))
            and (ak is None or (type(ak) is str and len(ak) <= MAX_KEY))
            and NOT_ONE_LINE.search(f"{c}{a}{ck or ''}{ak or ''}") is None
        ):
            return
        check = _Checker()
        # A display name may be left out when the catalogue knows the key.
        if not self.category and self.category_i18n_key:
            _set(self, "category", i18n.display_name(self.category_i18n_key) or "")
        if not self.action and self.action_i18n_key:
            _set(self, "action", i18n.display_name(self.action_i18n_key) or "")
        for name, value, key in (
            ("category", self.category, self.category_i18n_key),
            ("action", self.action, self.action_i18n_key),
        ):
            if not value and key:
                check.add(name, f"is required (the key {key!r} is not in the message catalogue)")
            else:
                check.line(name, value or None, required=True, limit=MAX_KEY)
        check.line("categoryI18nKey", self.category_i18n_key, required=False, limit=MAX_KEY)
        check.line("actionI18nKey", self.action_i18n_key, required=False, limit=MAX_KEY)
        if not isinstance(self.area, CoverageArea):
            try:
                _set(self, "area", CoverageArea(self.area))
            except ValueError:
                check.add("area", f"must be one of {', '.join(CoverageArea)}")
        if self.level not in EVENT_LEVELS:
            check.add("level", "must be one of BASE, ADVANCED, FULL")
        elif not isinstance(self.level, CoverageLevel):
            _set(self, "level", CoverageLevel(self.level))
        check.done()


@dataclass(frozen=True, slots=True)
class AuditAuthor:
    """Who did it. The built-ins System, Anonymous and Unknown have ids -1, -2, -3."""

    id: str
    name: str = "Unknown"
    type: str = "user"
    uri: str | None = None

    SYSTEM: ClassVar[AuditAuthor]
    ANONYMOUS: ClassVar[AuditAuthor]
    UNKNOWN: ClassVar[AuditAuthor]

    def __post_init__(self) -> None:
        i, n, t, u = self.id, self.name, self.type, self.uri
        if (
            type(i) is str and type(n) is str and type(t) is str
            and 0 < len(i) <= MAX_KEY and 0 < len(n) <= MAX_NAME and 0 < len(t) <= MAX_KEY
            and not i.isspace() and not n.isspace() and not t.isspace()
            and (u is None or (type(u) is str and len(u) <= MAX_URI))
            and NOT_ONE_LINE.search(f"{i}{n}{t}{u or ''}") is None
        ):
            return
        check = _Checker()
        check.line("id", self.id, required=True, limit=MAX_KEY)
        check.line("name", self.name, required=True)
        check.line("type", self.type, required=True, limit=MAX_KEY)
        check.line("uri", self.uri, required=False, limit=MAX_URI)
        check.done()


AuditAuthor.SYSTEM = AuditAuthor("-1", "System", "system")
AuditAuthor.ANONYMOUS = AuditAuthor("-2", "Anonymous", "user")
AuditAuthor.UNKNOWN = AuditAuthor("-3", "Unknown", "user")


@dataclass(frozen=True, slots=True)
class AuditResource:
    """An affected object, e.g. ``AuditResource("REPOSITORY", "rep_1", id="1")``."""

    type: str
    name: str
    id: str | None = None
    uri: str | None = None

    def __post_init__(self) -> None:
        t, n, i, u = self.type, self.name, self.id, self.uri
        if (
            type(t) is str and type(n) is str and 0 < len(t) <= MAX_KEY and 0 < len(n) <= MAX_NAME
            and not t.isspace() and not n.isspace()
            and (i is None or (type(i) is str and len(i) <= MAX_KEY))
            and (u is None or (type(u) is str and len(u) <= MAX_URI))
            and NOT_ONE_LINE.search(f"{t}{n}{i or ''}{u or ''}") is None
        ):
            return
        check = _Checker()
        check.line("type", self.type, required=True, limit=MAX_KEY)
        check.line("name", self.name, required=True)
        check.line("id", self.id, required=False, limit=MAX_KEY)
        check.line("uri", self.uri, required=False, limit=MAX_URI)
        check.done()


@dataclass(frozen=True, slots=True)
class ChangedValue:
    """One changed property; ``from``/``to`` are Python keywords, hence the names."""

    key: str
    from_value: str | None = None
    to_value: str | None = None
    i18n_key: str | None = None

    def __post_init__(self) -> None:
        k, ik, old, new = self.key, self.i18n_key, self.from_value, self.to_value
        if (
            type(k) is str and 0 < len(k) <= MAX_NAME and not k.isspace()
            and (ik is None or (type(ik) is str and len(ik) <= MAX_KEY))
            and NOT_ONE_LINE.search(f"{k}{ik or ''}") is None
            and (old is None or (type(old) is str and len(old) <= MAX_VALUE))
            and (new is None or (type(new) is str and len(new) <= MAX_VALUE))
            and NOT_TEXT.search(f"{old or ''}{new or ''}") is None
        ):
            return
        check = _Checker()
        check.line("key", self.key, required=True)
        check.line("i18nKey", self.i18n_key, required=False, limit=MAX_KEY)
        check.text("from", self.from_value)
        check.text("to", self.to_value)
        check.done()


@dataclass(frozen=True, slots=True)
class AuditAttribute:
    """A free-form extra attribute (``name`` = ``value``)."""

    name: str
    value: str = ""
    name_i18n_key: str | None = None

    def __post_init__(self) -> None:
        n, nk, v = self.name, self.name_i18n_key, self.value
        if (
            type(n) is str and 0 < len(n) <= MAX_NAME and not n.isspace()
            and (nk is None or (type(nk) is str and len(nk) <= MAX_KEY))
            and type(v) is str and len(v) <= MAX_VALUE
            and NOT_ONE_LINE.search(f"{n}{nk or ''}") is None
            and NOT_TEXT.search(v) is None
        ):
            return
        check = _Checker()
        check.line("name", self.name, required=True)
        check.line("nameI18nKey", self.name_i18n_key, required=False, limit=MAX_KEY)
        if self.value is None:
            check.add("value", "is required")
        check.text("value", self.value)
        check.done()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit event. ``id`` is assigned by the store; ``timestamp`` is UTC, in ms."""

    type: AuditType
    author: AuditAuthor | None = None
    timestamp: datetime | None = None
    affected_objects: Sequence[AuditResource] = ()
    changed_values: Sequence[ChangedValue] = ()
    extra_attributes: Sequence[AuditAttribute] = ()
    source: str | None = None
    method: str | None = None
    system: str | None = None
    node: str | None = None
    uid: str | None = None
    id: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        objects = self.affected_objects
        changed = self.changed_values
        attributes = self.extra_attributes
        if type(objects) is list:
            _set(self, "affected_objects", objects := tuple(objects))
        if type(changed) is list:
            _set(self, "changed_values", changed := tuple(changed))
        if type(attributes) is list:
            _set(self, "extra_attributes", attributes := tuple(attributes))
        ts = self.timestamp
        src, how, system, node, uid = self.source, self.method, self.system, self.node, self.uid
        if (
            type(self.type) is AuditType
            and (self.author is None or type(self.author) is AuditAuthor)
            and (ts is None or (type(ts) is datetime and ts.tzinfo is UTC
                                and ts.microsecond % 1000 == 0))
            and type(objects) is tuple and len(objects) <= MAX_ITEMS
            and all(type(o) is AuditResource for o in objects)
            and type(changed) is tuple and len(changed) <= MAX_ITEMS
            and all(type(c) is ChangedValue for c in changed)
            and type(attributes) is tuple and len(attributes) <= MAX_ITEMS
            and all(type(a) is AuditAttribute for a in attributes)
            and (src is None or (type(src) is str and len(src) <= MAX_KEY))
            and (how is None or (type(how) is str and len(how) <= MAX_KEY))
            and (system is None or (type(system) is str and len(system) <= MAX_URI))
            and (node is None or (type(node) is str and len(node) <= MAX_KEY))
            and (uid is None or (type(uid) is str and len(uid) <= MAX_UID))
            and NOT_ONE_LINE.search(
                f"{src or ''}{how or ''}{system or ''}{node or ''}{uid or ''}") is None
        ):
            return
        check = _Checker()
        if not isinstance(self.type, AuditType):
            check.add("type", "must be an AuditType")
        if self.author is not None and not isinstance(self.author, AuditAuthor):
            check.add("author", "must be an AuditAuthor")
        if self.timestamp is not None:
            try:
                ms = datetime_to_ms(self.timestamp)
            except (ValueError, TypeError, AttributeError) as exc:
                check.add("timestamp", str(exc))
            else:
                if self.timestamp.tzinfo is not UTC or self.timestamp.microsecond % 1000:
                    _set(self, "timestamp", ms_to_datetime(ms))
        for name, items, kind in (
            ("affectedObjects", self.affected_objects, AuditResource),
            ("changedValues", self.changed_values, ChangedValue),
            ("extraAttributes", self.extra_attributes, AuditAttribute),
        ):
            check.items(name, items, kind)
        check.line("source", self.source, required=False, limit=MAX_KEY)
        check.line("method", self.method, required=False, limit=MAX_KEY)
        check.line("system", self.system, required=False, limit=MAX_URI)
        check.line("node", self.node, required=False, limit=MAX_KEY)
        check.line("uid", self.uid, required=False, limit=MAX_UID)
        check.done()

    @property
    def timestamp_ms(self) -> int | None:
        return None if self.timestamp is None else datetime_to_ms(self.timestamp)

    # -- parsing (implemented in trailkeeper.model.parse) --------------------------------------

    @classmethod
    def from_rest(cls, data: Any) -> AuditEvent:
        from trailkeeper.model.parse import event_from_rest

        return event_from_rest(data)

    @classmethod
    def from_file(cls, data: Any) -> AuditEvent:
        from trailkeeper.model.parse import event_from_file

        return event_from_file(data)

    # -- rendering -----------------------------------------------------------------------------

    def to_rest(self) -> dict[str, Any]:
        """The REST shape: Atlassian's entity plus ``id``, ``uid``, ``type.area``/``level``."""
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        if self.uid is not None:
            out["uid"] = self.uid
        if self.timestamp is not None:
            out["timestamp"] = format_instant(self.timestamp)
        if self.author is not None:
            out["author"] = author_rest(self.author)
        out["type"] = type_rest(self.type)
        out["affectedObjects"] = [resource_rest(r) for r in self.affected_objects]
        out["changedValues"] = changes_rest(self.changed_values)
        if self.source is not None:
            out["source"] = self.source
        if self.system is not None:
            out["system"] = self.system
        if self.node is not None:
            out["node"] = self.node
        if self.method is not None:
            out["method"] = self.method
        out["extraAttributes"] = attributes_rest(self.extra_attributes)
        return out

    def to_file(self) -> dict[str, Any]:
        """The Atlassian log-file shape (keys are sorted when serialised by `file_line`)."""
        t = self.type
        out: dict[str, Any] = {
            "affectedObjects": [_omit_none(id=r.id, name=r.name, type=r.type, uri=r.uri)
                                for r in self.affected_objects],
            "auditType": _omit_none(
                action=t.action,
                actionI18nKey=t.action_i18n_key,
                area=t.area.value,
                category=t.category,
                categoryI18nKey=t.category_i18n_key,
                level=t.level.value,
            ),
            "changedValues": [
                _omit_none(**{"from": c.from_value, "i18nKey": c.i18n_key, "key": c.key,
                              "to": c.to_value})
                for c in self.changed_values
            ],
            "extraAttributes": [
                _omit_none(name=a.name, nameI18nKey=a.name_i18n_key, value=a.value)
                for a in self.extra_attributes
            ],
            "version": "1.0",
        }
        if self.author is not None:
            a = self.author
            out["author"] = _omit_none(id=a.id, name=a.name, type=a.type, uri=a.uri)
        if self.timestamp is not None:
            out["timestamp"] = to_epoch_nano(datetime_to_ms(self.timestamp))
        for name in ("id", "uid", "method", "node", "source", "system"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def file_line(self) -> str:
        """One line of an Atlassian audit log file (no trailing newline), ASCII-only.

        ``ensure_ascii`` escapes U+2028/U+2029/U+0085 too, so no reader can split the line.
        """
        return json.dumps(self.to_file(), sort_keys=True, separators=(",", ":"))



_BY_KEY = operator.attrgetter("key")
_BY_NAME = operator.attrgetter("name")


def _omit_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def author_rest(a: AuditAuthor) -> dict[str, Any]:
    out: dict[str, Any] = {"name": a.name, "type": a.type, "id": a.id}
    if a.uri is not None:
        out["uri"] = a.uri
    out["avatarUri"] = ""
    return out


def type_rest(t: AuditType) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.category_i18n_key is not None:
        out["categoryI18nKey"] = t.category_i18n_key
    out["category"] = t.category
    if t.action_i18n_key is not None:
        out["actionI18nKey"] = t.action_i18n_key
    out["action"] = t.action
    out["area"] = t.area
    out["level"] = t.level
    return out


def resource_rest(r: AuditResource) -> dict[str, Any]:
    out: dict[str, Any] = {"name": r.name, "type": r.type}
    if r.uri is not None:
        out["uri"] = r.uri
    if r.id is not None:
        out["id"] = r.id
    return out


def changes_rest(changed: Sequence[ChangedValue]) -> list[dict[str, Any]]:
    """In key order (the order of the producer's list does not make another event)."""
    if len(changed) > 1:
        changed = sorted(changed, key=_BY_KEY)
    return [_changed_rest(c) for c in changed]


def attributes_rest(attributes: Sequence[AuditAttribute]) -> list[dict[str, Any]]:
    """In name order."""
    if len(attributes) > 1:
        attributes = sorted(attributes, key=_BY_NAME)
    return [_attribute_rest(a) for a in attributes]


def _changed_rest(c: ChangedValue) -> dict[str, Any]:
    out: dict[str, Any] = {"key": c.key}
    if c.i18n_key is not None:
        out["i18nKey"] = c.i18n_key
    if c.from_value is not None:
        out["from"] = c.from_value
    if c.to_value is not None:
        out["to"] = c.to_value
    return out


def _attribute_rest(a: AuditAttribute) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if a.name_i18n_key is not None:
        out["nameI18nKey"] = a.name_i18n_key
    out["name"] = a.name
    out["value"] = a.value
    return out
