"""Streaming evaluation of Sigma correlation rules over the matches of other rules.

A `Correlator` is fed one event at a time, in the order of the log, together with the base
rules that matched it (`observe`), and returns the correlation hits that event completes.
It is sans-I/O and deterministic: the same events in the same order give the same hits, so
the live path and ``rules hunt`` agree. A window depends only on the events in it, never on
earlier hits, so after a restart replaying the events of the last `Correlator.max_timespan_ms`
(of event time, up to the newest event seen) into a fresh correlator rebuilds every window
exactly when events arrive in time order: the events after the restart give the same hits as
without it. The exceptions are groups evicted under state pressure (``max_groups``) and late
events (their windows may reach back before the replayed span).

Semantics (also in docs/detection.md, "Correlations"):

* **Types.** ``event_count`` counts the events matched by any referenced rule (an event that
  matches several of them counts once); ``value_count`` counts the distinct values of
  ``condition.field``, compared casefolded, among those events (an event without the field is
  ignored, as SQL's ``COUNT(DISTINCT)`` ignores NULL); ``temporal`` counts the distinct
  referenced rules seen (the condition defaults to "all of them"; pySigma's extended string
  conditions such as ``a and not b`` are supported, ``not b`` meaning "b not seen in the
  window"); ``temporal_ordered`` needs every referenced rule, each step strictly after the
  previous one (ordered by timestamp, then by arrival), and supports only the default "all
  rules" condition. ``value_sum``, ``value_avg``, ``value_percentile`` and ``value_median`` are
  rejected with a `CorrelationError` (a `ValueError`) naming the rule; `usable` sorts the
  correlations a loader can keep from the ones it must report.
* **Windows** slide over event time (``timestamp_ms``), not the wall clock, and are inclusive:
  a group's window is ``[newest - timespan, newest]`` where ``newest`` is the latest timestamp
  seen for the group. Conditions are checked after every event that enters a window, which is
  how "fewer than" (``lt``/``lte``) conditions are decided in a stream: they hold right after
  an event when the window holds few enough.
* **Out of order.** Entries are kept sorted by time; an event older than its group's window
  (``timestamp < newest - timespan``) is too late and is neither counted nor evaluated.
* **Group-by** fields are ANDed; a missing field is the empty string; keys compare casefolded
  and the hit reports the spelling of its earliest event (a function of the window, so a
  replay reproduces it). ``aliases`` map a group-by name to a per-rule field. Fields are
  dotted paths into the file-shape event (``author.name``); inside an array
  (``affectedObjects.id``) the first element that has the field wins.
* **After a hit** the window is kept: every later event that enters it while the condition
  still holds is a hit again (25 failed logins in a row with ``gte: 10`` are hits at the 10th
  to the 25th; the alert throttle merges them into one alert that keeps counting). An event
  that matches several rules of a ``temporal``/``temporal_ordered`` correlation enters the
  group's window once for all of them and is checked once.
* **A hit's events** are at most `MAX_HIT_EVENT_IDS` ids, those of the most recent window
  entries (by timestamp, then arrival), ascending; ``first_ms``/``last_ms`` span the entries
  they come from. ``temporal`` reports the latest match of each rule present,
  ``temporal_ordered`` the latest chain (the newest match of the last rule, each earlier step
  the newest match strictly before the next).
* **Chaining.** A hit of a correlation that another one refers to is fed to the outer one as
  an event at the hit's ``last_ms`` whose fields are the inner group values (an outer group-by
  field the inner does not group by is ""). Inner correlations run first. A correlation whose
  ``generate`` is False feeds its outer ones but its hits are not returned. Since an inner
  correlation hits on every event while its condition holds, an ``event_count`` over it
  counts inner hits, not distinct inner windows.
* **Bounded state.** Per correlation at most ``max_groups`` groups (least recently used
  evicted, counted in ``evicted``) and per group at most ``max_events_per_group`` entries
  (oldest dropped; ``temporal`` keeps one entry per rule).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import eq, ge, gt, itemgetter, le, lt, ne
from typing import Any

from sigma.correlations import (
    CorrelationConditionAND,
    CorrelationConditionItem,
    CorrelationConditionNOT,
    CorrelationConditionOR,
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)

from trailkeeper.alerts.model import MAX_EVENT_IDS
from trailkeeper.detection.fields import MISSING, Resolver, canonical_field, resolver
from trailkeeper.detection.model import LoadedCorrelation, LoadedRule

__all__ = ["MAX_HIT_EVENT_IDS", "CorrelationError", "CorrelationHit", "Correlator", "usable"]

# A hit carries the ids of at most this many events, the most recent ones (an alert keeps as
# many); under a long attack every event is a hit over the whole window.
MAX_HIT_EVENT_IDS = MAX_EVENT_IDS


class CorrelationError(ValueError):
    """A correlation that cannot run; the loader reports it (`rules lint`) and leaves it out."""

    def __init__(self, correlation: LoadedCorrelation, problem: str) -> None:
        super().__init__(f"correlation {_describe(correlation)}: {problem}")
        self.correlation = correlation
        self.problem = problem


def usable(correlations: Sequence[LoadedCorrelation], **limits: int) -> tuple[
        list[LoadedCorrelation], list[CorrelationError]]:
    """The correlations a `Correlator` accepts, and why each of the others was left out.

    A correlation that refers to one left out is left out too ("not loaded").
    """
    kept, problems = list(correlations), []
    while True:
        try:
            Correlator(kept, **limits)
        except CorrelationError as e:
            problems.append(e)
            kept = [c for c in kept if c is not e.correlation]
        else:
            return kept, problems


@dataclass(frozen=True)
class CorrelationHit:
    """A correlation whose condition held: its group, the events behind it and their span."""

    correlation: LoadedCorrelation
    group: dict[str, str]
    event_ids: tuple[int, ...]  # ascending, without duplicates, at most MAX_HIT_EVENT_IDS
    first_ms: int  # the earliest and latest time of the window entries the ids come from
    last_ms: int


# (timestamp_ms, arrival sequence, event ids, casefolded value for value_count or "",
#  group-by values as spelled by this event)
_Entry = tuple[int, int, tuple[int, ...], str, tuple[str, ...]]
_ts = itemgetter(0)
_order = itemgetter(0, 1)
_OPS: dict[SigmaCorrelationConditionOperator, Callable[[Any, Any], bool]] = {
    SigmaCorrelationConditionOperator.LT: lt, SigmaCorrelationConditionOperator.LTE: le,
    SigmaCorrelationConditionOperator.GT: gt, SigmaCorrelationConditionOperator.GTE: ge,
    SigmaCorrelationConditionOperator.EQ: eq, SigmaCorrelationConditionOperator.NEQ: ne,
}
_UNSUPPORTED = {SigmaCorrelationType.VALUE_SUM, SigmaCorrelationType.VALUE_AVG,
                SigmaCorrelationType.VALUE_PERCENTILE, SigmaCorrelationType.VALUE_MEDIAN}


# -- fields --------------------------------------------------------------------------------


def _scalar(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        for item in value:
            found = _scalar(item)
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class _Field:
    """A group-by or value field, found as the rules find theirs (`fields.resolver`: flat
    key first — an inner hit's group — then the dotted path; REST aliases; the ISO
    timestamp); in an array, the first element that has it."""

    name: str
    resolve: Resolver

    @classmethod
    def of(cls, name: str) -> _Field:
        return cls(name, resolver(canonical_field(name)))

    def get(self, doc: Mapping[str, Any]) -> str | None:
        value = doc.get(self.name, MISSING)
        return _scalar(self.resolve(doc) if value is MISSING else value)


# -- state ---------------------------------------------------------------------------------


class _Group:
    __slots__ = ("entries", "newest", "spelled", "steps", "values")

    def __init__(self, n_refs: int) -> None:
        self.spelled: tuple[str, ...] = ()  # the last entry's, shared by the entries alike
        self.newest: int | None = None
        self.entries: list[_Entry] = []  # event_count, value_count
        self.values: dict[str, int] = {}  # value_count: value -> entries holding it
        self.steps: list[list[_Entry]] = [[] for _ in range(n_refs)]  # temporal types


class _Observation:
    """One event (or inner hit) as a correlation sees it; field values are read once."""

    __slots__ = ("cache", "event_ids", "fields", "refs", "seq", "ts")

    def __init__(self, refs: tuple[int, ...], fields: Mapping[str, Any],
                 event_ids: tuple[int, ...], ts: int, seq: int,
                 cache: dict[str, str | None]) -> None:
        self.refs = refs  # indices into the correlation's rules that this "event" matched
        self.fields = fields
        self.event_ids = event_ids
        self.ts = ts
        self.seq = seq
        self.cache = cache  # shared by the observations of one event

    def get(self, field: _Field) -> str | None:
        try:
            return self.cache[field.name]
        except KeyError:
            value = self.cache[field.name] = field.get(self.fields)
            return value


def _insert(entries: list[_Entry], entry: _Entry) -> None:
    """Keep time order; ties keep arrival order (the new entry has the highest sequence)."""
    if not entries or entries[-1][0] <= entry[0]:
        entries.append(entry)
    else:
        entries.insert(bisect_right(entries, entry[0], key=_ts), entry)


def _expired(entries: list[_Entry], oldest: int) -> int:
    """How many leading entries are older than `oldest`."""
    if not entries or entries[0][0] >= oldest:
        return 0
    return bisect_left(entries, oldest, key=_ts)


def _hit(spec: _Spec, entries: Sequence[_Entry]) -> CorrelationHit:
    """The hit of time-ordered `entries`: the ids of the newest ones, at most
    MAX_HIT_EVENT_IDS, and the group as spelled by the earliest entry they come from.

    Runs on every event while a condition holds, so it looks at the tail of the window only.
    """
    start = max(len(entries) - MAX_HIT_EVENT_IDS, 0)
    ids: list[int] | None = None
    if spec.one_id:  # the usual case, one id per entry: the tail is the answer
        ids = [entry[2][0] for entry in entries[start:]]
        ids.sort()
        if any(map(eq, ids, islice(ids, 1, None))):  # an event observed twice
            ids = None
    if ids is None:
        start, found = _newest_ids(entries)  # inner hits (several ids each), repeated ids
        ids = sorted(found)
    first = entries[start]
    return CorrelationHit(spec.loaded, dict(zip(spec.group_names, first[4], strict=True)),
                          tuple(ids), first[0], entries[-1][0])


def _newest_ids(entries: Sequence[_Entry]) -> tuple[int, set[int]]:
    """The index of the oldest entry used and the ids of the newest entries, at most
    MAX_HIT_EVENT_IDS; within an entry (an inner hit) its largest ids are the newest."""
    ids: set[int] = set()
    start = len(entries)
    while start and len(ids) < MAX_HIT_EVENT_IDS:
        start -= 1
        for i in reversed(entries[start][2]):
            ids.add(i)
            if len(ids) == MAX_HIT_EVENT_IDS:
                break
    return start, ids


class _Spec:
    """One compiled correlation and the groups it holds."""

    def __init__(self, loaded: LoadedCorrelation, refs: Sequence[SigmaRuleReference],
                 ref_keys: Sequence[frozenset[str]], max_groups: int,
                 max_events: int) -> None:
        sigma = loaded.sigma
        self.loaded = loaded
        self.kind = sigma.type
        self.span_ms = sigma.timespan.seconds * 1000
        self.max_groups = max_groups
        self.max_events = max_events
        self.n_refs = len(refs)
        self.counting = self.kind in (SigmaCorrelationType.EVENT_COUNT,
                                      SigmaCorrelationType.VALUE_COUNT)
        self.one_id = self.counting  # each entry holds one event id (not when fed inner hits)
        self.groups: OrderedDict[tuple[str, ...], _Group] = OrderedDict()
        self.feeds: list[tuple[int, int]] = []  # (outer correlation, its ref index)
        self.evicted = 0
        self.group_names = tuple(sigma.group_by or ())
        # per ref: the field to read for each group-by name, and for value_count's field
        self.group_fields = [tuple(_Field.of(_aliased(sigma, g, keys)) for g in self.group_names)
                             for keys in ref_keys]
        self.value_fields: list[_Field] = []
        self.expr: Callable[[set[int]], bool] | None = None
        condition = sigma.condition
        if isinstance(condition, SigmaExtendedCorrelationCondition):
            if self.kind is not SigmaCorrelationType.TEMPORAL:
                raise CorrelationError(loaded, "a string condition is only supported "
                                               "for type temporal")
            self.expr = _compile_expr(condition.parsed, [r.reference for r in refs], loaded)
            self.test: Callable[[Any, Any], bool] = ge
            self.count: int | float = 0
            return
        assert isinstance(condition, SigmaCorrelationCondition)
        self.test, self.count = _OPS[condition.op], condition.count
        op = condition.op
        if self.kind is SigmaCorrelationType.VALUE_COUNT:
            fieldref = condition.fieldref
            if isinstance(fieldref, list):
                if len(fieldref) != 1:
                    raise CorrelationError(loaded, "value_count needs exactly one field")
                fieldref = fieldref[0]
            assert fieldref is not None  # pySigma requires it for value_count
            self.value_fields = [_Field.of(_aliased(sigma, fieldref, keys)) for keys in ref_keys]
        if self.kind is SigmaCorrelationType.TEMPORAL_ORDERED and not (
                (op in (SigmaCorrelationConditionOperator.GTE,
                        SigmaCorrelationConditionOperator.EQ) and self.count == self.n_refs)
                or (op is SigmaCorrelationConditionOperator.GT
                    and self.n_refs - 1 <= self.count < self.n_refs)):
            raise CorrelationError(loaded, f"temporal_ordered supports only the default "
                                           f"condition (gte: {self.n_refs}, every rule in order)")
        limit = self.n_refs if self.kind is SigmaCorrelationType.TEMPORAL else max_events
        if (op is SigmaCorrelationConditionOperator.GTE and self.count > limit) or (
                op is SigmaCorrelationConditionOperator.GT and self.count >= limit):
            raise CorrelationError(loaded, f"condition {op.name.lower()} {self.count} "
                                           f"can never hold (at most {limit} per group)")

    # -- groups --

    def _group(self, ref: int, ob: _Observation) -> tuple[_Group, tuple[str, ...]]:
        """The event's group (keys compare casefolded) and its group-by values as spelled."""
        fields = self.group_fields[ref]
        if len(fields) == 1:
            value = ob.get(fields[0]) or ""
            values: tuple[str, ...] = (value,)
            key: tuple[str, ...] = (value.casefold(),)
        else:
            values = tuple([ob.get(f) or "" for f in fields])
            key = tuple([v.casefold() for v in values])
        group = self.groups.get(key)
        if group is None:
            group = _Group(0 if self.counting else self.n_refs)
            self.groups[key] = group
            if len(self.groups) > self.max_groups:
                self.groups.popitem(last=False)
                self.evicted += 1
        else:
            self.groups.move_to_end(key)
        if values == group.spelled:
            return group, group.spelled  # one tuple for many entries: less for the GC
        group.spelled = values
        return group, values

    def _admit(self, group: _Group, ts: int) -> bool:
        """Advance the group's newest time; False when `ts` is older than its window."""
        if group.newest is None or ts > group.newest:
            group.newest = ts
            return True
        return ts >= group.newest - self.span_ms

    def size(self) -> int:
        return sum(len(g.entries) + sum(len(s) for s in g.steps) for g in self.groups.values())

    # -- evaluation --

    def feed(self, ob: _Observation) -> list[CorrelationHit]:
        if self.counting:
            hit = self._feed_count(ob)
            return [] if hit is None else [hit]
        # temporal types: the event enters each group it belongs to once, for all its rules
        # (aliases may put one event in several groups), and each group is checked once
        if len(ob.refs) == 1:
            group, values = self._group(ob.refs[0], ob)
            hit = self._feed_temporal(group, [(ob.refs[0], values)], ob)
            return [] if hit is None else [hit]
        touched: dict[int, tuple[_Group, list[tuple[int, tuple[str, ...]]]]] = {}
        for ref in ob.refs:
            group, values = self._group(ref, ob)
            touched.setdefault(id(group), (group, []))[1].append((ref, values))
        hits = []
        for group, refs in touched.values():
            hit = self._feed_temporal(group, refs, ob)
            if hit is not None:
                hits.append(hit)
        return hits

    def _feed_count(self, ob: _Observation) -> CorrelationHit | None:
        ref = ob.refs[0]  # the first referenced rule the event matched names its fields
        value = ""
        if self.value_fields:
            found = ob.get(self.value_fields[ref])
            if found is None:
                return None
            value = found.casefold()
        group, spelled = self._group(ref, ob)
        if not self._admit(group, ob.ts):
            return None
        entries, values = group.entries, group.values
        _insert(entries, (ob.ts, ob.seq, ob.event_ids, value, spelled))
        distinct = bool(self.value_fields)
        if distinct:
            values[value] = values.get(value, 0) + 1
        assert group.newest is not None
        drop = _expired(entries, group.newest - self.span_ms)
        drop = max(drop, len(entries) - self.max_events)
        if drop:
            if distinct:
                for entry in entries[:drop]:
                    left = values[entry[3]] - 1
                    if left:
                        values[entry[3]] = left
                    else:
                        del values[entry[3]]
            del entries[:drop]
        measured = len(values) if distinct else len(entries)
        if not entries or not self.test(measured, self.count):
            return None
        return _hit(self, entries)  # the window is kept: the next event may hit again

    def _feed_temporal(self, group: _Group, refs: list[tuple[int, tuple[str, ...]]],
                       ob: _Observation) -> CorrelationHit | None:
        if not self._admit(group, ob.ts):
            return None
        assert group.newest is not None
        oldest = group.newest - self.span_ms
        ordered = self.kind is SigmaCorrelationType.TEMPORAL_ORDERED
        steps = group.steps
        for ref, spelled in refs:
            entry = (ob.ts, ob.seq, ob.event_ids, "", spelled)
            if ordered:
                _insert(steps[ref], entry)
            elif not steps[ref] or steps[ref][0][0] <= ob.ts:
                steps[ref] = [entry]  # temporal keeps the latest match of each rule
        for step in steps:
            drop = _expired(step, oldest)
            if drop:
                del step[:drop]
        if ordered:
            self._cap(steps)
            latest = _latest_chain(steps)
            return None if latest is None else _hit(self, latest)
        present = {i for i, step in enumerate(steps) if step}
        expr = self.expr
        holds = expr(present) if expr is not None else self.test(len(present), self.count)
        if not holds or not present:
            return None
        return _hit(self, sorted((steps[i][0] for i in present), key=_order))

    def _cap(self, steps: list[list[_Entry]]) -> None:
        """Drop the oldest entries across the rules' lists beyond max_events."""
        excess = sum(map(len, steps)) - self.max_events
        for _ in range(excess):  # none, unless the group is full
            oldest = min((s for s in steps if s), key=lambda s: s[0][:2])
            del oldest[0]


