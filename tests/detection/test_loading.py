"""Loading rules: ids, problems lint reports, correlations, and SigmaHQ's Bitbucket rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trailkeeper.detection.engine import Engine
from trailkeeper.detection.rules import load_rules

SIGMAHQ = Path(__file__).parent / "sigmahq"
HEAD = "logsource: {product: bitbucket, service: audit}\n"
DETECTION = "detection:\n  sel:\n    auditType.action: 'x'\n  condition: sel\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def messages(ruleset: Any, severity: str = "error") -> list[str]:
    return [p.message for p in ruleset.problems if p.severity == severity]


def test_rule_ids_come_from_uuid_then_name_then_file(tmp_path: Path) -> None:
    """A rule is known by its UUID, else its name, else its file name."""
    write(tmp_path, "a.yml", "title: A\nid: 44444444-4444-4444-8444-444444444444\nname: aa\n"
          "level: low\n" + HEAD + DETECTION)
    write(tmp_path, "b.yml", "title: B\nname: bee\nlevel: low\n" + HEAD + DETECTION)
    write(tmp_path, "sub/c.yaml", "title: C\nlevel: low\n" + HEAD + DETECTION + "---\n"
          "title: D\nlevel: low\n" + HEAD + DETECTION)
    ruleset = load_rules([tmp_path])
    assert [r.id for r in ruleset.rules] == ["44444444-4444-4444-8444-444444444444", "bee",
                                             "c", "c-2"]
    assert not ruleset.problems


def test_a_broken_rule_stays_out_and_the_others_load(tmp_path: Path) -> None:
    """Every kind of error is reported with its file and keeps only that rule out."""
    good = write(tmp_path, "good.yml", "title: Good\nlevel: low\n" + HEAD + DETECTION)
    bad_yaml = write(tmp_path, "bad_yaml.yml", "title: [unclosed\n")
    no_title = write(tmp_path, "no_title.yml", "level: low\n" + HEAD + DETECTION)
    no_detection = write(tmp_path, "no_detection.yml", "title: X\nlevel: low\n" + HEAD)
    no_condition = write(tmp_path, "no_condition.yml", "title: X\nlevel: low\n" + HEAD +
                         "detection:\n  sel:\n    a: b\n")
    unknown = write(tmp_path, "unknown_mod.yml", "title: X\nlevel: low\n" + HEAD +
                    "detection:\n  sel:\n    a|frobnicate: b\n  condition: sel\n")
    expand = write(tmp_path, "expand.yml", "title: X\nlevel: low\n" + HEAD +
                   "detection:\n  sel:\n    a|expand: '%admins%'\n  condition: sel\n")
    pipe = write(tmp_path, "pipe.yml", "title: X\nlevel: low\n" + HEAD +
                 "detection:\n  sel:\n    a: b\n  condition: sel | count() > 5\n")
    empty_selector = write(tmp_path, "selector.yml", "title: X\nlevel: low\n" + HEAD +
                           "detection:\n  sel:\n    a: b\n  condition: 1 of nothing*\n")
    bad_re = write(tmp_path, "bad_re.yml", "title: X\nlevel: low\n" + HEAD +
                   "detection:\n  sel:\n    a|re: '(unclosed'\n  condition: sel\n")
    ruleset = load_rules([tmp_path])
    assert [r.path for r in ruleset.rules] == [good]
    paths = {p.path for p in ruleset.errors}
    assert paths == {bad_yaml, no_title, no_detection, no_condition, unknown, expand, pipe,
                     empty_selector, bad_re}
    text = "\n".join(messages(ruleset))
    assert "invalid YAML" in text
    assert "frobnicate" in text
    assert "placeholder %admins%" in text
    assert "pipe syntax" in text


def test_duplicate_ids_are_errors(tmp_path: Path) -> None:
    """The second rule with an id already loaded is rejected, naming the first file."""
    rule = "title: X\nid: 55555555-5555-4555-8555-555555555555\nlevel: low\n" + HEAD + DETECTION
    first = write(tmp_path, "1.yml", rule)
    second = write(tmp_path, "2.yml", rule)
    ruleset = load_rules([tmp_path])
    assert [r.path for r in ruleset.rules] == [first]
    assert [(p.path, p.rule) for p in ruleset.errors] == [
        (second, "55555555-5555-4555-8555-555555555555")]
    assert str(first) in ruleset.errors[0].message


def test_warnings_do_not_keep_rules_out(tmp_path: Path) -> None:
    """Missing level, deprecated status and a foreign product are warnings only."""
    write(tmp_path, "nolevel.yml", "title: X\n" + HEAD + DETECTION)
    write(tmp_path, "deprecated.yml", "title: Y\nstatus: deprecated\nlevel: low\n" + HEAD +
          DETECTION)
    write(tmp_path, "windows.yml", "title: Z\nlevel: low\nlogsource: {product: windows}\n" +
          DETECTION)
    ruleset = load_rules([tmp_path])
    assert len(ruleset.rules) == 3
    assert not ruleset.errors
    warnings = "\n".join(messages(ruleset, "warning"))
    assert "no level" in warnings and "deprecated" in warnings and "'windows'" in warnings
    # the log source does not route: the Windows rule still matches an audit event
    assert Engine(ruleset.rules).match({"auditType": {"action": "X"}})


def test_disabled_rules_are_left_out(tmp_path: Path) -> None:
    """Rules listed in `disabled` (by id or name) are not loaded."""
    write(tmp_path, "a.yml", "title: A\nname: alpha\nid: 66666666-6666-4666-8666-666666666666\n"
          "level: low\n" + HEAD + DETECTION)
    write(tmp_path, "b.yml", "title: B\nname: beta\nlevel: low\n" + HEAD + DETECTION)
    assert [r.title for r in load_rules([tmp_path], disabled=["alpha"]).rules] == ["B"]
    assert [r.title for r in load_rules([tmp_path], disabled=["beta"]).rules] == ["A"]


def test_builtin_rules_are_marked(tmp_path: Path) -> None:
    """Rules from builtin_dir carry builtin=True; a missing source is an error."""
    builtin = tmp_path / "builtin"
    write(builtin, "b.yml", "title: B\nlevel: low\n" + HEAD + DETECTION)
    mine = tmp_path / "mine"
    write(mine, "m.yml", "title: M\nlevel: low\n" + HEAD + DETECTION)
    ruleset = load_rules([mine, tmp_path / "nowhere"], builtin_dir=builtin)
    assert [(r.title, r.builtin) for r in ruleset.rules] == [("B", True), ("M", False)]
    assert [p.message for p in ruleset.errors] == ["rule source does not exist"]


CORRELATED = """title: Failed login
name: failed_login
level: low
logsource: {product: bitbucket, service: audit}
detection:
  sel:
    auditType.action: 'User login failed'
  condition: sel
