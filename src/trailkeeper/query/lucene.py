"""The query language: Lucene syntax (parsed by luqum) compiled to the query AST.

``field:value``, ``"phrases"``, ``*``/``?`` wildcards, ``[a TO b]`` / ``{a TO b}`` ranges,
``AND``/``OR``/``NOT``, ``+``/``-`` and grouping; fields come from
`trailkeeper.query.fields`. Terms without a field search the full-text index. Terms side by
side are ANDed, as in a web search engine (and bfauditlog's "space-separated list of
specifications"). Every error names its column (1-based).
"""

from __future__ import annotations

import ipaddress
import re
import threading
from dataclasses import replace
from datetime import UTC, tzinfo

from luqum import tree
from luqum.exceptions import IllegalCharacterError, ParseError, ParseSyntaxError
from luqum.parser import parser as _luqum

from trailkeeper.errors import QuerySyntaxError
from trailkeeper.model.timestamps import now_ms as _now_ms
from trailkeeper.query.ast import (
    And,
    AttributeIs,
    AuthorTypeIs,
    ChangeIs,
    Compare,
    FieldIs,
    HasObject,
    InNetwork,
    Match,
    MatchAll,
    Node,
    Not,
    ObjectIs,
    Op,
    Or,
    Text,
    all_of,
)
from trailkeeper.query.dates import Span, TimeValueError, parse_span
from trailkeeper.query.fields import Field, resolve, suggestion

MAX_QUERY_LENGTH = 10_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_POSITION = re.compile(r"at position (\d+)")
_TYPE_AND_ID = re.compile(r"(?P<type>[A-Za-z][A-Za-z0-9_]*),(?P<id>.+)")
_parse_lock = threading.Lock()  # luqum's ply parser keeps state in one shared lexer


def parse_query(text: str, *, now_ms: int | None = None, tz: tzinfo = UTC) -> Node:
    """The AST of a query string; an empty query matches everything.

    Raises `QuerySyntaxError` (400, exit 2) naming the column of the problem.
    """
    if len(text) > MAX_QUERY_LENGTH:
        raise QuerySyntaxError(f"the query is longer than {MAX_QUERY_LENGTH} characters",
                               position=MAX_QUERY_LENGTH)
    control = _CONTROL.search(text)
    if control is not None:
        raise QuerySyntaxError("control characters are not allowed in a query",
                               position=control.start())
    if not text.strip():
        return MatchAll()
    with _parse_lock:
        try:
            parsed = _luqum.parse(text)
        except (ParseSyntaxError, IllegalCharacterError) as exc:
            raise _syntax_error(str(exc), text) from None
        except (ParseError, RecursionError, ArithmeticError, ValueError) as exc:
            # luqum fails this way on operands it cannot read, e.g. "a^1.2.3" (a decimal).
            operator = re.search(r"[~^]", text)
            raise QuerySyntaxError(f"cannot parse the query ({type(exc).__name__})",
                                   position=operator.start() if operator else 0) from None
    return _Translator(now_ms if now_ms is not None else _now_ms(), tz).node(parsed, None)


def _syntax_error(message: str, text: str) -> QuerySyntaxError:
    found = _POSITION.search(message)
    position = int(found[1]) if found else len(text)
    detail = message.removeprefix("Syntax error in input : ").rstrip("!")
    detail = re.sub(r"\s+at position \d+$|\s+at the end$", "", detail)
    detail = detail.replace("unexpected  ", "unexpected ")
    if "Illegal character" in message:
        detail = "unterminated quote or illegal character"
    return QuerySyntaxError(detail, position=position)


