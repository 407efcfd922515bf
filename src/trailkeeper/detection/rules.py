"""Loading SigmaHQ-format rules from files, with the problems `rules lint` reports.

`load_rules` reads every ``*.yml``/``*.yaml`` file under the sources (files or directories,
recursively), parses each with pySigma (multi-document files, ``action: global`` collections,
meta filters, correlations), compiles every detection rule with the engine, and returns a
`RuleSet`. A broken rule becomes an error `RuleProblem` and stays out; the others load.

Decisions:

- Regular expressions use Python `re` (pySigma ``TrustedPolicy``), so look-arounds load.
- ``utf16le`` is registered as an alias of pySigma's ``wide`` (pySigma 2.0.1 lacks it).
- Meta filters are applied the way pySigma applies them: the rule's condition becomes
  ``(condition) and (filter condition)``, for rules whose log source is within the filter's
  and that the filter names (or ``rules: any``). Write filter conditions as ``not selection``.
- The log source is not used to route events (every event is an audit event); a product other
  than the Atlassian ones or ``trailkeeper`` is only a warning.
- A rule's id is its UUID, else its ``name``, else its file name (with ``-2``, ``-3`` ... for
  further nameless documents of the same file). A second rule with an id already loaded is an
  error and stays out; so does a rule in ``disabled`` (by id or name), and a correlation that
  refers to a rule that is not loaded.
- A rule referred to by correlations raises alerts of its own only if one of them says
  ``generate: true`` (`LoadedRule.generate`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule, SigmaCorrelationType
from sigma.exceptions import SigmaError
from sigma.filters import SigmaFilter
from sigma.modifiers import SigmaWideModifier, modifier_mapping
from sigma.policy.profiles import TrustedPolicy
from sigma.rule import SigmaRule, SigmaRuleBase

from trailkeeper.detection.compile import compile_rule
from trailkeeper.detection.correlation import usable
from trailkeeper.detection.model import LoadedCorrelation, LoadedRule, RuleProblem, RuleSet
from trailkeeper.detection.values import CompileError

__all__ = ["BUILTIN_DIR", "KNOWN_PRODUCTS", "SUPPORTED_CORRELATIONS", "load_rules", "rule_files"]

modifier_mapping.setdefault("utf16le", SigmaWideModifier)

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"  # the rules shipped with Trailkeeper

KNOWN_PRODUCTS = frozenset({"bitbucket", "jira", "confluence", "atlassian", "trailkeeper",
                            "crowd", "bamboo", "jsm"})
SUPPORTED_CORRELATIONS = frozenset({
    SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT,
    SigmaCorrelationType.TEMPORAL, SigmaCorrelationType.TEMPORAL_ORDERED,
})


def rule_files(source: Path) -> list[Path]:
    """The rule files of a source: itself if a file, else its ``*.yml``/``*.yaml``, sorted."""
    if source.is_file():
        return [source]
    return sorted(p for p in source.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def _message(exc: BaseException) -> str:
    if isinstance(exc, SigmaError) and exc.args:
        return str(exc.args[0])
    return str(exc)


@dataclass
class _Parsed:
    rule: SigmaRule | SigmaCorrelationRule
    path: Path
    builtin: bool
    fallback_id: str


@dataclass
class _Loader:
    problems: list[RuleProblem] = field(default_factory=list)
    parsed: list[_Parsed] = field(default_factory=list)
    filters: list[tuple[SigmaFilter, Path]] = field(default_factory=list)

    def error(self, message: str, path: Path | None, rule: str | None = None) -> None:
        self.problems.append(RuleProblem("error", message, path, rule))

    def warning(self, message: str, path: Path | None, rule: str | None = None) -> None:
        self.problems.append(RuleProblem("warning", message, path, rule))

    def read(self, path: Path, builtin: bool) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.error(f"cannot read the file: {exc}", path)
            return
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            self.error(f"invalid YAML: {exc}", path)
            return
        good: list[dict[str, Any]] = []
        for number, document in enumerate(documents, start=1):
            if document is None:
                continue
            if not isinstance(document, dict):
                self.error(f"YAML document {number} is not a map", path)
                continue
            good.append(document)
        for batch in self._batches(good, path):
            self._collect(batch, path, builtin)

    def _batches(self, documents: list[dict[str, Any]],
                 path: Path) -> Iterator[SigmaCollection]:
        try:
            yield SigmaCollection.from_dicts(documents, collect_errors=True,
                                             collect_filters=True, resolve_references=False,
                                             policy=TrustedPolicy)
            return
        except Exception:  # noqa: S110 - parse one document at a time to isolate the broken one
            pass
        for number, document in enumerate(documents, start=1):
            try:
                yield SigmaCollection.from_dicts([document], collect_errors=True,
                                                 collect_filters=True,
                                                 resolve_references=False,
                                                 policy=TrustedPolicy)
            except Exception as exc:
                title = document.get("title")
                self.error(f"document {number}: {_message(exc)}", path,
                           title if isinstance(title, str) else None)

    def _collect(self, collection: SigmaCollection, path: Path, builtin: bool) -> None:
        owned = {id(e) for r in [*collection.rules, *collection.filters] for e in r.errors}
        for exc in collection.errors:
            if id(exc) not in owned:
                self.error(_message(exc), path)
        for f in collection.filters:
            if f.errors:
                for exc in f.errors:
                    self.error(f"filter: {_message(exc)}", path, f.title or None)
            else:
                self.filters.append((f, path))
        for rule in collection.rules:
            label = _label(rule)
            if rule.errors:
                for exc in rule.errors:
                    self.error(_message(exc), path, label)
                continue
            count = sum(1 for p in self.parsed if p.path == path) + 1
            fallback = path.stem if count == 1 else f"{path.stem}-{count}"
            self.parsed.append(_Parsed(rule, path, builtin, fallback))


def _label(rule: SigmaRuleBase) -> str | None:
    if rule.id is not None:
        return str(rule.id)
    return rule.name or rule.title or None


def _rule_id(parsed: _Parsed) -> str:
    return _label_id(parsed.rule) or parsed.fallback_id


def _label_id(rule: SigmaRuleBase) -> str | None:
    if rule.id is not None:
        return str(rule.id)
    return rule.name or None


def _meta(rule: SigmaRuleBase) -> dict[str, Any]:
    return {
        "name": rule.name,
        "level": str(rule.level) if rule.level is not None else None,
        "status": str(rule.status) if rule.status is not None else None,
        "tags": tuple(str(t) for t in rule.tags),
    }


def _lint(loader: _Loader, rule: SigmaRuleBase, path: Path, rid: str, generate: bool) -> None:
    if rule.level is None and generate:
        loader.warning("no level: its alerts will have no severity", path, rid)
    if rule.status is not None and str(rule.status) in ("deprecated", "unsupported"):
        loader.warning(f"status is {rule.status}", path, rid)
    if isinstance(rule, SigmaRule):
        product = rule.logsource.product
        if product is not None and product.lower() not in KNOWN_PRODUCTS:
            loader.warning(f"logsource product {product!r} is not an Atlassian product: the "
                           "rule is still applied to every audit event", path, rid)


def load_rules(sources: Sequence[Path], *, builtin_dir: Path | None = None,
               disabled: Collection[str] = ()) -> RuleSet:
    """Every rule under ``builtin_dir`` (marked built-in) and ``sources``, with problems."""
    loader = _Loader()
    if builtin_dir is not None and builtin_dir.exists():
        for path in rule_files(builtin_dir):
            loader.read(path, True)
    for source in sources:
        source = Path(source)
        if not source.exists():
            loader.error("rule source does not exist", source)
            continue
        for path in rule_files(source):
            loader.read(path, False)

    disabled_set = set(disabled)
    result = RuleSet(problems=loader.problems)
    seen: dict[str, Path] = {}
    kept: list[tuple[_Parsed, str]] = []
    for parsed in loader.parsed:
        rid = _rule_id(parsed)
        if rid in seen:
            loader.error(f"duplicate rule id {rid!r} (already loaded from {seen[rid]})",
                         parsed.path, rid)
            continue
        seen[rid] = parsed.path
        if rid in disabled_set or (parsed.rule.name and parsed.rule.name in disabled_set):
            continue
        kept.append((parsed, rid))

    # Meta filters, as pySigma applies them.
    usable_filters: list[SigmaFilter] = [f for f, _ in loader.filters]
    rules: list[tuple[_Parsed, str, SigmaRule]] = []
    correlations: list[tuple[_Parsed, str, SigmaCorrelationRule]] = []
    for parsed, rid in kept:
        rule = parsed.rule
        if isinstance(rule, SigmaCorrelationRule):
            correlations.append((parsed, rid, rule))
            continue
        try:
            for sigma_filter in usable_filters:
                filtered = sigma_filter.apply_on_rule(rule)
                assert isinstance(filtered, SigmaRule)
                rule = filtered
        except Exception as exc:
            loader.error(f"applying filters: {_message(exc)}", parsed.path, rid)
            continue
        try:
            compile_rule(rule)
        except CompileError as exc:
            loader.error(str(exc), parsed.path, rid)
            continue
        rules.append((parsed, rid, rule))

    # Correlations: supported types, references resolved (repeat: chains may lose a link).
    by_ref: dict[str, SigmaRule | SigmaCorrelationRule] = {}
    for _parsed, rid, rule in rules:
        by_ref[rid] = rule
        if rule.name:
            by_ref.setdefault(rule.name, rule)
    live: list[tuple[_Parsed, str, SigmaCorrelationRule]] = []
    for parsed, rid, corr in correlations:
        if corr.type not in SUPPORTED_CORRELATIONS:
            loader.error(f"correlation type {corr.type.name.lower()} is not supported "
                         "(event_count, value_count, temporal, temporal_ordered are)",
                         parsed.path, rid)
            continue
        live.append((parsed, rid, corr))
        by_ref[rid] = corr
        if corr.name:
            by_ref.setdefault(corr.name, corr)
    changed = True
    while changed:
        changed = False
        for entry in list(live):
            parsed, rid, corr = entry
            missing = [ref.reference for ref in _references(corr)
                       if _ref_key(ref.reference) not in by_ref]
            if missing:
                loader.error(f"correlation refers to rules that are not loaded: "
                             f"{', '.join(missing)}", parsed.path, rid)
                live.remove(entry)
                by_ref = {k: v for k, v in by_ref.items() if v is not corr}
                changed = True
    members: list[SigmaRule | SigmaCorrelationRule | SigmaFilter] = [r for _, _, r in rules]
    members.extend(c for _, _, c in live)
    collection = SigmaCollection(members, resolve_references=False)
    for key, target in by_ref.items():  # ids that are names or file names resolve too
        collection.names_to_rules.setdefault(key, target)
    generate: dict[int, bool] = {}
    for parsed, rid, corr in list(live):
        try:
            corr.resolve_rule_references(collection)
        except Exception as exc:
            loader.error(f"correlation: {_message(exc)}", parsed.path, rid)
            live.remove((parsed, rid, corr))
            continue
        for ref in _references(corr):
            generate[id(ref.rule)] = generate.get(id(ref.rule), False) or corr.generate

    for parsed, rid, rule in rules:
        alerts = generate.get(id(rule), True)
        _lint(loader, rule, parsed.path, rid, alerts)
        result.rules.append(LoadedRule(
            id=rid, title=rule.title, sigma=rule, path=parsed.path, builtin=parsed.builtin,
            generate=alerts, **_meta(rule)))
    for parsed, rid, corr in live:
        alerts = generate.get(id(corr), True)
        _lint(loader, corr, parsed.path, rid, alerts)
        result.correlations.append(LoadedCorrelation(
            id=rid, title=corr.title, sigma=corr, path=parsed.path, builtin=parsed.builtin,
            generate=alerts, **_meta(corr)))
    # What the streaming engine cannot run (a threshold no window can reach, a cycle) is
    # left out here, with its reason, rather than failing the whole set later.
    result.correlations, refused = usable(result.correlations)
    for error in refused:
        loader.error(error.problem, error.correlation.path, error.correlation.id)
    return result


def _ref_key(reference: str) -> str:
    try:
        return str(UUID(reference))
    except ValueError:
        return reference


def _references(corr: SigmaCorrelationRule) -> list[Any]:
    if corr.rules is not None:
        return list(corr.rules)
    from sigma.correlations import SigmaExtendedCorrelationCondition, SigmaRuleReference

    if isinstance(corr.condition, SigmaExtendedCorrelationCondition):
        return [SigmaRuleReference(n) for n in corr.condition.get_referenced_rules()]
    return []
