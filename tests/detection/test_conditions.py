"""Conditions: and/or/not, brackets, `1 of`/`all of`/`them`, lists, keywords, filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trailkeeper.detection.engine import Engine
from trailkeeper.detection.rules import load_rules


def matches(tmp_path: Path, detection: str, event: dict[str, Any]) -> bool:
    text = ("title: t\nid: 22222222-2222-4222-8222-222222222222\nlevel: low\n"
            "logsource: {product: bitbucket, service: audit}\ndetection:\n")
    text += "".join(f"    {line}\n" for line in detection.strip("\n").splitlines())
    path = tmp_path / "rule.yml"
    path.write_text(text)
    ruleset = load_rules([path])
    assert not ruleset.errors, ruleset.errors
    return bool(Engine(ruleset.rules).match(event))


LOGIN = {"auditType": {"action": "User login failed", "category": "Authentication"},
         "author": {"name": "alice"}, "source": "10.0.0.1",
         "extraAttributes": [{"name": "Reason", "value": "Bad password for evil-bot"}]}
SVC = {**LOGIN, "author": {"name": "svc_build"}}

SELS = """
sel_action:
  auditType.action: 'User login failed'
sel_cat:
  auditType.category: 'Authentication'
sel_other:
  auditType.action: 'Repository created'
filter_svc:
  author.name|startswith: 'svc_'
_private:
  author.name: nobody
"""

CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    ("and", "condition: sel_action and sel_cat", LOGIN, True),
    ("and-no", "condition: sel_action and sel_other", LOGIN, False),
    ("or", "condition: sel_other or sel_action", LOGIN, True),
    ("not", "condition: sel_action and not filter_svc", LOGIN, True),
    ("not-no", "condition: sel_action and not filter_svc", SVC, False),
    ("brackets", "condition: sel_cat and (sel_other or not filter_svc)", LOGIN, True),
    ("brackets-no", "condition: sel_cat and (sel_other or not filter_svc)", SVC, False),
    ("precedence", "condition: sel_other and sel_cat or sel_action", LOGIN, True),
    ("not-binds-tight", "condition: not sel_other and sel_action", LOGIN, True),
    ("1-of", "condition: 1 of sel_*", LOGIN, True),
    ("any-of", "condition: any of sel_*", LOGIN, True),
    ("all-of", "condition: all of sel_*", LOGIN, False),
    ("all-of-two", "condition: all of sel_a* and sel_cat", LOGIN, True),
    ("1-of-them", "condition: 1 of them", LOGIN, True),
    # `them` leaves out identifiers starting with _ (here the only one that fails is sel_other,
    # so all of them is false either way; _private alone must not count)
    ("all-of-them", "condition: all of them", LOGIN, False),
    ("not-1-of-filter", "condition: sel_action and not 1 of filter*", SVC, False),
    ("list-of-conditions", "condition:\n  - sel_other\n  - sel_action", LOGIN, True),
    ("list-of-conditions-no", "condition:\n  - sel_other\n  - filter_svc", LOGIN, False),
    ("missing-under-not", "condition: sel_action and not missing_field_sel",
     LOGIN, True),
]


@pytest.mark.parametrize(("condition", "event", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_condition_semantics(tmp_path: Path, condition: str, event: dict[str, Any],
                             expected: bool) -> None:
    """The condition algebra is applied faithfully (two-valued: missing is false)."""
    extra = "missing_field_sel:\n  node: 'x'\n" if "missing_field_sel" in condition else ""
    assert matches(tmp_path, SELS + extra + condition, event) is expected


def test_list_of_maps_is_ored(tmp_path: Path) -> None:
    """A selection that is a list of maps matches when any map matches."""
    detection = ("sel:\n  - auditType.action: 'nope'\n    author.name: alice\n"
                 "  - auditType.category: 'Authentication'\n    author.name: alice\n"
                 "condition: sel")
    assert matches(tmp_path, detection, LOGIN)
    assert not matches(tmp_path, detection, SVC)


def test_map_items_are_anded(tmp_path: Path) -> None:
    """All keys of one map must hold."""
    detection = "sel:\n  auditType.action: 'User login failed'\n  author.name: bob\ncondition: sel"
    assert not matches(tmp_path, detection, LOGIN)


@pytest.mark.parametrize(("keywords", "expected"), [
    ("- 'EVIL-BOT'", True),                # case-insensitive substring of some string value
    ("- 'bad pass*evil'", True),           # wildcard inside one value
    ("- 'alice*evil'", False),             # ... never across two values
    ("- 'auditType'", False),              # keys are not searched
    ("- 'nothing'\n- 'password'", True),   # a list of keywords is OR-ed
    ("'|all':\n  - 'password'\n  - 'alice'", True),
    ("'|all':\n  - 'password'\n  - 'bob'", False),
])
def test_keywords(tmp_path: Path, keywords: str, expected: bool) -> None:
    """Keywords search every string value of the event, case-insensitively."""
    detection = "kw:\n" + "".join(f"  {line}\n" for line in keywords.splitlines())
    assert matches(tmp_path, detection + "condition: kw", LOGIN) is expected


def test_filter_document_is_applied_as_pysigma_does(tmp_path: Path) -> None:
    """A meta filter ANDs its condition into the rules it names (write `not selection`)."""
    (tmp_path / "rule.yml").write_text(
        "title: Failed login\nid: 33333333-3333-4333-8333-333333333333\nlevel: low\n"
        "logsource: {product: bitbucket, service: audit}\n"
        "detection:\n  sel:\n    auditType.action: 'User login failed'\n  condition: sel\n")
    (tmp_path / "filter.yml").write_text(
        "title: Not service accounts\nlogsource: {product: bitbucket, service: audit}\n"
        "filter:\n  rules:\n    - 33333333-3333-4333-8333-333333333333\n"
        "  selection:\n    author.name|startswith: 'svc_'\n  condition: not selection\n")
    ruleset = load_rules([tmp_path])
    assert not ruleset.errors
    engine = Engine(ruleset.rules)
    assert engine.match(LOGIN)
    assert not engine.match(SVC)