class _Translator:
    def __init__(self, now_ms: int, tz: tzinfo) -> None:
        self.now_ms = now_ms
        self.tz = tz

    def node(self, item: tree.Item, field: Field | None) -> Node:
        if isinstance(item, tree.SearchField):
            if field is not None:
                raise _error(item, "a field inside another field's value")
            name = _unescape(item.name)
            found = resolve(name)
            if found is None:
                raise QuerySyntaxError(f"unknown field {name!r}; {suggestion(name)}",
                                       position=item.pos)
            return self.node(item.expr, found)
        if isinstance(item, tree.AndOperation | tree.UnknownOperation):
            return _and([self.node(child, field) for child in item.children])
        if isinstance(item, tree.OrOperation):
            return Or(tuple(self.node(child, field) for child in item.children))
        if isinstance(item, tree.Not | tree.Prohibit):
            return Not(self.node(item.a, field))
        if isinstance(item, tree.Plus):
            return self.node(item.a, field)
        if isinstance(item, tree.Group | tree.FieldGroup):
            return self.node(item.expr, field)
        if isinstance(item, tree.Range):
            if field is None:
                raise _error(item, "a range needs a field, e.g. id:[1 TO 100]")
            return self.range(item, field)
        if isinstance(item, tree.Word | tree.Phrase):
            if field is None:
                return self.text(item)
            return self.term(item, field)
        if isinstance(item, tree.Regex):
            raise _error(item, "regular expressions are not supported; use * and ? wildcards")
        if isinstance(item, tree.Fuzzy | tree.Proximity | tree.Boost):
            raise _error(item, "fuzzy, proximity and boost operators (~ ^) are not supported")
        raise _error(item, f"unsupported syntax {type(item).__name__}")

    # -- terms ------------------------------------------------------------------------------

    def text(self, item: tree.Word | tree.Phrase) -> Node:
        """A bare term: full-text search, each word matching as a prefix."""
        if isinstance(item, tree.Phrase):
            return Text((_phrase(item),), match_all=True)
        word = _unescape(item.value)
        if word == "*":
            return MatchAll()
        if _has_wildcard(item.value.rstrip("*")):
            raise _error(item, "a wildcard in a bare term can only end it (admin*); "
                               "search a field for other patterns, e.g. action:*delete*")
        return Text((word.rstrip("*"),), match_all=True)

    def term(self, item: tree.Word | tree.Phrase, field: Field) -> Node:
        if isinstance(item, tree.Phrase):
            return self.equals(item, field, _phrase(item))
        raw = item.value
        if raw == "*":
            return self.exists(field)
        if _has_wildcard(raw):
            return self.pattern(item, field, _like_pattern(raw))
        return self.equals(item, field, _unescape(raw))

    def equals(self, item: tree.Item, field: Field, value: str) -> Node:
        kind = field.kind
        if field.value == "time":
            span = self.span(item, value)
            return all_of([Compare("timestamp", ">=", span.start),
                           Compare("timestamp", "<", span.end)])
        if kind == "column":
            assert field.column is not None
            if field.value == "ip" and "/" in value:
                return InNetwork(field.column, _network(item, value))
            return Compare(field.column, "=", self.scalar(item, field, value))
        if kind == "author":
            return Or((Compare("author.name", "=", value), Compare("author.id", "=", value)))
        if kind == "object":
            typed = _TYPE_AND_ID.fullmatch(value)
            if typed is not None:
                return HasObject(typed["type"].upper(), (typed["id"],))
            return ObjectIs("id-or-name", Match("=", value))
        if kind == "author.type":  # "system", "NORMAL": Atlassian's case varies
            return AuthorTypeIs(Match("like", "".join(map(_like_literal, value))))
        return self.nested(field, Match("=", self.nested_value(item, field, value),
                                        numeric=field.numeric))

    def pattern(self, item: tree.Item, field: Field, like: str) -> Node:
        if field.value in ("time", "int"):
            raise _error(item, f"{field.name} takes no wildcards; use a range such as "
                               f"{field.name}:[a TO b]")
        match = Match("like", like)
        if field.kind == "column":
            assert field.column is not None
            return FieldIs(field.column, match)
        if field.kind == "author":
            return Or((FieldIs("author.name", match), FieldIs("author.id", match)))
        if field.kind == "object":
            return ObjectIs("id-or-name", match)
        if field.numeric:
            raise _error(item, f"{field.name} is compared as an integer and takes no wildcards")
        return self.nested(field, match)

    def exists(self, field: Field) -> Node:
        match = Match("exists")
        if field.value in ("int", "time"):
            return MatchAll()  # ids and timestamps are never missing
        if field.kind == "column":
            assert field.column is not None
            return FieldIs(field.column, match)
        if field.kind == "author":
            return FieldIs("author.id", match)
        if field.kind == "object":
            return ObjectIs("id-or-name", match)
        return self.nested(field, match)

    def nested(self, field: Field, match: Match) -> Node:
        kind = field.kind
        if kind == "author.type":
            return AuthorTypeIs(match)
        if kind in ("object.type", "object.id", "object.name"):
            return ObjectIs(kind.removeprefix("object."), match)  # type: ignore[arg-type]
        assert field.key is not None
        if kind == "attr":
            return AttributeIs(field.key, match)
        side = {"changed": "either", "old": "from", "new": "to"}[kind]
        return ChangeIs(field.key, side, match)  # type: ignore[arg-type]

    def nested_value(self, item: tree.Item, field: Field, value: str) -> str | int:
        if field.numeric:
            return _integer(item, field, value)
        return value.upper() if field.kind == "object.type" else value

    def scalar(self, item: tree.Item, field: Field, value: str) -> str | int:
        if field.value == "int":
            return _integer(item, field, value)
        if field.value == "enum":
            upper = value.upper().replace("-", "_")
            if upper not in field.choices:
                raise _error(item, f"{field.name} is one of {', '.join(field.choices)}")
            return upper
        return value

    # -- ranges -----------------------------------------------------------------------------

    def range(self, item: tree.Range, field: Field) -> Node:
        low, high = item.low, item.high
        if not isinstance(low, tree.Word | tree.Phrase) or \
                not isinstance(high, tree.Word | tree.Phrase):
            raise _error(item, "range bounds must be plain values")
        low_text, high_text = _bound(low), _bound(high)
        if field.value == "time":
            nodes: list[Node] = []
            if low_text is not None:
                span = self.span(low, low_text)
                nodes.append(Compare("timestamp", ">=", span.start if item.include_low
                                     else span.end))
            if high_text is not None:
                span = self.span(high, high_text)
                nodes.append(Compare("timestamp", "<", span.end if item.include_high
                                     else span.start))
            return all_of(nodes)
        if field.kind not in ("column", "changed", "old", "new", "attr") or field.value == "ip":
            raise _error(item, f"{field.name} takes no ranges")
        bounds: list[tuple[Op, str | int]] = []
        for text, bound, inclusive, op, strict in (
            (low_text, low, item.include_low, ">=", ">"),
            (high_text, high, item.include_high, "<=", "<"),
        ):
            if text is None:
                continue
            value = self.scalar(bound, field, text) if field.kind == "column" \
                else self.nested_value(bound, field, text)
            bounds.append((op if inclusive else strict, value))  # type: ignore[arg-type]
        if field.kind == "column":
            assert field.column is not None
            return all_of(Compare(field.column, op, value) for op, value in bounds)
        if not bounds:
            return self.exists(field)
        # Both bounds must hold for the same element: one nested test per bound would let
        # two different changed values satisfy one bound each.
        if len(bounds) == 1:
            return self.nested(field, Match(bounds[0][0], bounds[0][1], field.numeric))
        return self.between(field, bounds)

    def between(self, field: Field, bounds: list[tuple[Op, str | int]]) -> Node:
        """A two-sided range on a changed value or attribute, tested on one value."""
        (low_op, low), (high_op, high) = bounds
        node = self.nested(field, Match(low_op, low, field.numeric))
        assert isinstance(node, ChangeIs | AttributeIs)
        return replace(node, also=Match(high_op, high, field.numeric))

    def span(self, item: tree.Item, value: str) -> Span:
        try:
            return parse_span(value, now_ms=self.now_ms, tz=self.tz)
        except TimeValueError as exc:
            raise _error(item, str(exc)) from None


