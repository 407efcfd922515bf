"""Field values and modifiers: each one with events that must and must not match."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from trailkeeper.detection.document import matchable
from trailkeeper.detection.engine import Engine
from trailkeeper.detection.rules import load_rules


def rule_matches(tmp_path: Path, detection: str, event: dict[str, Any]) -> bool:
    """Whether a one-rule file with this ``detection`` block (YAML) matches ``event``."""
    text = ("title: t\nid: 11111111-1111-4111-8111-111111111111\nlevel: low\n"
            "logsource: {product: bitbucket, service: audit}\ndetection:\n")
    text += "".join(f"    {line}\n" for line in detection.strip("\n").splitlines())
    path = tmp_path / "rule.yml"
    path.write_text(text)
    ruleset = load_rules([path])
    assert not ruleset.errors, ruleset.errors
    return bool(Engine(ruleset.rules).match(matchable(event)))


def ev(action: str = "User login failed", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "auditType": {"action": action, "category": "Authentication", "area": "SECURITY",
                      "level": "BASE"},
        "author": {"id": "7", "name": "alice", "type": "NORMAL"},
        "affectedObjects": [{"type": "PROJECT", "name": "SEC", "id": "5"},
                            {"type": "REPOSITORY", "name": "sec-api", "id": "20"}],
        "changedValues": [], "extraAttributes": [],
        "source": "10.1.2.3", "method": "Browser",
        "timestamp": {"epochSecond": 1_763_800_000, "nano": 0},  # 2025-11-22T08:26:40Z
    }
    doc.update(extra)
    return doc


CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    # plain equality: whole value, case-insensitive, whitespace kept
    ("eq", "sel:\n  auditType.action: 'User login failed'\ncondition: sel", ev(), True),
    ("eq-case", "sel:\n  auditType.action: 'USER LOGIN FAILED'\ncondition: sel", ev(), True),
    ("eq-partial", "sel:\n  auditType.action: 'User login'\ncondition: sel", ev(), False),
    ("eq-space", "sel:\n  auditType.action: 'User login failed '\ncondition: sel", ev(),
     False),
    ("eq-ssh", "sel:\n  auditType.action: 'User login failed(SSH)'\ncondition: sel",
     ev("User login failed (SSH)"), False),
    ("casefold", "sel:\n  author.name: 'STRASSE'\ncondition: sel",
     ev(author={"name": "straße"}), True),
    # wildcards and escapes
    ("star", "sel:\n  auditType.action: 'User*failed'\ncondition: sel", ev(), True),
    ("star-no", "sel:\n  auditType.action: 'Users*failed'\ncondition: sel", ev(), False),
    ("question", "sel:\n  author.name: 'al?ce'\ncondition: sel", ev(), True),
    ("question-one", "sel:\n  author.name: 'al?e'\ncondition: sel", ev(), False),
    ("escaped-star", "sel:\n  author.name: 'a\\*'\ncondition: sel",
     ev(author={"name": "a*"}), True),
    ("escaped-star-literal", "sel:\n  author.name: 'a\\*'\ncondition: sel",
     ev(author={"name": "abc"}), False),
    ("backslash-then-wildcard", "sel:\n  author.name: 'a\\\\*'\ncondition: sel",
     ev(author={"name": "a\\bc"}), True),
    # contains / startswith / endswith
    ("contains", "sel:\n  auditType.action|contains: 'LOGIN'\ncondition: sel", ev(), True),
    ("contains-no", "sel:\n  auditType.action|contains: 'logout'\ncondition: sel", ev(),
     False),
    ("startswith", "sel:\n  auditType.action|startswith: 'user'\ncondition: sel", ev(), True),
    ("startswith-no", "sel:\n  auditType.action|startswith: 'login'\ncondition: sel", ev(),
     False),
    ("endswith", "sel:\n  auditType.action|endswith: 'FAILED'\ncondition: sel", ev(), True),
    ("endswith-no", "sel:\n  auditType.action|endswith: 'user'\ncondition: sel", ev(), False),
    # all: AND of the values
    ("all", "sel:\n  auditType.action|contains|all: [user, failed]\ncondition: sel", ev(),
     True),
    ("all-no", "sel:\n  auditType.action|contains|all: [user, logout]\ncondition: sel", ev(),
     False),
    ("or-list", "sel:\n  auditType.action: [nope, 'user login failed']\ncondition: sel", ev(),
     True),
    # arrays: any element
    ("array", "sel:\n  affectedObjects.name: 'sec-api'\ncondition: sel", ev(), True),
    ("array-no", "sel:\n  affectedObjects.name: 'web-api'\ncondition: sel", ev(), False),
    ("array-contains", "sel:\n  affectedObjects.type|contains: 'REPO'\ncondition: sel", ev(),
     True),
    # re with flags
    ("re", "sel:\n  auditType.action|re: 'login fail'\ncondition: sel", ev(), True),
    ("re-cased", "sel:\n  auditType.action|re: 'LOGIN'\ncondition: sel", ev(), False),
    ("re-i", "sel:\n  auditType.action|re|i: 'LOGIN'\ncondition: sel", ev(), True),
    ("re-lookbehind", "sel:\n  auditType.action|re: '(?<=User )login'\ncondition: sel", ev(),
     True),
    ("re-m", "sel:\n  author.name|re|m: '^bob$'\ncondition: sel",
     ev(author={"name": "alice\nbob"}), True),
    ("re-no-m", "sel:\n  author.name|re: '^bob$'\ncondition: sel",
     ev(author={"name": "alice\nbob"}), False),
    ("re-s", "sel:\n  author.name|re|s: 'alice.bob'\ncondition: sel",
     ev(author={"name": "alice\nbob"}), True),
    ("re-no-s", "sel:\n  author.name|re: 'alice.bob'\ncondition: sel",
     ev(author={"name": "alice\nbob"}), False),
    ("re-backslash", "sel:\n  source|re: '^10\\.1\\.'\ncondition: sel", ev(), True),
    ("re-backslash-no", "sel:\n  source|re: '^10\\.1\\.'\ncondition: sel",
     ev(source="10x1y2.3"), False),
    # cidr
    ("cidr4", "sel:\n  source|cidr: 10.0.0.0/8\ncondition: sel", ev(), True),
    ("cidr4-no", "sel:\n  source|cidr: 192.168.0.0/16\ncondition: sel", ev(), False),
    ("cidr6", "sel:\n  source|cidr: '2001:db8::/32'\ncondition: sel",
     ev(source="2001:db8::1"), True),
    ("cidr6-no", "sel:\n  source|cidr: '2001:db8::/32'\ncondition: sel",
     ev(source="2001:db9::1"), False),
    ("cidr-invalid", "sel:\n  source|cidr: 10.0.0.0/8\ncondition: sel",
     ev(source="10.0.0.300"), False),
    ("cidr-not-ip", "sel:\n  source|cidr: 10.0.0.0/8\ncondition: sel", ev(source="nope"),
     False),
    # base64 / base64offset
    ("base64", "sel:\n  author.name|base64: alice\ncondition: sel",
     ev(author={"name": base64.b64encode(b"alice").decode()}), True),
    ("base64-no", "sel:\n  author.name|base64: alice\ncondition: sel", ev(), False),
    ("base64offset", "sel:\n  source|base64offset|contains: 'secret'\ncondition: sel",
     ev(source=base64.b64encode(b"xx secret yy").decode()), True),
    ("base64offset-no", "sel:\n  source|base64offset|contains: 'secret'\ncondition: sel",
     ev(source=base64.b64encode(b"xx public yy").decode()), False),
    # windash
    ("windash", "sel:\n  method|windash|contains: ' -exec'\ncondition: sel",
     ev(method="run /exec now"), True),
    ("windash-no", "sel:\n  method|windash|contains: ' -exec'\ncondition: sel",
     ev(method="run +exec now"), False),
    # wide / utf16le alias / utf16be
    ("wide", "sel:\n  method|wide: ab\ncondition: sel", ev(method="a\x00b\x00"), True),
    ("utf16le", "sel:\n  method|utf16le: ab\ncondition: sel", ev(method="a\x00b\x00"), True),
    ("utf16be", "sel:\n  method|utf16be: ab\ncondition: sel", ev(method="\x00a\x00b"), True),
    ("wide-no", "sel:\n  method|wide: ab\ncondition: sel", ev(method="ab"), False),
    # exists: key present, even when null
    ("exists", "sel:\n  source|exists: true\ncondition: sel", ev(), True),
    ("exists-null", "sel:\n  source|exists: true\ncondition: sel", ev(source=None), True),
    ("exists-false", "sel:\n  node|exists: false\ncondition: sel", ev(), True),
    ("exists-false-no", "sel:\n  source|exists: false\ncondition: sel", ev(), False),
    ("exists-nested", "sel:\n  author.id|exists: true\ncondition: sel",
     ev(author={"name": "x"}), False),
    # cased
    ("cased", "sel:\n  author.name|cased: alice\ncondition: sel", ev(), True),
    ("cased-no", "sel:\n  author.name|cased: Alice\ncondition: sel", ev(), False),
    # neq: NOT over the OR of the values; a missing field matches
    ("neq", "sel:\n  author.name|neq: bob\ncondition: sel", ev(), True),
    ("neq-no", "sel:\n  author.name|neq: [bob, ALICE]\ncondition: sel", ev(), False),
    ("neq-missing", "sel:\n  node|neq: x\ncondition: sel", ev(), True),
    # lt/lte/gt/gte, with numeric coercion of strings
    ("gt", "sel:\n  author.id|gt: 5\ncondition: sel", ev(), True),
    ("gt-no", "sel:\n  author.id|gt: 7\ncondition: sel", ev(), False),
    ("gte", "sel:\n  author.id|gte: 7\ncondition: sel", ev(), True),
    ("lt", "sel:\n  count|lt: 3\ncondition: sel", ev(count=2.5), True),
    ("lte-no", "sel:\n  count|lte: 3\ncondition: sel", ev(count=4), False),
    ("gt-non-numeric", "sel:\n  author.name|gt: 1\ncondition: sel", ev(), False),
    # fieldref
    ("fieldref", "sel:\n  author.name|fieldref: affectedObjects.name\ncondition: sel",
     ev(affectedObjects=[{"name": "ALICE"}]), True),
    ("fieldref-no", "sel:\n  author.name|fieldref: affectedObjects.name\ncondition: sel",
     ev(), False),
    ("fieldref-contains", "sel:\n  author.name|fieldref|contains: other\ncondition: sel",
     ev(other="lic"), True),
    ("fieldref-startswith", "sel:\n  author.name|fieldref|startswith: other\ncondition: sel",
     ev(other="al"), True),
    ("fieldref-startswith-no",
     "sel:\n  author.name|fieldref|startswith: other\ncondition: sel", ev(other="ce"), False),
    ("fieldref-endswith", "sel:\n  author.name|fieldref|endswith: other\ncondition: sel",
     ev(other="ce"), True),
    # timestamp parts (UTC), file shape and ISO
    ("hour", "sel:\n  timestamp|hour: 8\ncondition: sel", ev(), True),
    ("hour-no", "sel:\n  timestamp|hour: 9\ncondition: sel", ev(), False),
    ("minute", "sel:\n  timestamp|minute: 26\ncondition: sel", ev(), True),
    ("day", "sel:\n  timestamp|day: 22\ncondition: sel", ev(), True),
    ("week", "sel:\n  timestamp|week: 47\ncondition: sel", ev(), True),
    ("month", "sel:\n  timestamp|month: 11\ncondition: sel", ev(), True),
    ("year", "sel:\n  timestamp|year: 2025\ncondition: sel", ev(), True),
    ("year-no", "sel:\n  timestamp|year: 2024\ncondition: sel", ev(), False),
    ("hour-iso-in-utc", "sel:\n  when|hour: 23\ncondition: sel",
     ev(when="2025-11-22T01:00:00+02:00"), True),
    ("hour-iso-not-local", "sel:\n  when|hour: 1\ncondition: sel",
     ev(when="2025-11-22T01:00:00+02:00"), False),
    ("hour-epoch-ms", "sel:\n  when|hour: 8\ncondition: sel", ev(when=1_763_800_000_000),
     True),
    # null and empty
    ("null-missing", "sel:\n  node: null\ncondition: sel", ev(), True),
    ("null-json", "sel:\n  source: null\ncondition: sel", ev(source=None), True),
    ("null-no", "sel:\n  source: null\ncondition: sel", ev(), False),
    ("null-empty-string", "sel:\n  source: null\ncondition: sel", ev(source=""), False),
    ("empty", "sel:\n  source: ''\ncondition: sel", ev(source=""), True),
    ("empty-missing", "sel:\n  node: ''\ncondition: sel", ev(), False),
    ("empty-null", "sel:\n  source: ''\ncondition: sel", ev(source=None), False),
    # numbers and strings, booleans
    ("number-vs-string", "sel:\n  author.id: 7\ncondition: sel", ev(), True),
    ("number-vs-number", "sel:\n  count: 7\ncondition: sel", ev(count=7.0), True),
    ("string-vs-number", "sel:\n  count: '7'\ncondition: sel", ev(count=7), True),
    ("string-vs-float", "sel:\n  count: '7'\ncondition: sel", ev(count=7.0), True),
    ("number-no", "sel:\n  author.id: 8\ncondition: sel", ev(), False),
    ("number-non-numeric", "sel:\n  author.name: 8\ncondition: sel", ev(), False),
    ("bool", "sel:\n  flag: true\ncondition: sel", ev(flag=True), True),
    ("bool-string", "sel:\n  flag: true\ncondition: sel", ev(flag="TRUE"), True),
    ("bool-no", "sel:\n  flag: false\ncondition: sel", ev(flag=True), False),
    # flat key wins over the dotted path
    ("flat-key", "sel:\n  author.name: bob\ncondition: sel", ev(**{"author.name": "bob"}),
     True),
    # REST-shape field names in rules are aliases
    ("rest-alias", "sel:\n  type.action: 'user login failed'\ncondition: sel", ev(), True),
    ("rest-alias-category", "sel:\n  type.category: 'authentication'\ncondition: sel", ev(),
     True),
    ("rest-alias-no", "sel:\n  type.area: 'PERMISSIONS'\ncondition: sel", ev(), False),
    # field names are case-sensitive
    ("field-case", "sel:\n  audittype.action: 'User login failed'\ncondition: sel", ev(),
     False),
]


@pytest.mark.parametrize(("detection", "event", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_value_semantics(tmp_path: Path, detection: str, event: dict[str, Any],
                         expected: bool) -> None:
    """Each modifier and value type matches exactly the events the semantics say."""
    assert rule_matches(tmp_path, detection, event) is expected


def test_rest_shape_event_is_matched_like_the_file_shape(tmp_path: Path) -> None:
    """A REST-shape event (``type``, ISO timestamp) becomes the file shape rules expect."""
    rest = {"type": {"action": "User login failed", "category": "Authentication"},
            "timestamp": "2025-11-22T08:26:40Z", "author": {"name": "alice"}}
    assert rule_matches(tmp_path, "sel:\n  auditType.action: 'user login failed'\n"
                        "  timestamp|hour: 8\ncondition: sel", dict(rest))
    assert not rule_matches(tmp_path, "sel:\n  auditType.action: 'user login failed'\n"
                            "  timestamp|hour: 9\ncondition: sel", dict(rest))


def test_matchable_leaves_file_shape_alone(tmp_path: Path) -> None:
    """A file-shape dict passes through unchanged; a REST one is renamed in place, and rules
    see its ISO timestamp as ``{"epochSecond", "nano"}`` (converted when read)."""
    file_doc = ev()
    before = repr(file_doc)
    assert matchable(file_doc) is file_doc and repr(file_doc) == before
    rest: dict[str, Any] = {"type": {"action": "x"}, "timestamp": "1970-01-01T00:00:01.5Z"}
    assert matchable(rest) is rest
    assert rest == {"auditType": {"action": "x"}, "timestamp": "1970-01-01T00:00:01.5Z"}
    assert rule_matches(tmp_path, "sel:\n  timestamp.epochSecond: 1\n"
                        "  timestamp.nano: 500000000\ncondition: sel", dict(rest))
    for detection in ("sel:\n  timestamp.epochSecond: 2\ncondition: sel",
                      "sel:\n  timestamp|contains: '1970'\ncondition: sel",
                      "sel:\n  timestamp|re: '1970'\ncondition: sel",
                      "kw:\n  - '1970'\ncondition: kw"):
        assert not rule_matches(tmp_path, detection, dict(rest)), detection
