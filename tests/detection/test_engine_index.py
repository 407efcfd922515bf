"""The engine: witness index (which rules are evaluated), load order, explanations."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from trailkeeper.detection.compile import compiled
from trailkeeper.detection.engine import Engine
from trailkeeper.detection.index import witnesses
from trailkeeper.detection.rules import load_rules

HEAD = "level: low\nlogsource: {product: bitbucket, service: audit}\n"


def load(tmp_path: Path, **details: str) -> Engine:
    """One rule per keyword argument (file name -> detection YAML), loaded in name order."""
    for name, detection in details.items():
        body = "".join(f"  {line}\n" for line in detection.strip("\n").splitlines())
        (tmp_path / f"{name}.yml").write_text(f"title: {name}\nname: {name}\n{HEAD}"
                                               f"detection:\n{body}")
    ruleset = load_rules([tmp_path])
    assert not ruleset.errors, ruleset.errors
    return Engine(ruleset.rules)


def event(action: str, category: str = "Authentication", **extra: Any) -> dict[str, Any]:
    return {"auditType": {"action": action, "category": category},
            "author": {"name": "alice"}, "source": "10.0.0.1",
            "affectedObjects": [{"name": "SEC"}, {"name": "sec-api"}], **extra}


def test_witnesses_follow_the_required_exact_values(tmp_path: Path) -> None:
    """Exact equalities give witnesses; OR unites them; AND picks one; NOT gives none."""
    engine = load(
        tmp_path,
        a_pinned="sel:\n  auditType.action: ['A', 'b']\n  author.name|contains: x\n"
                 "condition: sel",
        b_category="sel:\n  auditType.category: 'Cat'\ncondition: sel",
        c_either="one:\n  auditType.action: 'A'\ntwo:\n  author.name: bob\n"
                 "condition: one or two",
        d_negated="sel:\n  auditType.action: 'A'\ncondition: not sel",
        e_keyword="kw:\n  - evil\ncondition: kw",
        f_regex="sel:\n  source|re: '^10'\ncondition: sel",
        g_number="sel:\n  auditType.action: '42'\ncondition: sel",
        h_or_unindexable="one:\n  auditType.action: 'A'\ntwo:\n  source|cidr: 10.0.0.0/8\n"
                         "condition: one or two",
    )
    found = {r.id: witnesses(compiled(r)) for r in engine.rules}
    assert found["a_pinned"] == frozenset({("auditType.action", "a"), ("auditType.action", "b")})
    assert found["b_category"] == frozenset({("auditType.category", "cat")})
    assert found["c_either"] == frozenset({("auditType.action", "a"), ("author.name", "bob")})
    for unindexed in ("d_negated", "e_keyword", "f_regex", "g_number", "h_or_unindexable"):
        assert found[unindexed] is None, unindexed
    assert [engine.rules[i].id for i in engine.always] == [
        "d_negated", "e_keyword", "f_regex", "g_number", "h_or_unindexable"]
    assert engine.indexed_fields == ["auditType.action", "auditType.category", "author.name"]


def test_only_candidate_rules_are_evaluated(tmp_path: Path) -> None:
    """Pinned rules are evaluated only for events carrying one of their values."""
    engine = load(tmp_path,
                  login="sel:\n  auditType.action: 'User login failed'\ncondition: sel",
                  hook="sel:\n  auditType.action: 'Security hook skipped'\ncondition: sel",
                  not_bob="sel:\n  author.name: bob\ncondition: not sel")
    positions = {r.id: i for i, r in enumerate(engine.rules)}
    assert engine.candidates(event("USER LOGIN FAILED")) == sorted(
        [positions["login"], positions["not_bob"]])
    assert engine.candidates(event("Repository created")) == [positions["not_bob"]]
    engine.evaluated = 0
    assert [r.id for r in engine.match(event("Repository created"))] == ["not_bob"]
    assert engine.evaluated == 1


def test_array_values_are_looked_up_element_by_element(tmp_path: Path) -> None:
    """An indexed field inside an array finds the rule through any element."""
    engine = load(tmp_path, repo="sel:\n  affectedObjects.name: 'sec-api'\ncondition: sel")
    assert [r.id for r in engine.match(event("x"))] == ["repo"]
    assert engine.match(event("x", affectedObjects=[{"name": "web"}])) == []


def test_matches_come_in_load_order(tmp_path: Path) -> None:
    """Several matching rules, indexed and not, are returned in the order they loaded."""
    engine = load(tmp_path,
                  a_kw="kw:\n  - alice\ncondition: kw",
                  b_action="sel:\n  auditType.action: 'x'\ncondition: sel",
                  c_not="sel:\n  author.name: bob\ncondition: not sel",
                  d_category="sel:\n  auditType.category: 'authentication'\ncondition: sel")
    assert [r.id for r in engine.match(event("X"))] == ["a_kw", "b_action", "c_not",
                                                        "d_category"]


def test_index_never_loses_a_match(tmp_path: Path) -> None:
    """On random events the indexed engine returns exactly what evaluating every rule does."""
    actions = ["User login failed", "Repository created", "42", "Security hook skipped"]
    engine = load(
        tmp_path,
        r1="sel:\n  auditType.action: ['User login failed', 'Security hook skipped']\n"
           "condition: sel",
        r2="sel:\n  auditType.category: 'Repositories'\n  author.name|startswith: a\n"
           "condition: sel",
        r3="sel:\n  auditType.action: 'Repository created'\nf:\n  author.name: bob\n"
           "condition: sel and not f",
        r4="a:\n  auditType.action: '42'\nb:\n  author.name: carol\ncondition: a or b",
        r5="sel:\n  auditType.action|contains: login\ncondition: sel",
    )
    rng = random.Random(3)
    for _ in range(500):
        doc = event(rng.choice(actions).upper() if rng.random() < 0.3 else rng.choice(actions),
                    rng.choice(["Authentication", "Repositories"]),
                    author={"name": rng.choice(["alice", "bob", "carol", "dave"])})
        if rng.random() < 0.2:
            doc["auditType"]["action"] = 42
        everything = [r for r in engine.rules if compiled(r).test(_ctx(doc))]
        assert engine.match(doc) == everything


def _ctx(doc: dict[str, Any]) -> Any:
    from trailkeeper.detection.compile import Ctx

    return Ctx(doc)


def test_explain_names_the_leaves_that_held(tmp_path: Path) -> None:
    """`explain` gives readable reasons, with the values as the rule wrote them."""
    engine = load(
        tmp_path,
        hook="sel:\n  auditType.action:\n    - 'Security hook skipped'\n    - 'Other'\n"
             "  affectedObjects.name|startswith: 'SEC'\nfilter:\n  author.name: bob\n"
             "condition: sel and not filter")
    (rule,) = engine.rules
    doc = event("security hook skipped")
    assert engine.explain(doc, rule) == [
        "auditType.action equals 'Security hook skipped'",
        "affectedObjects.name starts with 'SEC'",
        "not author.name equals 'bob'",
    ]
    assert engine.explain(event("Other", author={"name": "bob"}), rule) == []


def test_rules_without_a_witness_are_gated_by_prefix_or_keyword(tmp_path: Path) -> None:
    """Anchored regexes, cidr networks and plain keywords are evaluated only for events
    that can match them; negations still run for every event."""
    engine = load(
        tmp_path,
        a_regex="sel:\n  source|re: '^10\\.0\\.'\ncondition: sel",
        b_cidr="sel:\n  source|cidr: 192.168.0.0/16\ncondition: sel",
        c_keyword="kw:\n  - 'Evil-39'\ncondition: kw",
        d_negated="sel:\n  author.name: bob\ncondition: not sel",
    )
    positions = {r.id: i for i, r in enumerate(engine.rules)}
    assert engine.prefix_fields == ["source"]
    assert [engine.rules[i].id for i in engine.unconditional] == ["d_negated"]
    assert engine.candidates(event("x", source="172.16.0.1")) == [positions["d_negated"]]
    assert engine.candidates(event("x")) == sorted([positions["a_regex"], positions["d_negated"]])
    assert [r.id for r in engine.match(event("x", source="192.168.4.5"))] == ["b_cidr",
                                                                               "d_negated"]
    # a source that is not a string is not ruled out by its start
    assert positions["a_regex"] in engine.candidates(event("x", source=["x", 10]))
    # keywords: any case, in any string value, never in a key
    assert [r.id for r in engine.match(event("x", source="::1", author={"name": "EVIL-39"}))
            ] == ["c_keyword", "d_negated"]
    assert engine.match(event("x", source="::1", author={"name": "bob"}, **{"evil-39": 1})) == []


def test_no_character_casefolds_to_ascii_digits_or_punctuation() -> None:
    """What keyword anchors rely on: an ASCII character that is not a letter appears in a
    casefolded text only where the text had that very character."""
    uncased = {chr(c) for c in range(32, 127) if not chr(c).isalpha()}
    for code in range(0x110000):
        char = chr(code)
        folded = char.casefold()
        if folded != char:
            assert not uncased.intersection(folded), hex(code)