def _latest_chain(steps: list[list[_Entry]]) -> list[_Entry] | None:
    """The latest chain with one entry per step, each strictly after the previous one: the
    newest entry of the last step, then for each earlier step its newest entry strictly
    before the one chosen after it. There is one exactly when any chain exists."""
    found: list[_Entry] = []
    before: tuple[int, int] | None = None
    for step in reversed(steps):
        if not step:
            return None
        if before is None:
            entry = step[-1]
        else:
            i = bisect_left(step, before, key=_order)
            if i == 0:
                return None
            entry = step[i - 1]
        found.append(entry)
        before = (entry[0], entry[1])
    found.reverse()
    return found


def _describe(loaded: LoadedCorrelation) -> str:
    return f"{loaded.id!r} ({loaded.title})" if loaded.title != loaded.id else repr(loaded.id)


def _keys_of(ref: SigmaRuleReference) -> frozenset[str]:
    """Every string that names the referenced rule: the reference, its id and its name."""
    keys = {ref.reference}
    rule = getattr(ref, "rule", None)
    if rule is not None:
        if rule.id is not None:
            keys.add(str(rule.id))
        if rule.name:
            keys.add(rule.name)
    return frozenset(keys)


def _aliased(sigma: SigmaCorrelationRule, name: str, ref_keys: frozenset[str]) -> str:
    alias = sigma.aliases.aliases.get(name)
    if alias is not None:
        for alias_ref, field_name in alias.mapping.items():
            if _keys_of(alias_ref) & ref_keys:
                return field_name
    return name