---
title: Many failed logins
id: 77777777-7777-4777-8777-777777777777
level: high
correlation:
  type: event_count
  rules:
    - failed_login
  group-by:
    - author.name
  timespan: 10m
  condition:
    gte: 5
"""


@pytest.mark.parametrize(("generate", "expected"), [("", False), ("  generate: true\n", True)])
def test_correlations_resolve_and_honour_generate(tmp_path: Path, generate: str,
                                                  expected: bool) -> None:
    """A correlation's rule reference is resolved; the rule alerts only with generate."""
    write(tmp_path, "c.yml", CORRELATED.replace("  timespan: 10m\n",
                                                "  timespan: 10m\n" + generate))
    ruleset = load_rules([tmp_path])
    assert not ruleset.errors
    (rule,) = ruleset.rules
    (corr,) = ruleset.correlations
    assert corr.id == "77777777-7777-4777-8777-777777777777"
    assert corr.sigma.rules is not None and corr.sigma.rules[0].rule is rule.sigma
    assert rule.generate is expected


def test_correlation_problems(tmp_path: Path) -> None:
    """Unsupported types and references to rules that did not load are errors."""
    write(tmp_path, "sum.yml", CORRELATED.replace("event_count", "value_sum").replace(
        "    gte: 5\n", "    gte: 5\n    field: size\n"))
    write(tmp_path, "dangling.yml", CORRELATED.split("---\n")[1].replace(
        "77777777-7777-4777-8777-777777777777", "88888888-8888-4888-8888-888888888888")
        .replace("failed_login", "no_such_rule"))
    ruleset = load_rules([tmp_path])
    assert ruleset.correlations == []
    text = "\n".join(messages(ruleset))
    assert "value_sum is not supported" in text
    assert "no_such_rule" in text


