"""The audit policy on its own: denylist, coverage, presets and redaction (no store)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import event
from trailkeeper.governance.config import GovernanceConfig
from trailkeeper.governance.policy import COVERAGE, DENYLIST, PRESETS, Policy, Preset, preset_of
from trailkeeper.governance.redaction import Redactor, digest, key_words
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import AuditAttribute, AuditResource, ChangedValue

A, L = CoverageArea, CoverageLevel


def _config(**changes: object) -> GovernanceConfig:
    return GovernanceConfig(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(("configured", "level", "recorded"), [
    (L.OFF, L.BASE, False), (L.BASE, L.BASE, True), (L.BASE, L.ADVANCED, False),
    (L.ADVANCED, L.ADVANCED, True), (L.ADVANCED, L.FULL, False), (L.FULL, L.FULL, True),
])
def test_an_event_passes_when_its_area_level_is_at_least_its_own(
        configured: CoverageLevel, level: CoverageLevel, recorded: bool) -> None:
    coverage = {area: L.FULL for area in A} | {A.SECURITY: configured}
    policy = Policy(_config(coverage=coverage))
    screened = policy.screen(event(area=A.SECURITY, level=level))
    assert (screened != COVERAGE) is recorded
    # Other areas are untouched by the security setting.
    assert not isinstance(policy.screen(event(area=A.PERMISSIONS, level=level)), str)


def test_default_coverage_is_base_everywhere() -> None:
    policy = Policy(GovernanceConfig())
    for area in A:
        assert not isinstance(policy.screen(event(area=area, level=L.BASE)), str)
        assert policy.screen(event(area=area, level=L.ADVANCED)) == COVERAGE


def test_the_denylist_matches_exact_action_names_only() -> None:
    policy = Policy(_config(denylist=frozenset({"Repository created"})))
    assert policy.screen(event("Repository created")) == DENYLIST
    assert not isinstance(policy.screen(event("repository created")), str)
    assert not isinstance(policy.screen(event("Repository created ")), str)
    # Not the category either.
    assert not isinstance(policy.screen(event("Other", category="Repository created")), str)


def test_presets() -> None:
    for preset, (coverage, details) in PRESETS.items():
        config = _config(coverage=coverage, details=details)
        assert preset_of(config) == preset.value
    assert preset_of(GovernanceConfig()) == "CUSTOM"  # all BASE, with changed values
    none = Policy(_config(coverage=PRESETS[Preset.NONE][0]))
    assert all(none.screen(event(area=area)) == COVERAGE for area in A)
    security = Policy(_config(coverage=PRESETS[Preset.SECURITY][0], details=False))
    assert not isinstance(security.screen(event(area=A.SECURITY, level=L.FULL)), str)
    assert security.screen(event(area=A.END_USER_ACTIVITY)) == COVERAGE


def test_basic_keeps_who_what_and_which_object_but_no_changed_values() -> None:
    basic = Policy(_config(coverage=PRESETS[Preset.BASIC][0], details=False))
    original = event(changed_values=(ChangedValue("Name", "a", "b"),),
                     extra_attributes=(AuditAttribute("Reason", "why"),))
    kept = basic.screen(original)
    assert not isinstance(kept, str)
    assert kept.changed_values == ()
    assert kept.author == original.author and kept.type == original.type
    assert kept.affected_objects == original.affected_objects
    assert kept.extra_attributes == original.extra_attributes
    detailed = Policy(_config(coverage=PRESETS[Preset.DETAILED][0], details=True))
    assert detailed.screen(original) is original


def sha(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


@pytest.mark.parametrize("key", [
    "password", "Password", "newPassword", "api_token", "API-TOKEN", "secret",
    "client secret", "apiKey", "Private key", "SSH_KEY", "credentials", "Credential",
    "accessToken", "pwd", "passphrase",
])
def test_values_of_sensitive_keys_are_always_hashed(key: str) -> None:
    redactor = Redactor(1024, GovernanceConfig().sensitive_keys)
    original = event(changed_values=(ChangedValue(key, "old-s3cret", "new-s3cret"),),
                     extra_attributes=(AuditAttribute(key, "x"),))
    redacted = redactor.redact(original)
    assert redacted.changed_values[0].from_value == sha("old-s3cret")
    assert redacted.changed_values[0].to_value == sha("new-s3cret")
    assert redacted.extra_attributes[0].value == sha("x")
    assert redacted.changed_values[0].key == key  # the key itself stays readable


@pytest.mark.parametrize("key", ["Name", "Token name", "Key ID", "Description", "Monkey name",
                                 "Repository", "Token scopes", "Passed"])
def test_other_keys_and_descriptions_of_secrets_stay_readable(key: str) -> None:
    redactor = Redactor(1024, GovernanceConfig().sensitive_keys)
    original = event(changed_values=(ChangedValue(key, "a", "b"),))
    assert redactor.redact(original) is original


def test_long_values_are_hashed_in_changes_attributes_and_object_names() -> None:
    long_value = "x" * 1025
    redactor = Redactor(1024, ())
    original = event(
        objects=(AuditResource("PROJECT", "y" * 1024, "1"),),
        changed_values=(ChangedValue("Description", long_value, "short"),),
        extra_attributes=(AuditAttribute("Body", long_value), AuditAttribute("ok", "fine")))
    redacted = redactor.redact(original)
    assert redacted.changed_values[0].from_value == sha(long_value)
    assert redacted.changed_values[0].to_value == "short"
    assert redacted.extra_attributes[0].value == sha(long_value)
    assert redacted.extra_attributes[1] == AuditAttribute("ok", "fine")
    assert redacted.affected_objects[0].name == "y" * 1024  # at the limit: kept
    shorter = Redactor(100, ()).redact(original)
    assert shorter.affected_objects[0].name == sha("y" * 1024)
    assert shorter.affected_objects[0].id == "1"


def test_objects_of_a_sensitive_type_have_their_names_hashed() -> None:
    original = event(objects=(AuditResource("SECRET", "prod-db-password", "9"),
                              AuditResource("PROJECT", "PRJ", "1")))
    redacted = Redactor(1024, GovernanceConfig().sensitive_keys).redact(original)
    assert redacted.affected_objects[0].name == sha("prod-db-password")
    assert redacted.affected_objects[1].name == "PRJ"


def test_digests_are_not_hashed_again() -> None:
    value = digest("hunter2")
    original = event(changed_values=(ChangedValue("password", value, None),))
    redacted = Redactor(1024, ("password",)).redact(original)
    assert redacted.changed_values[0].from_value == value


def test_key_words() -> None:
    assert key_words("apiToken") == ["api", "token"]
    assert key_words("PRIVATE_KEY") == ["private", "key"]
    assert key_words("HTTPSProxy password2") == ["https", "proxy", "password", "2"]


@given(st.text(min_size=1, max_size=40).filter(lambda s: not s.isspace()),
       st.text(max_size=3000).filter(lambda s: "\x00" not in s))
def test_no_value_over_the_limit_or_under_a_secret_key_survives(key: str, value: str) -> None:
    redactor = Redactor(64, ("secret*",))
    try:
        original = event(changed_values=(ChangedValue(key, value, None),))
    except ValueError:
        return  # not a valid event in the first place
    kept = redactor.redact(original).changed_values[0].from_value
    assert kept is not None
    if redactor.is_sensitive(key) or len(value) > 64:
        assert kept == digest(value) or (kept == value and value.startswith("sha256:"))
    else:
        assert kept == value