def _and(nodes: list[Node]) -> Node:
    """``all_of``, with the full-text terms merged into one search (one index lookup, and
    the planner can weigh it)."""
    merged = all_of(nodes)
    items = merged.items if isinstance(merged, And) else (merged,)
    texts = [n for n in items if isinstance(n, Text) and n.match_all]
    if len(texts) < 2:
        return merged
    rest = [n for n in items if not (isinstance(n, Text) and n.match_all)]
    terms = tuple(term for text in texts for term in text.terms)
    return all_of([Text(terms, match_all=True), *rest])


def _phrase(item: tree.Phrase) -> str:
    return _unescape(item.value[1:-1])


def _bound(item: tree.Word | tree.Phrase) -> str | None:
    if isinstance(item, tree.Phrase):
        return _phrase(item)
    return None if item.value == "*" else _unescape(item.value)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _has_wildcard(raw: str) -> bool:
    return re.search(r"(?<!\\)[*?]", raw) is not None


def _like_pattern(raw: str) -> str:
    """A Lucene wildcard term as a LIKE pattern with ``\\`` as its escape."""
    out = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw):
            i += 1
            out.append(_like_literal(raw[i]))
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append(_like_literal(char))
        i += 1
    return "".join(out)


def _like_literal(char: str) -> str:
    return "\\" + char if char in "%_\\" else char


def _integer(item: tree.Item, field: Field, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _error(item, f"{field.name} needs an integer, not {value!r}") from None
    if abs(number) >= 10**18:
        raise _error(item, f"{value} is out of range for {field.name}")
    return number


def _network(item: tree.Item, value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise _error(item, f"{value!r} is not a network; write e.g. 10.0.0.0/8 or "
                           "2001:db8::/32") from None


def _error(item: tree.Item, message: str) -> QuerySyntaxError:
    return QuerySyntaxError(message, position=item.pos or 0)