def test_regex_uses_python_re(tmp_path: Path) -> None:
    """Look-behinds load (pySigma TrustedPolicy), which RE2 would reject."""
    write(tmp_path, "r.yml", "title: R\nlevel: low\n" + HEAD +
          "detection:\n  sel:\n    author.name|re: '(?<!svc_)bot$'\n  condition: sel\n")
    ruleset = load_rules([tmp_path])
    assert not ruleset.errors
    engine = Engine(ruleset.rules)
    assert engine.match({"author": {"name": "buildbot"}})
    assert not engine.match({"author": {"name": "svc_bot"}})


# -- SigmaHQ's Bitbucket audit rules, vendored unchanged ------------------------------------

SIGMAHQ_EVENTS = [  # (category, action, expected rule title)
    ("Permissions", "Global permission granted", "Bitbucket Global Permission Changed"),
    ("Permissions", "Global permission remove request", "Bitbucket Global Permission Changed"),
    ("Global administration", "Global secret scanning rule deleted",
     "Bitbucket Global Secret Scanning Rule Deleted"),
    ("Global administration", "SSH settings changed", "Bitbucket Global SSH Settings Changed"),
    ("Auditing", "Audit log configuration updated", "Bitbucket Audit Log Configuration Updated"),
    ("Projects", "Project secret scanning allowlist rule added",
     "Bitbucket Project Secret Scanning Allowlist Added"),
    ("Repositories", "Secret scanning exempt repository added",
     "Bitbucket Secret Scanning Exempt Repository Added"),
    ("Repositories", "Repository secret scanning rule deleted",
     "Bitbucket Secret Scanning Rule Deleted"),
    ("Projects", "Project secret scanning rule deleted", "Bitbucket Secret Scanning Rule Deleted"),
    ("Data pipeline", "Unauthorized full data export triggered",
     "Bitbucket Unauthorized Full Data Export Triggered"),
    ("Authentication", "User login failed", "Bitbucket User Login Failure"),
    ("Authentication", "User login failed(SSH)", "Bitbucket User Login Failure Via SSH"),
    ("Users and groups", "User details exported", "Bitbucket User Permissions Export Attempt"),
    ("authentication", "USER LOGIN FAILED", "Bitbucket User Login Failure"),  # any case
]

NEAR_MISSES = [
    ("Authentication", "User login failed (SSH)"),  # the real action has no space
    ("Authentication", "User login failed "),        # whitespace is not normalised
    ("Authentication", "User logged in"),
    ("Repositories", "Global permission granted"),   # right action, wrong category
    ("Users and groups", "User details export"),
    ("Data pipeline", "Full data export triggered"),
]


def bitbucket_event(category: str, action: str) -> dict[str, Any]:
    return {"auditType": {"category": category, "action": action, "area": "SECURITY",
                          "level": "ADVANCED"},
            "author": {"name": "mallory", "id": "42", "type": "NORMAL"},
            "affectedObjects": [], "changedValues": [], "extraAttributes": [],
            "source": "192.0.2.10", "method": "Browser",
            "timestamp": {"epochSecond": 1_763_800_000, "nano": 0}}


@pytest.fixture(scope="module")
def sigmahq_engine() -> Engine:
    ruleset = load_rules([SIGMAHQ])
    assert not ruleset.problems, ruleset.problems
    return Engine(ruleset.rules)


def test_sigmahq_rules_load_unchanged(sigmahq_engine: Engine) -> None:
    """Every vendored SigmaHQ Bitbucket rule loads, without a problem, and is indexed."""
    assert len(sigmahq_engine.rules) == len(list(SIGMAHQ.glob("*.yml"))) == 11
    assert sigmahq_engine.always == ()
    assert all(r.level and r.status == "test" for r in sigmahq_engine.rules)


@pytest.mark.parametrize(("category", "action", "title"), SIGMAHQ_EVENTS)
def test_sigmahq_rules_match_bitbucket_events(sigmahq_engine: Engine, category: str,
                                              action: str, title: str) -> None:
    """Each rule matches its Bitbucket action, and nothing else matches it."""
    matched = sigmahq_engine.match(bitbucket_event(category, action))
    assert [r.title for r in matched] == [title]


@pytest.mark.parametrize(("category", "action"), NEAR_MISSES)
def test_sigmahq_rules_ignore_near_misses(sigmahq_engine: Engine, category: str,
                                          action: str) -> None:
    """Events that only look like a rule's action match no rule."""
    assert sigmahq_engine.match(bitbucket_event(category, action)) == []
