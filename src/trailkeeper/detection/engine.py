"""Matching single events against many rules.

`Engine` compiles its rules once (`compile.compiled`) and indexes them (`index`): by the
exact values they require (witnesses), else by a weaker gate (the start of a field's value,
a keyword in the event's text). Per event it resolves and casefolds each indexed field once
and looks the value up in that field's table, looks the start of each prefix-indexed field
up the same way, tries the keyword needles on the event's JSON text (made only when some
rule has one), and evaluates only the rules selected, plus the few nothing narrows.

A rule selected by its witness is evaluated without the equality the witness proves
(`index.residual`), and rules left with the same test (`index.shape`) are evaluated once
per event. Results come in load order. The engine does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from trailkeeper.detection.compile import And, CompiledRule, compiled, field_resolver
from trailkeeper.detection.context import Ctx, fold, uncased_anchor
from trailkeeper.detection.fields import MISSING, Resolver, reads_time
from trailkeeper.detection.index import Key, gate, indexed_fields, residual, shape, witnesses
from trailkeeper.detection.model import LoadedRule

__all__ = ["Engine"]

Test = Callable[[Ctx], bool]
# An index entry: the rules it selects, and the same grouped by their (shared) test.
Entry = tuple[tuple[int, ...], tuple[tuple[Test, tuple[int, ...]], ...]]

# Prefix keys are cut to this length, so that one field needs few lookups per event.
_PREFIX_CAP = 8


def _holds(ctx: Ctx) -> bool:
    return True


def _test(rule: CompiledRule, selected: bool) -> tuple[Hashable, Callable[[], Test]]:
    """The test of a rule (its shape, and how to build it); when ``selected`` by its
    witness, only what the witness does not prove (`index.residual`)."""
    rest = residual(rule) if selected else None
    if rest is None:
        return ("rule", tuple(shape(r) for r in rule.roots)), lambda: rule.test
    if not rest:
        return ("holds",), lambda: _holds
    node = rest[0] if len(rest) == 1 else And(rest)
    return shape(node), node.fast


def _prefix_other(value: Any, lengths: tuple[int, ...], table: dict[str, Entry],
                  every: Entry, hits: list[Entry]) -> None:
    """Prefix lookups for a value that is not a string: each string element of a list is
    looked up; anything else (a number a regex reads as text ...) selects every rule."""
    if type(value) is not list:
        hits.append(every)
        return
    for element in value:
        if type(element) is str:
            for n in lengths:
                hit = table.get(element[:n])
                if hit:
                    hits.append(hit)
        elif element is not None:
            hits.append(every)
            return


class Engine:
    """Match file-shape events (see `document.matchable`) against ``rules``."""

    def __init__(self, rules: Sequence[LoadedRule]) -> None:
        self.rules: tuple[LoadedRule, ...] = tuple(rules)
        self._compiled = [compiled(rule) for rule in self.rules]
        sets = [witnesses(c) for c in self._compiled]
        # Rules without a witness (kept for reports); most still have a gate.
        self.always: tuple[int, ...] = tuple(i for i, w in enumerate(sets) if w is None)
        keys: list[frozenset[Key] | None] = [
            frozenset(("eq", f, v) for f, v in w) if w is not None else gate(c)
            for w, c in zip(sets, self._compiled, strict=True)]
        # Rules evaluated for every event: nothing narrows them.
        self.unconditional: tuple[int, ...] = tuple(i for i, k in enumerate(keys) if k is None)
        built: dict[Hashable, Test] = {}
        self._tests: list[Test] = []
        for w, c in zip(sets, self._compiled, strict=True):
            key, build = _test(c, w is not None)
            found = built.get(key)
            if found is None:
                found = built[key] = build()
            self._tests.append(found)
        eq: dict[str, dict[str, list[int]]] = {}
        prefix: dict[str, dict[str, list[int]]] = {}
        keyword: dict[str, list[int]] = {}
        for position, found_keys in enumerate(keys):
            for kind, name, text in sorted(found_keys or ()):
                if kind == "eq":
                    rows = eq.setdefault(name, {}).setdefault(text, [])
                elif kind == "prefix":
                    rows = prefix.setdefault(name, {}).setdefault(text[:_PREFIX_CAP], [])
                else:
                    rows = keyword.setdefault(text, [])
                if not rows or rows[-1] != position:
                    rows.append(position)
        eq_fields = indexed_fields([frozenset((f, v) for k, f, v in found if k == "eq")
                                    for found in keys if found])
        entry = self._entry
        # (name, head, tail, resolver, table): head and tail split a two-part name whose
        # lookup `_hits` inlines (a flat key first, then one nested object).
        self._index: list[tuple[str, str, str, Resolver, dict[str, Entry]]] = []
        for name in eq_fields:
            head, _, tail = name.partition(".")
            if "." in tail or reads_time(name):
                head = tail = ""
            self._index.append((name, head, tail, field_resolver(name),
                                {v: entry(p) for v, p in eq[name].items()}))
        self._prefix: list[tuple[str, Resolver, tuple[int, ...], dict[str, Entry], Entry]] = [
            (name, field_resolver(name), tuple(sorted({len(t) for t in table})),
             {t: entry(p) for t, p in table.items()},
             entry({i for p in table.values() for i in p}))
            for name, table in sorted(prefix.items())]
        # (anchor, whole, encoded needle, needle, entry): the anchor (`uncased_anchor`) is
        # looked up in the JSON as it is, all of them in one pass first; the needle in the
        # casefolded JSON only when its anchor is there and is not the whole needle.
        self._keywords: list[tuple[bytes, bool, bytes, str, Entry]] = []
        for needle, p in sorted(keyword.items()):
            anchor = uncased_anchor(needle)
            self._keywords.append((anchor.encode(), anchor == needle, needle.encode(), needle,
                                   entry(p)))
        anchors = sorted({a for a, _, _, _, _ in self._keywords if a}, key=len, reverse=True)
        self._anchors = (re.compile(b"|".join(re.escape(a) for a in anchors)).search
                         if anchors else None)
        self._keyword_rules = entry({i for p in keyword.values() for i in p})
        self._unconditional = entry(self.unconditional)
        self.evaluated = 0  # rule evaluations so far (for benchmarks and metrics)

    def _entry(self, positions: Iterable[int]) -> Entry:
        ordered = tuple(sorted(set(positions)))
        groups: dict[Test, list[int]] = {}
        for i in ordered:
            groups.setdefault(self._tests[i], []).append(i)
        return ordered, tuple((test, tuple(p)) for test, p in groups.items())

    @property
    def indexed_fields(self) -> list[str]:
        """The fields looked up by exact value."""
        return [name for name, _, _, _, _ in self._index]

    @property
    def prefix_fields(self) -> list[str]:
        """The fields looked up by the start of their value."""
        return [name for name, _, _, _, _ in self._prefix]

    def _hits(self, ctx: Ctx) -> list[Entry]:
        """The index entries this event selects."""
        hits: list[Entry] = []
        doc = ctx.doc
        folded = ctx.folded
        for name, head, tail, resolve, table in self._index:
            if tail:
                value = doc.get(name, MISSING)
                if value is MISSING:
                    node = doc.get(head)
                    value = node.get(tail, MISSING) if type(node) is dict else resolve(doc)
            else:
                value = resolve(doc)
            if type(value) is str:
                value = folded[name] = value.casefold()
                hit = table.get(value)
                if hit:
                    hits.append(hit)
                continue
            value = folded[name] = fold(value)
            if type(value) is str:  # a boolean reads as "true"/"false"
                hit = table.get(value)
                if hit:
                    hits.append(hit)
            elif type(value) is list:
                for element in value:
                    if type(element) is str:
                        hit = table.get(element)
                        if hit:
                            hits.append(hit)
        for _, resolve, lengths, starts, every in self._prefix:
            value = resolve(doc)
            if type(value) is str:
                for n in lengths:
                    hit = starts.get(value[:n])
                    if hit:
                        hits.append(hit)
            elif value is not MISSING and value is not None:
                _prefix_other(value, lengths, starts, every, hits)
        if self._keywords:
            raw = ctx.json()
            if raw is None:
                hits.append(self._keyword_rules)
            else:
                anchors = self._anchors
                anchored = anchors is not None and anchors(raw) is not None
                for anchor, whole, encoded, needle, hit in self._keywords:
                    if anchor and (not anchored or anchor not in raw):
                        continue
                    if not whole:
                        text = ctx.keyword_text()
                        if isinstance(text, bytes):
                            if encoded not in text:
                                continue
                        elif text is not None and needle not in text:
                            continue
                    hits.append(hit)
        if self.unconditional:
            hits.append(self._unconditional)
        return hits

    def candidates(self, event: Mapping[str, Any]) -> list[int]:
        """Positions of the rules evaluated for ``event``, in load order."""
        return sorted({i for positions, _ in self._hits(Ctx(event)) for i in positions})

    def match(self, event: Mapping[str, Any]) -> list[LoadedRule]:
        """The rules ``event`` (file shape) matches, in load order."""
        ctx = Ctx(event)
        hits = self._hits(ctx)
        if not hits:
            return []
        matched: list[int] = []
        if len(hits) == 1:
            positions, groups = hits[0]
            for test, chosen in groups:
                if test(ctx):
                    matched.extend(chosen)
            self.evaluated += len(positions)
        else:
            tests = self._tests
            results: dict[Test, bool] = {}
            chosen_all = {i for positions, _ in hits for i in positions}
            for i in chosen_all:
                test = tests[i]
                held = results.get(test)
                if held is None:
                    held = results[test] = test(ctx)
                if held:
                    matched.append(i)
            self.evaluated += len(chosen_all)
        if not matched:
            return []
        if len(matched) > 1:
            matched.sort()
        rules = self.rules
        return [rules[i] for i in matched]

    def explain(self, event: Mapping[str, Any], rule: LoadedRule) -> list[str]:
        """Why ``rule`` matches ``event``: the leaves that held (empty if it does not match)."""
        compiled_rule = compiled(rule)
        ctx = Ctx(event)
        if not compiled_rule.test(ctx):
            return []
        return compiled_rule.reasons(ctx)