def _compile_expr(node: CorrelationConditionItem | SigmaRuleReference, refs: list[str],
                  loaded: LoadedCorrelation) -> Callable[[set[int]], bool]:
    if isinstance(node, SigmaRuleReference):
        if node.reference not in refs:
            raise CorrelationError(loaded, f"condition names {node.reference!r}, "
                                           "which is not in its rules")
        index = refs.index(node.reference)
        return lambda present: index in present
    args = [_compile_expr(a, refs, loaded) for a in node.args]
    if isinstance(node, CorrelationConditionNOT):
        inner = args[0]
        return lambda present: not inner(present)
    if isinstance(node, CorrelationConditionAND):
        return lambda present: all(a(present) for a in args)
    if isinstance(node, CorrelationConditionOR):
        return lambda present: any(a(present) for a in args)
    raise CorrelationError(loaded, f"unsupported condition {type(node).__name__}")


def _references(sigma: SigmaCorrelationRule) -> list[SigmaRuleReference]:
    if sigma.referenced_rules:
        return list(sigma.referenced_rules)
    if sigma.rules:
        return list(sigma.rules)
    if isinstance(sigma.condition, SigmaExtendedCorrelationCondition):
        return [SigmaRuleReference(r) for r in sigma.condition.get_referenced_rules()]
    return []


