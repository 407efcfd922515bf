"""Which rules can match an event at all: the witness index.

A *witness set* of a rule is a set of ``(field, casefolded value)`` pairs such that every
event the rule matches has at least one of them (an exact, case-insensitive string equality
that must hold). It is derived from the compiled tree:

- an equality leaf gives one witness per value (values that read as numbers give none,
  because ``'5'`` also matches the event number ``5.0``);
- ``or`` needs a witness set from every branch and unites them;
- ``and`` takes the best witness set of any of its operands (on ``auditType.action`` first,
  then ``auditType.category``, then the smallest);
- ``not``, keywords, patterns, regexes and every other leaf give none.

Rules with a witness set are evaluated only when the event has one of its values (one dict
lookup per indexed field per event). The others (`Engine.always`: negated-only, keyword,
regex-only ...) get a weaker *gate*, derived the same way from more kinds of `Key`:

- ``("eq", field, value)``: as a witness;
- ``("prefix", field, text)``: the field's string value starts with ``text``, case-sensitively
  (an anchored regex's literal start, a cidr network's whole octets, a ``|cased`` value);
  a value that is not a string (a number, a list element that is not) lets the rule through;
- ``("keyword", "", needle)``: the casefolded needle appears in the event's casefolded JSON
  text (`Ctx.keyword_text`), which holds every string value.

Only rules with neither (negations, wildcard keywords ...) are evaluated for every event.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from trailkeeper.detection.compile import (
    And,
    CompiledRule,
    ExistsLeaf,
    FieldRefLeaf,
    KeywordLeaf,
    Node,
    Not,
    NullLeaf,
    Or,
    ScalarLeaf,
    StringLeaf,
)
from trailkeeper.detection.context import json_plain
from trailkeeper.detection.values import as_number

__all__ = ["Gate", "Key", "Witness", "gate", "indexed_fields", "residual", "shape",
           "witnesses"]

Witness = frozenset[tuple[str, str]]
Key = tuple[str, str, str]  # (kind, field, text): see the module's docstring
Gate = frozenset[Key]

# Fields preferred as index keys: few distinct values per rule, present in every event.
_PREFERRED = ("auditType.action", "auditType.category")


def _rank(witness: Witness) -> tuple[int, int, int]:
    fields = {f for f, _ in witness}
    worst = max((_PREFERRED.index(f) if f in _PREFERRED else len(_PREFERRED)) for f in fields)
    return worst, len(fields), len(witness)


def _node(node: Node) -> Witness | None:
    if isinstance(node, StringLeaf):
        if node.kind != "eq" or any(as_number(s.text) is not None for s in node.specs):
            return None
        return frozenset((node.field, s.needle.casefold()) for s in node.specs)
    if isinstance(node, Or):
        union: set[tuple[str, str]] = set()
        for child in node.children:
            found = _node(child)
            if found is None:
                return None
            union |= found
        return frozenset(union)
    if isinstance(node, And):
        options = [w for w in (_node(c) for c in node.children) if w is not None]
        return min(options, key=_rank) if options else None
    if isinstance(node, Not):
        return None
    return None


def witnesses(rule: CompiledRule) -> Witness | None:
    """The rule's witness set, or None when it must be evaluated for every event."""
    union: set[tuple[str, str]] = set()
    for root in rule.roots:
        found = _node(root)
        if found is None:
            return None
        union |= found
    return frozenset(union)


def _sure(leaf: Node) -> bool:
    """Whether finding one of this leaf's witnesses in the index means the leaf holds."""
    return (isinstance(leaf, StringLeaf) and leaf.kind == "eq" and not leaf.cased
            and _node(leaf) is not None
            and all(s.needle.casefold() == s.needle for s in leaf.specs))


def residual(rule: CompiledRule) -> tuple[Node, ...] | None:
    """What is left to test of a rule the index selected by its witness: the conjuncts
    other than the equality leaf the witness comes from, which is known to hold then
    (empty: nothing left). None when the witness does not come from one such leaf."""
    if len(rule.roots) != 1:
        return None
    root = rule.roots[0]
    if _sure(root):
        return ()
    if not isinstance(root, And):
        return None
    options = [(c, w) for c, w in ((c, _node(c)) for c in root.children) if w is not None]
    if not options:
        return None
    chosen, _ = min(options, key=lambda option: _rank(option[1]))
    if not _sure(chosen):
        return None
    return tuple(c for c in root.children if c is not chosen)


_KINDS = ("eq", "prefix", "keyword")


def _gate_rank(keys: Gate) -> tuple[int, int, int, int]:
    kind = max(_KINDS.index(k) for k, _, _ in keys)
    eq = frozenset((f, t) for k, f, t in keys if k == "eq")
    return (kind, *(_rank(eq) if eq else (0, 0, 0)))


def _gate(node: Node) -> Gate | None:
    if isinstance(node, StringLeaf):
        found = _node(node)
        if found is not None:
            return frozenset(("eq", f, v) for f, v in found)
        if node.cased and node.kind in ("eq", "prefix") and all(s.needle for s in node.specs):
            return frozenset(("prefix", node.field, s.needle) for s in node.specs)
        return None
    if isinstance(node, ScalarLeaf):
        return None if node.prefix is None else frozenset({("prefix", node.field, node.prefix)})
    if isinstance(node, KeywordLeaf):
        spec = node.spec
        if spec.pattern is not None or not json_plain(spec.needle):
            return None
        return frozenset({("keyword", "", spec.needle.casefold())})
    if isinstance(node, Or):
        union: set[Key] = set()
        for child in node.children:
            keys = _gate(child)
            if keys is None:
                return None
            union |= keys
        return frozenset(union)
    if isinstance(node, And):
        options = [g for g in (_gate(c) for c in node.children) if g is not None]
        return min(options, key=_gate_rank) if options else None
    return None


def gate(rule: CompiledRule) -> Gate | None:
    """Keys one of which every event the rule matches has (see the module's docstring), or
    None when the rule must be evaluated for every event."""
    union: set[Key] = set()
    for root in rule.roots:
        found = _gate(root)
        if found is None:
            return None
        union |= found
    return frozenset(union)


def indexed_fields(sets: Sequence[Witness | None]) -> list[str]:
    """The fields the index looks up, preferred ones first."""
    fields = {f for w in sets if w is not None for f, _ in w}
    return sorted(fields, key=lambda f: (_PREFERRED.index(f) if f in _PREFERRED else 99, f))


def shape(node: Node) -> Hashable:
    """A value two nodes share only when they test events alike (the engine evaluates
    rules left with the same test once per event). Leaves holding compiled functions
    (regex, cidr, numbers ...) are only alike with themselves."""
    if isinstance(node, And | Or):
        return (type(node).__name__, tuple(shape(c) for c in node.children))
    if isinstance(node, Not):
        return ("not", shape(node.child))
    if isinstance(node, StringLeaf | KeywordLeaf):
        specs = node.specs if isinstance(node, StringLeaf) else (node.spec,)
        return (type(node).__name__, getattr(node, "field", ""),
                tuple((s.kind, s.needle, s.cased, s.text,
                       None if s.pattern is None else (s.pattern.pattern, s.pattern.flags))
                      for s in specs))
    if isinstance(node, NullLeaf):
        return ("null", node.field)
    if isinstance(node, ExistsLeaf):
        return ("exists", node.field, node.wanted)
    if isinstance(node, FieldRefLeaf):
        return ("fieldref", node.field, node.other, node.mode)
    return ("node", id(node))
