"""The query AST every search interface compiles to, and `AuditQuery`, its structured front.

The Atlassian REST filters, the native API, the CLI and (later) the Lucene query language all
produce these nodes; `trailkeeper.query.compile` turns them into parameterised SQL for either
backend, so permission scopes and filters mean the same thing everywhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.timestamps import datetime_to_ms

# Scalar fields of an event that queries may compare (the names of the query language).
SCALAR_FIELDS = frozenset({
    "id", "timestamp", "area", "level", "category", "action", "author.id", "author.name",
    "source", "method", "node", "system", "uid",
})

Op = Literal["=", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True, slots=True)
class Compare:
    """``field op value``; ``timestamp`` values are epoch milliseconds."""

    field: str
    op: Op
    value: str | int


@dataclass(frozen=True, slots=True)
class In:
    """``field`` equals any of ``values`` (an empty tuple matches nothing)."""

    field: str
    values: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class HasObject:
    """Some affected object has this type (case-insensitive) and, if given, one of these ids."""

    type: str
    ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Text:
    """Full-text search: each term matches words starting with it; terms are ORed by default."""

    terms: tuple[str, ...]
    match_all: bool = False


@dataclass(frozen=True, slots=True)
class Match:
    """A test of one value: a comparison, a wildcard ``pattern`` (``*`` any run, ``?`` one
    character, compared ignoring ASCII case) or ``exists`` (present and not empty).

    ``numeric`` compares as integers; a value that is not an integer then never matches.
    """

    op: Op | Literal["like", "exists"]
    value: str | int | None = None
    numeric: bool = False


@dataclass(frozen=True, slots=True)
class FieldIs:
    """A scalar column of the event passes ``match`` (``like``/``exists``/numeric tests;
    plain comparisons use `Compare`, which the planner understands)."""

    field: str
    match: Match


@dataclass(frozen=True, slots=True)
class InNetwork:
    """``field`` holds an IP address inside ``network`` (CIDR, IPv4 or IPv6)."""

    field: str
    network: str


ObjectPart = Literal["type", "id", "name", "id-or-name"]


@dataclass(frozen=True, slots=True)
class ObjectIs:
    """Some affected object's type, id or name passes ``match``."""

    part: ObjectPart
    match: Match


ChangeSide = Literal["from", "to", "either"]


@dataclass(frozen=True, slots=True)
class ChangeIs:
    """Some changed value with this key (compared ignoring case, spaces, ``_``, ``-`` and
    ``.``, or equal to its i18n key) has an old (``from``) or new (``to``) value passing
    ``match``."""

    key: str
    side: ChangeSide
    match: Match
    also: Match | None = None  # the other bound of a range, tested on the same value


@dataclass(frozen=True, slots=True)
class AttributeIs:
    """Some extra attribute with this name (compared as change keys are) passes ``match``."""

    name: str
    match: Match
    also: Match | None = None  # the other bound of a range, tested on the same value


@dataclass(frozen=True, slots=True)
class AuthorTypeIs:
    """The author's type (``NORMAL``, ``SYSTEM``, ...) passes ``match``."""

    match: Match


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


@dataclass(frozen=True, slots=True)
class MatchAll:
    """The empty condition."""


Node = (Compare | In | HasObject | Text | FieldIs | InNetwork | ObjectIs | ChangeIs | AttributeIs
        | AuthorTypeIs | And | Or | Not | MatchAll)


def all_of(nodes: Iterable[Node]) -> Node:
    """``And`` of the nodes, flattened; ``MatchAll`` when there are none."""
    items: list[Node] = []
    for node in nodes:
        if isinstance(node, And):
            items.extend(node.items)
        elif not isinstance(node, MatchAll):
            items.append(node)
    if not items:
        return MatchAll()
    return items[0] if len(items) == 1 else And(tuple(items))


@dataclass(frozen=True)
class AuditQuery:
    """Structured search filters, combined with AND; every bound is inclusive.

    ``objects`` follows Atlassian's rule: objects of different types must all be present,
    several ids of one type are alternatives. ``where`` adds any further AST condition.
    """

    since: datetime | None = None
    until: datetime | None = None
    actions: Sequence[str] = ()
    categories: Sequence[str] = ()
    author_ids: Sequence[str] = ()
    objects: Sequence[tuple[str, str]] = ()
    search: str | None = None
    areas: Sequence[CoverageArea] = ()
    levels: Sequence[CoverageLevel] = ()
    min_id: int | None = None
    max_id: int | None = None
    where: Node | None = field(default=None)

    def to_ast(self) -> Node:
        nodes: list[Node] = []
        if self.since is not None:
            nodes.append(Compare("timestamp", ">=", datetime_to_ms(self.since)))
        if self.until is not None:
            nodes.append(Compare("timestamp", "<=", datetime_to_ms(self.until)))
        if self.min_id is not None:
            nodes.append(Compare("id", ">=", self.min_id))
        if self.max_id is not None:
            nodes.append(Compare("id", "<=", self.max_id))
        for name, values in (
            ("action", self.actions),
            ("category", self.categories),
            ("author.id", self.author_ids),
            ("area", [str(a) for a in self.areas]),
            ("level", [str(level) for level in self.levels]),
        ):
            if values:
                nodes.append(In(name, tuple(dict.fromkeys(values))))
        nodes.extend(objects_condition(self.objects))
        if self.search:
            terms = tuple(self.search.lower().split())
            if terms:
                nodes.append(Text(terms))
        if self.where is not None:
            nodes.append(self.where)
        return all_of(nodes)


def objects_condition(objects: Iterable[tuple[str, str]]) -> list[Node]:
    """Atlassian's ``affectedObject`` rule: AND across types, OR within a type."""
    by_type: dict[str, list[str]] = defaultdict(list)
    for kind, ident in objects:
        by_type[kind.upper()].append(ident)
    return [HasObject(kind, tuple(dict.fromkeys(ids))) for kind, ids in by_type.items()]