# -- the correlator ------------------------------------------------------------------------


class Correlator:
    """Keeps the windows of a set of correlations and reports the hits each event completes."""

    def __init__(self, correlations: Sequence[LoadedCorrelation], *,
                 max_groups: int = 100_000, max_events_per_group: int = 10_000) -> None:
        if max_groups < 1 or max_events_per_group < 1:
            raise ValueError("max_groups and max_events_per_group must be at least 1")
        self._seq = 0
        self._evicted_before_reset = 0
        own: dict[str, int] = {}
        for i, c in enumerate(correlations):
            for key in (c.id, c.name, c.sigma.name,
                        str(c.sigma.id) if c.sigma.id is not None else None):
                if key:
                    own.setdefault(key, i)
        # resolve every reference: to one of our correlations (a chain) or to a base rule
        inner: list[list[tuple[int, int]]] = [[] for _ in correlations]  # (inner, ref index)
        base: dict[str, set[tuple[int, int]]] = {}
        self._referenced: set[str] = set()
        all_refs: list[tuple[list[SigmaRuleReference], list[frozenset[str]]]] = []
        for i, c in enumerate(correlations):
            if c.sigma.type in _UNSUPPORTED:
                raise CorrelationError(c, f"type {c.sigma.type.name.lower()} "
                                          "is not supported")
            refs = _references(c.sigma)
            if not refs:
                raise CorrelationError(c, "refers to no rules")
            keys = [_keys_of(r) for r in refs]
            all_refs.append((refs, keys))
            for r, (ref, ref_keys) in enumerate(zip(refs, keys, strict=True)):
                chained = next((own[k] for k in sorted(ref_keys) if k in own), None)
                if chained is not None:
                    inner[i].append((chained, r))
                    self._referenced.add(correlations[chained].id)
                    continue
                if isinstance(getattr(ref, "rule", None), SigmaCorrelationRule):
                    raise CorrelationError(c, f"refers to correlation "
                                              f"{ref.reference!r}, which is not loaded")
                for k in ref_keys:
                    base.setdefault(k, set()).add((i, r))
                rule = getattr(ref, "rule", None)
                canonical = (str(rule.id) if rule is not None and rule.id is not None
                             else rule.name if rule is not None and rule.name else ref.reference)
                self._referenced.add(canonical)
        order = _topological(correlations, inner)
        position = {old: new for new, old in enumerate(order)}
        self._specs = [_Spec(correlations[old], all_refs[old][0], all_refs[old][1],
                             max_groups, max_events_per_group) for old in order]
        for old in order:
            for chained, r in inner[old]:
                self._specs[position[chained]].feeds.append((position[old], r))
                self._specs[position[old]].one_id = False
        self._base = {k: sorted((position[i], r) for i, r in v) for k, v in base.items()}
        self._routes: dict[LoadedRule, tuple[tuple[int, int], ...]] = {}
        spans: list[int] = []
        for new, old in enumerate(order):  # inner before outer: add the longest inner chain
            longest = max((spans[position[ch]] for ch, _ in inner[old]), default=0)
            spans.append(self._specs[new].span_ms + longest)
        # the event time a replay must cover to rebuild every window (chains add up)
        self.max_timespan_ms: int = max(spans, default=0)

    @property
    def evicted(self) -> int:
        """Groups dropped because a correlation held max_groups of them (a counter)."""
        return self._evicted_before_reset + sum(s.evicted for s in self._specs)

    def referenced_rule_ids(self) -> set[str]:
        """Ids of the rules and correlations that the correlations refer to."""
        return set(self._referenced)

    def state_size(self) -> int:
        """Entries held in all windows."""
        return sum(s.size() for s in self._specs)

    def reset(self) -> None:
        """Forget every window, as before a warm-up replay (the eviction counter keeps
        counting)."""
        self._evicted_before_reset = self.evicted
        for spec in self._specs:
            spec.groups.clear()
            spec.evicted = 0
        self._seq = 0

    def _route(self, rule: LoadedRule) -> tuple[tuple[int, int], ...]:
        route = self._routes.get(rule)
        if route is None:
            keys = {rule.id, rule.name, rule.sigma.name,
                    str(rule.sigma.id) if rule.sigma.id is not None else None}
            route = tuple(sorted({t for k in keys if k for t in self._base.get(k, ())}))
            if len(self._routes) > 100_000:
                self._routes.clear()
            self._routes[rule] = route
        return route

    def observe(self, matched: Sequence[LoadedRule], event: Mapping[str, Any], event_id: int,
                timestamp_ms: int) -> list[CorrelationHit]:
        """Feed one event and the base rules it matched; return the hits it completes."""
        if not matched:
            return []
        touched: dict[int, list[int]] = {}
        for rule in matched:
            for spec_index, ref in self._route(rule):
                touched.setdefault(spec_index, []).append(ref)
        if not touched:
            return []
        self._seq += 1
        seq, ids = self._seq, (event_id,)
        cache: dict[str, str | None] = {}
        pending: dict[int, list[_Observation]] = {
            i: [_Observation(tuple(refs) if len(refs) == 1 else tuple(sorted(set(refs))),
                             event, ids, timestamp_ms, seq, cache)]
            for i, refs in touched.items()}
        hits: list[CorrelationHit] = []
        while pending:
            index = min(pending)
            spec = self._specs[index]
            for ob in pending.pop(index):
                for hit in spec.feed(ob):
                    if spec.loaded.generate:
                        hits.append(hit)
                    for outer, ref in spec.feeds:
                        pending.setdefault(outer, []).append(_Observation(
                            (ref,), hit.group, hit.event_ids, hit.last_ms, seq, {}))
        return hits


def _topological(correlations: Sequence[LoadedCorrelation],
                 inner: list[list[tuple[int, int]]]) -> list[int]:
    """Correlation indices, inner ones before the ones that refer to them; stable."""
    order: list[int] = []
    state: dict[int, int] = {}  # 1 visiting, 2 done

    def visit(i: int) -> None:
        if state.get(i) == 2:
            return
        if state.get(i) == 1:
            raise CorrelationError(correlations[i], "refers to itself "
                                                    "through a cycle of correlations")
        state[i] = 1
        for chained, _ in inner[i]:
            visit(chained)
        state[i] = 2
        order.append(i)

    for i in range(len(correlations)):
        visit(i)
    return order
