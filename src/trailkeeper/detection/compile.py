"""A rule's parsed condition compiled, once, into small matcher objects.

`compile_rule` walks each pySigma ``parsed_condition`` tree (identifiers and ``1 of``/``all of``
selectors are already expanded by pySigma) and builds `Node` objects: `And`, `Or`, `Not` and
leaves. Sibling string tests on the same field under an OR are merged into one leaf, so an
OR-list of actions is one casefold and one set lookup. Every leaf reads its field through a
per-event `Ctx`, which resolves and casefolds each field at most once per event.

Logic is two-valued: a leaf on a field the event lacks is false, and ``not`` of it is true.
Several conditions in one rule are OR-ed. A keyword (a value without a field) is a
case-insensitive substring of any string value in the event.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule
from sigma.types import (
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
)

from trailkeeper.detection.context import Ctx, fold, json_plain
from trailkeeper.detection.fields import (
    MISSING,
    Resolver,
    canonical_field,
    event_strings,
    reads_time,
    resolver,
)
from trailkeeper.detection.model import LoadedRule
from trailkeeper.detection.values import (
    COMPARE_WORDS,
    CompileError,
    ScalarTest,
    StringSpec,
    as_number,
    bool_test,
    cidr_prefix,
    cidr_test,
    compare_test,
    keyword_spec,
    number_test,
    regex_prefix,
    regex_test,
    string_spec,
    timestamp_test,
)

__all__ = ["And", "CompiledRule", "Ctx", "Node", "Not", "Or", "StringLeaf", "compile_rule",
           "compiled"]

_UNSET: Any = object()
_RESOLVERS: dict[str, Resolver] = {}


def field_resolver(name: str) -> Resolver:
    found = _RESOLVERS.get(name)
    if found is None:
        found = _RESOLVERS[name] = resolver(name)
    return found


class Node:
    """A compiled condition: `test` on an event, `describe` for people."""

    __slots__ = ()

    def test(self, ctx: Ctx) -> bool:
        raise NotImplementedError

    def fast(self) -> Callable[[Ctx], bool]:
        """The same test as a plain closure (what the engine calls per event)."""
        return self.test

    def describe(self) -> str:
        raise NotImplementedError

    def reasons(self, ctx: Ctx, out: list[str]) -> None:
        """Append why this node (known to hold) holds."""
        out.append(self.describe())


class And(Node):
    __slots__ = ("_tests", "children")

    def __init__(self, children: Sequence[Node]) -> None:
        self.children = tuple(children)
        self._tests = tuple(c.test for c in self.children)

    def test(self, ctx: Ctx) -> bool:
        for t in self._tests:  # noqa: SIM110 - a loop is faster than all() over a generator
            if not t(ctx):
                return False
        return True

    def fast(self) -> Callable[[Ctx], bool]:
        tests = tuple(c.fast() for c in self.children)
        if len(tests) == 2:
            a, b = tests
            return lambda ctx: a(ctx) and b(ctx)
        if len(tests) == 3:
            a, b, c = tests
            return lambda ctx: a(ctx) and b(ctx) and c(ctx)

        def every(ctx: Ctx) -> bool:
            for t in tests:  # noqa: SIM110 - a loop is faster than all() over a generator
                if not t(ctx):
                    return False
            return True
        return every

    def describe(self) -> str:
        return "(" + " and ".join(c.describe() for c in self.children) + ")"

    def reasons(self, ctx: Ctx, out: list[str]) -> None:
        for child in self.children:
            child.reasons(ctx, out)


class Or(Node):
    __slots__ = ("_tests", "children")

    def __init__(self, children: Sequence[Node]) -> None:
        self.children = tuple(children)
        self._tests = tuple(c.test for c in self.children)

    def test(self, ctx: Ctx) -> bool:
        for t in self._tests:  # noqa: SIM110 - a loop is faster than any() over a generator
            if t(ctx):
                return True
        return False

    def fast(self) -> Callable[[Ctx], bool]:
        tests = tuple(c.fast() for c in self.children)
        if len(tests) == 2:
            a, b = tests
            return lambda ctx: a(ctx) or b(ctx)

        def some(ctx: Ctx) -> bool:
            for t in tests:  # noqa: SIM110 - a loop is faster than any() over a generator
                if t(ctx):
                    return True
            return False
        return some

    def describe(self) -> str:
        return "(" + " or ".join(c.describe() for c in self.children) + ")"

    def reasons(self, ctx: Ctx, out: list[str]) -> None:
        for child in self.children:
            if child.test(ctx):
                child.reasons(ctx, out)


class Not(Node):
    __slots__ = ("child",)

    def __init__(self, child: Node) -> None:
        self.child = child

    def test(self, ctx: Ctx) -> bool:
        return not self.child.test(ctx)

    def fast(self) -> Callable[[Ctx], bool]:
        child = self.child.fast()
        return lambda ctx: not child(ctx)

    def describe(self) -> str:
        return f"not {self.child.describe()}"


def _quote(text: str) -> str:
    return "'" + text + "'"


_VERBS = {"eq": "equals", "prefix": "starts with", "suffix": "ends with",
          "contains": "contains", "pattern": "matches"}


class StringLeaf(Node):
    """One field against one or more string values of the same kind (OR-ed)."""

    __slots__ = ("_match", "cased", "field", "kind", "numbers", "resolve", "specs")

    def __init__(self, name: str, specs: Sequence[StringSpec]) -> None:
        self.field = name
        self.specs = tuple(specs)
        self.kind = specs[0].kind
        self.cased = specs[0].cased
        self.resolve = field_resolver(name)
        numbers = {as_number(s.text) for s in specs if s.kind == "eq"}
        numbers.discard(None)
        self.numbers = frozenset(n for n in numbers if n is not None)
        self._match = self._matcher()

    def _matcher(self) -> Callable[[str], bool]:
        kind = self.kind
        if kind == "eq":
            return frozenset(s.needle for s in self.specs).__contains__
        if kind == "prefix":
            prefixes = tuple(s.needle for s in self.specs)
            return lambda v: v.startswith(prefixes)
        if kind == "suffix":
            suffixes = tuple(s.needle for s in self.specs)
            return lambda v: v.endswith(suffixes)
        if kind == "contains":
            needles = tuple(s.needle for s in self.specs)
            if len(needles) == 1:
                needle = needles[0]
                return lambda v: needle in v
            return lambda v: any(n in v for n in needles)
        patterns = tuple(s.pattern.fullmatch for s in self.specs if s.pattern is not None)
        return lambda v: any(p(v) is not None for p in patterns)

    def test(self, ctx: Ctx) -> bool:
        if self.cased:
            value = self.resolve(ctx.doc)
            if type(value) is bool:
                value = "true" if value else "false"
        else:
            value = ctx.folded.get(self.field, _UNSET)
            if value is _UNSET:
                value = ctx.fold(self.field, self.resolve)
        if type(value) is str:
            return self._match(value)
        return self._other(value)

    def fast(self) -> Callable[[Ctx], bool]:
        if self.cased:
            return self.test
        name, resolve, other = self.field, self.resolve, self._other
        match = self._match
        kind = self.kind
        needles = tuple(s.needle for s in self.specs)
        # One closure per shape, with the string test inlined: this runs per event.
        if kind == "eq" and len(needles) == 1:
            needle = needles[0]

            def equals(ctx: Ctx) -> bool:
                folded = ctx.folded
                value = folded.get(name, _UNSET)
                if value is _UNSET:
                    value = resolve(ctx.doc)
                    value = folded[name] = (value.casefold() if type(value) is str
                                            else fold(value))
                if type(value) is str:
                    return value == needle
                return other(value)
            return equals
        if kind == "eq":
            wanted = frozenset(needles)

            def member(ctx: Ctx) -> bool:
                folded = ctx.folded
                value = folded.get(name, _UNSET)
                if value is _UNSET:
                    value = resolve(ctx.doc)
                    value = folded[name] = (value.casefold() if type(value) is str
                                            else fold(value))
                if type(value) is str:
                    return value in wanted
                return other(value)
            return member
        if kind == "prefix":
            def starts(ctx: Ctx) -> bool:
                folded = ctx.folded
                value = folded.get(name, _UNSET)
                if value is _UNSET:
                    value = resolve(ctx.doc)
                    value = folded[name] = (value.casefold() if type(value) is str
                                            else fold(value))
                if type(value) is str:
                    return value.startswith(needles)
                return other(value)
            return starts
        if kind == "suffix":
            def ends(ctx: Ctx) -> bool:
                folded = ctx.folded
                value = folded.get(name, _UNSET)
                if value is _UNSET:
                    value = resolve(ctx.doc)
                    value = folded[name] = (value.casefold() if type(value) is str
                                            else fold(value))
                if type(value) is str:
                    return value.endswith(needles)
                return other(value)
            return ends
        if kind == "contains" and len(needles) == 1:
            needle = needles[0]

            def contains(ctx: Ctx) -> bool:
                folded = ctx.folded
                value = folded.get(name, _UNSET)
                if value is _UNSET:
                    value = resolve(ctx.doc)
                    value = folded[name] = (value.casefold() if type(value) is str
                                            else fold(value))
                if type(value) is str:
                    return needle in value
                return other(value)
            return contains

        def matches(ctx: Ctx) -> bool:
            folded = ctx.folded
            value = folded.get(name, _UNSET)
            if value is _UNSET:
                value = resolve(ctx.doc)
                value = folded[name] = (value.casefold() if type(value) is str
                                        else fold(value))
            if type(value) is str:
                return match(value)
            return other(value)
        return matches

    def _other(self, value: Any) -> bool:
        if type(value) is list:
            for v in value:
                if type(v) is str:
                    if self._match(v):
                        return True
                elif self._other(v):
                    return True
            return False
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self._match(str(value)):
                return True
            return bool(self.numbers) and float(value) in self.numbers
        return False

    def _which(self, value: Any) -> list[StringSpec]:
        values = value if type(value) is list else [value]
        found = []
        for spec in self.specs:
            single = StringLeaf(self.field, [spec])
            if any((type(v) is str and single._match(v)) or single._other(v) for v in values):
                found.append(spec)
        return found

    def describe(self) -> str:
        verb = _VERBS[self.kind] + (" (case-sensitive)" if self.cased else "")
        if len(self.specs) == 1:
            return f"{self.field} {verb} {_quote(self.specs[0].text)}"
        return f"{self.field} {verb} one of [{', '.join(_quote(s.text) for s in self.specs)}]"

    def reasons(self, ctx: Ctx, out: list[str]) -> None:
        value = self.resolve(ctx.doc) if self.cased else ctx.fold(self.field, self.resolve)
        specs = self._which(value) or list(self.specs)
        verb = _VERBS[self.kind] + (" (case-sensitive)" if self.cased else "")
        out.extend(f"{self.field} {verb} {_quote(s.text)}" for s in specs)


class ScalarLeaf(Node):
    """One field against a non-string test (number, bool, regex, cidr, comparison, time).

    ``prefix``, when known, is text every string value the test accepts starts with (an
    anchored regex's literal start, a network's whole octets): the index uses it.
    """

    __slots__ = ("field", "flat", "prefix", "resolve", "scalar", "text")

    def __init__(self, name: str, scalar: ScalarTest, text: str,
                 prefix: str | None = None) -> None:
        self.field = name
        self.scalar = scalar
        self.text = text
        self.prefix = prefix
        self.resolve = field_resolver(name)
        self.flat = "." not in name and not reads_time(name)

    def test(self, ctx: Ctx) -> bool:
        value = ctx.doc.get(self.field, MISSING) if self.flat else self.resolve(ctx.doc)
        if type(value) is list:
            scalar = self.scalar
            return any(scalar(v) for v in value if v is not None)
        if value is MISSING or value is None:
            return False
        return self.scalar(value)

    def fast(self) -> Callable[[Ctx], bool]:
        if not self.flat:
            return self.test
        name, scalar, slow = self.field, self.scalar, self.test

        def flat(ctx: Ctx) -> bool:
            value = ctx.doc.get(name)
            if type(value) is str:
                return scalar(value)
            return slow(ctx)
        return flat

    def describe(self) -> str:
        return f"{self.field} {self.text}"


class NullLeaf(Node):
    """``field: null``: the field is missing or JSON null."""

    __slots__ = ("field", "resolve")

    def __init__(self, name: str) -> None:
        self.field = name
        self.resolve = field_resolver(name)

    def test(self, ctx: Ctx) -> bool:
        value = self.resolve(ctx.doc)
        if type(value) is list:
            return None in value
        return value is MISSING or value is None

    def describe(self) -> str:
        return f"{self.field} is null or missing"


class ExistsLeaf(Node):
    """``field|exists``: the key is present (even when null), or absent."""

    __slots__ = ("field", "resolve", "wanted")

    def __init__(self, name: str, wanted: bool) -> None:
        self.field = name
        self.wanted = wanted
        self.resolve = field_resolver(name)

    def test(self, ctx: Ctx) -> bool:
        return (self.resolve(ctx.doc) is not MISSING) is self.wanted

    def describe(self) -> str:
        return f"{self.field} {'exists' if self.wanted else 'does not exist'}"


class FieldRefLeaf(Node):
    """``field|fieldref``: equal to (or starting/ending with, containing) another field."""

    __slots__ = ("field", "mode", "other", "resolve", "resolve_other")

    def __init__(self, name: str, ref: SigmaFieldReference) -> None:
        self.field = name
        self.other = canonical_field(ref.field)
        self.mode = ("contains" if ref.starts_with and ref.ends_with else
                     "prefix" if ref.starts_with else "suffix" if ref.ends_with else "eq")
        self.resolve = field_resolver(name)
        self.resolve_other = field_resolver(self.other)

    @staticmethod
    def _values(value: Any) -> list[str]:
        values = value if type(value) is list else [value]
        out = []
        for v in values:
            v = fold(v)
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, int | float):
                out.append(str(v))
        return out

    def test(self, ctx: Ctx) -> bool:
        left = self._values(self.resolve(ctx.doc))
        right = self._values(self.resolve_other(ctx.doc))
        mode = self.mode
        for a in left:
            for b in right:
                if (a == b if mode == "eq" else a.startswith(b) if mode == "prefix"
                        else a.endswith(b) if mode == "suffix" else b in a):
                    return True
        return False

    def describe(self) -> str:
        return f"{self.field} {_VERBS[self.mode]} the value of {self.other}"


class KeywordLeaf(Node):
    """A value without a field: a substring of any string value of the event."""

    __slots__ = ("encoded", "prefilter", "spec")

    def __init__(self, spec: StringSpec) -> None:
        self.spec = spec
        # A plain needle JSON writes unchanged can be ruled out on the event's JSON text.
        self.prefilter = spec.pattern is None and json_plain(spec.needle)
        self.encoded = spec.needle.encode()

    def test(self, ctx: Ctx) -> bool:
        spec = self.spec
        if self.prefilter:
            whole = ctx.json() if spec.cased else ctx.keyword_text()
            if isinstance(whole, bytes):
                if self.encoded not in whole:
                    return False
            elif whole is not None and spec.needle not in whole:
                return False
        text = ctx.joined(spec.cased)
        if spec.pattern is not None:
            return spec.pattern.search(text) is not None
        return spec.needle in text

    def describe(self) -> str:
        return f"keyword {_quote(self.spec.text)} appears in the event"


class KeywordScalarLeaf(Node):
    """A keyword that is not a plain string (a regex, a number): tried on every string."""

    __slots__ = ("scalar", "text")

    def __init__(self, scalar: ScalarTest, text: str) -> None:
        self.scalar = scalar
        self.text = text

    def test(self, ctx: Ctx) -> bool:
        return any(self.scalar(s) for s in event_strings(ctx.doc))

    def describe(self) -> str:
        return f"some value of the event {self.text}"


# -- compiling pySigma's tree --------------------------------------------------------------


def _merge_or(children: list[Node]) -> list[Node]:
    """Sibling string leaves on one field, of one kind, become one leaf."""
    merged: list[Node] = []
    groups: dict[tuple[str, str, bool], int] = {}
    for child in children:
        if isinstance(child, StringLeaf):
            key = (child.field, child.kind, child.cased)
            at = groups.get(key)
            if at is not None:
                previous = merged[at]
                assert isinstance(previous, StringLeaf)
                merged[at] = StringLeaf(child.field, [*previous.specs, *child.specs])
                continue
            groups[key] = len(merged)
        merged.append(child)
    return merged


def _or(children: list[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, Or) else (child,))
    flat = _merge_or(flat)
    return flat[0] if len(flat) == 1 else Or(flat)


def _and(children: list[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, And) else (child,))
    return flat[0] if len(flat) == 1 else And(flat)


def _field_leaf(name: str, value: SigmaType) -> Node:
    if isinstance(value, SigmaExpansion):
        return _or([_field_leaf(name, v) for v in value.values])
    if isinstance(value, SigmaCasedString):
        return StringLeaf(name, [string_spec(value, cased=True)])
    if isinstance(value, SigmaString):
        return StringLeaf(name, [string_spec(value, cased=False)])
    if isinstance(value, SigmaTimestampPart):
        part = value.timestamp_part.name.lower()
        return ScalarLeaf(name, timestamp_test(value), f"{part} is {int(value.number)}")
    if isinstance(value, SigmaNumber):
        return ScalarLeaf(name, number_test(value), f"equals {value.number}")
    if isinstance(value, SigmaBool):
        return ScalarLeaf(name, bool_test(value), f"is {str(value.boolean).lower()}")
    if isinstance(value, SigmaRegularExpression):
        test, source = regex_test(value)
        flags = "".join(sorted(f.name[0].lower() for f in value.flags))
        return ScalarLeaf(name, test, f"matches /{source}/{flags}", regex_prefix(value))
    if isinstance(value, SigmaCIDRExpression):
        return ScalarLeaf(name, cidr_test(value), f"is in {value.network}",
                          cidr_prefix(value))
    if isinstance(value, SigmaCompareExpression):
        return ScalarLeaf(name, compare_test(value),
                          f"{COMPARE_WORDS[value.op]} {value.number.number}")
    if isinstance(value, SigmaFieldReference):
        return FieldRefLeaf(name, value)
    if isinstance(value, SigmaNull):
        return NullLeaf(name)
    if isinstance(value, SigmaExists):
        return ExistsLeaf(name, value.exists)
    raise CompileError(f"field {name!r}: values of type {type(value).__name__} are not supported")


def _keyword_leaf(value: SigmaType) -> Node:
    if isinstance(value, SigmaExpansion):
        return _or([_keyword_leaf(v) for v in value.values])
    if isinstance(value, SigmaString):
        return KeywordLeaf(keyword_spec(value, cased=isinstance(value, SigmaCasedString)))
    if isinstance(value, SigmaNumber) and not isinstance(value, SigmaTimestampPart):
        return KeywordLeaf(keyword_spec(SigmaString(str(value.number)), cased=False))
    if isinstance(value, SigmaRegularExpression):
        test, source = regex_test(value)
        return KeywordScalarLeaf(test, f"matches /{source}/")
    raise CompileError(f"keywords of type {type(value).__name__} are not supported")


def compile_node(node: Any) -> Node:
    """One pySigma condition node (post-processed) as a `Node`."""
    if isinstance(node, ConditionAND):
        return _and([compile_node(a) for a in node.args])
    if isinstance(node, ConditionOR):
        return _or([compile_node(a) for a in node.args])
    if isinstance(node, ConditionNOT):
        return Not(compile_node(node.args[0]))
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_leaf(canonical_field(node.field), node.value)
    if isinstance(node, ConditionValueExpression):
        return _keyword_leaf(node.value)
    raise CompileError(f"unsupported condition element {type(node).__name__}")


class CompiledRule:
    """A rule's conditions (OR-ed), ready to test events."""

    __slots__ = ("roots", "test")

    def __init__(self, roots: Sequence[Node]) -> None:
        self.roots = tuple(roots)
        self.test: Callable[[Ctx], bool] = (self.roots[0].fast() if len(self.roots) == 1
                                            else _or(list(self.roots)).fast())

    def reasons(self, ctx: Ctx) -> list[str]:
        out: list[str] = []
        for root in self.roots:
            if root.test(ctx):
                root.reasons(ctx, out)
                break
        return out


def compile_rule(rule: SigmaRule) -> CompiledRule:
    """Compile every condition of ``rule``; `CompileError` names what cannot be evaluated."""
    try:
        conditions = rule.detection.parsed_condition
        trees = [condition.parsed for condition in conditions]
    except SigmaError as exc:
        raise CompileError(f"condition: {exc.args[0] if exc.args else exc}") from exc
    except (AttributeError, re.error) as exc:  # e.g. no detection at all
        raise CompileError(f"condition: {exc}") from exc
    if not trees:
        raise CompileError("the detection has no condition")
    return CompiledRule([compile_node(tree) for tree in trees])


_COMPILED: weakref.WeakKeyDictionary[LoadedRule, CompiledRule] = weakref.WeakKeyDictionary()


def compiled(rule: LoadedRule) -> CompiledRule:
    """``rule`` compiled (once per `LoadedRule`)."""
    found = _COMPILED.get(rule)
    if found is None:
        found = _COMPILED[rule] = compile_rule(rule.sigma)
    return found
