"""Live detection over a real store: alerts recorded with the position, restarts that
neither lose nor repeat an alert, and hunts that find what the live path found."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import ALICE, BOB, batch, event, ms
from trailkeeper.alerts.model import AlertQuery, AlertRecord
from trailkeeper.detection.detector import Detector
from trailkeeper.detection.hunt import hunt, select
from trailkeeper.detection.live import DetectionConsumer
from trailkeeper.detection.model import RuleSet
from trailkeeper.detection.rules import BUILTIN_DIR, load_rules
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import AuditAttribute, AuditAuthor, AuditEvent
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import Storage

HOOK = "Security hook skipped"
FAILED = "User login failed"
CAROL = AuditAuthor("13", "carol", "NORMAL")


def builtin() -> RuleSet:
    ruleset = load_rules([], builtin_dir=BUILTIN_DIR)
    assert not ruleset.errors, ruleset.errors
    return ruleset


def failed_login(author: AuditAuthor, minutes: float) -> AuditEvent:
    return event(FAILED, category="Authentication", author=author, minutes=minutes,
                 area=CoverageArea.SECURITY, level=CoverageLevel.ADVANCED)


def stream() -> list[AuditEvent]:
    """Ordinary work with suspicious episodes: a skipped hook, a user-permissions export,
    twelve failed logins for bob in six minutes (the correlation fires at the tenth) and
    nine for carol (below the threshold), interleaved with alice's work."""
    events: list[AuditEvent] = []
    for n in range(60):
        events.append(event("Repository created", minutes=n))
        if n == 5:
            events.append(event(HOOK, category="Soteri Security for Bitbucket", minutes=n))
        if n == 20:
            events.append(event("User permissions exported", category="Users and groups",
                                minutes=n))
        if 30 <= n < 42:
            events.append(failed_login(BOB, n + 0.5 - (n - 30) * 0.5))
        if 40 <= n < 49:
            events.append(failed_login(CAROL, n + 0.1))
        if n == 50:
            events.append(event("API token created", category="Security", minutes=n,
                                extra_attributes=(AuditAttribute("Token scopes", "read admin"),)))
        if n == 51:  # not an admin scope: no alert
            events.append(event("API token created", category="Security", minutes=n,
                                extra_attributes=(AuditAttribute("Token scopes", "ingest"),)))
    return events


def store(storage: Storage, events: list[AuditEvent], per_batch: int = 7) -> None:
    for start in range(0, len(events), per_batch):
        storage.append([batch(storage, *events[start:start + per_batch])])


def alerts(storage: Storage) -> list[AlertRecord]:
    return sorted(storage.list_alerts(AlertQuery(limit=1000)), key=lambda a: a.id)


def summary(records: list[AlertRecord]) -> list[tuple[str, tuple[int, ...], int, str]]:
    return sorted((a.rule_title, a.event_ids, a.count, repr(sorted(a.group.items())))
                  for a in records)


THROTTLE_MS = 600_000  # as the default "10m": repeated hits of one group make one alert


def consumer(storage: Storage, ruleset: RuleSet, batch_size: int = 1000) -> DetectionConsumer:
    return DetectionConsumer(storage, Detector(ruleset), throttle_ms=THROTTLE_MS,
                             batch_size=batch_size)


def test_the_built_in_rules_raise_the_expected_alerts(storage: Storage) -> None:
    store(storage, stream())
    consumer(storage, builtin()).drain()
    titles = sorted(a.rule_title for a in alerts(storage))
    assert titles == ["Access Token Created With Admin Scope", "Many Failed Logins For One User",
                      "Security Hook Skipped", "User Details Or Permissions Exported"]
    [many] = [a for a in alerts(storage) if a.rule_title.startswith("Many")]
    assert many.group == {"author.name": "bob"}
    # The tenth failure completed the window; the eleventh and twelfth, still ten or more
    # within ten minutes, joined the same alert.
    assert many.count == 3
    assert len(many.event_ids) == 12
    assert many.level == "high"
    assert "trailkeeper.builtin" in many.tags
    # The single failed logins feed the correlation but raise nothing of their own.
    assert not [a for a in alerts(storage) if a.rule_title == "User Login Failed"]


def test_the_position_is_saved_with_the_alerts(storage: Storage) -> None:
    store(storage, stream())
    first = consumer(storage, builtin())
    first.drain()
    assert first.last_id == storage.max_id()
    second = consumer(storage, builtin())
    assert second.drain() == 0  # nothing left: the position was saved
    assert len(alerts(storage)) == 4


@pytest.mark.parametrize("batch_size", [1, 3, 8, 50])
def test_a_restart_in_the_middle_neither_loses_nor_repeats_an_alert(
        storage: Storage, db_url: str, tmp_path: Path, batch_size: int) -> None:
    events = stream()
    # The reference: one uninterrupted run over a second store.
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    reference = open_storage(reference_url)
    try:
        store(reference, events)
        consumer(reference, builtin()).drain()
        expected = summary(alerts(reference))
    finally:
        reference.close()
    # Events arrive while detection restarts every few batches, each time a new process
    # with empty windows (rebuilt from the store).
    store(storage, events[:40])
    live = consumer(storage, builtin(), batch_size)
    stored = 40
    while True:
        live.process_batch()  # one batch, as the background thread would
        if live.last_id == storage.max_id() and stored == len(events):
            break
        live = consumer(storage, builtin(), batch_size)  # "restart"
        if stored < len(events):
            store(storage, events[stored:stored + 5])
            stored += 5
    assert summary(alerts(storage)) == expected


def test_a_hunt_finds_what_the_live_path_found(storage: Storage, tmp_path: Path) -> None:
    events = stream()
    store(storage, events)
    live_url = f"sqlite:///{tmp_path / 'live.db'}"
    live_store = open_storage(live_url)
    try:
        store(live_store, events)
        consumer(live_store, builtin()).drain()
        live = summary(alerts(live_store))
    finally:
        live_store.close()
    report = hunt(storage, builtin(), throttle_ms=THROTTLE_MS)
    assert report.events == len(events)
    assert summary(alerts(storage)) == live
    assert {a.origin for a in alerts(storage)} == {"hunt"}
    # A second hunt over the same history records nothing new.
    again = hunt(storage, builtin(), throttle_ms=THROTTLE_MS)
    assert again.created == [] and len(again.alerts) == len(report.alerts)


def test_a_hunt_after_the_live_path_records_nothing_twice(storage: Storage) -> None:
    store(storage, stream())
    consumer(storage, builtin()).drain()
    before = summary(alerts(storage))
    report = hunt(storage, builtin(), throttle_ms=THROTTLE_MS)
    assert len(report.alerts) == 6 and report.created == []  # bob's three hits included
    assert summary(alerts(storage)) == before


def test_a_hunt_of_one_correlation_runs_what_it_needs(storage: Storage) -> None:
    store(storage, stream())
    ruleset = select(builtin(), ["trailkeeper_many_failed_logins"])
    report = hunt(storage, ruleset, record=False)
    assert {a.rule_title for a in report.alerts} == {"Many Failed Logins For One User"}
    assert alerts(storage) == []  # a dry run records nothing


def test_a_hunt_over_a_time_range(storage: Storage) -> None:
    store(storage, stream())
    report = hunt(storage, builtin(), from_ms=ms(0), to_ms=ms(10), record=False)
    assert [a.rule_title for a in report.alerts] == ["Security Hook Skipped"]


def test_naming_an_unknown_rule_is_an_error() -> None:
    from trailkeeper.errors import BadRequestError

    with pytest.raises(BadRequestError, match="'no such rule'"):
        select(builtin(), ["no such rule"])



def matched_titles(event: AuditEvent) -> list[str]:
    """The built-in rules an event matches, as the live path sees it (stored REST shape)."""
    import orjson

    from trailkeeper.detection.document import matchable
    from trailkeeper.detection.engine import Engine

    doc = matchable(orjson.loads(orjson.dumps(event.to_rest())))
    return [r.title for r in Engine(builtin().rules).match(doc)]


def test_the_record_of_discarded_events_raises_an_alert() -> None:
    from trailkeeper.ingest.writer import discarded_event

    assert matched_titles(discarded_event(12, 1_700_000_000_000, 1_700_000_001_000)) \
        == ["Audit Events Discarded"]


def test_a_change_of_the_audit_configuration_raises_an_alert() -> None:
    from trailkeeper.governance.changes import config_updated_event
    from trailkeeper.governance.config import GovernanceConfig, coverage_setting

    before = GovernanceConfig.from_settings({})
    after = GovernanceConfig.from_settings({coverage_setting(CoverageArea.SECURITY): '"off"'})
    change = config_updated_event(before, after, ALICE)
    assert change is not None
    assert matched_titles(change) == ["Audit Log Configuration Changed"]


@pytest.mark.parametrize(("attributes", "alerts"), [
    ((("Permissions", "ADMIN"), ("Token name", "automation")), True),  # Bitbucket, demo
    ((("Permissions", "PROJECT_ADMIN"),), True),
    ((("Permissions", "REPO_READ"),), False),
    ((("Token scopes", "read"), ("Token description", "for the administrators")), False),
])
def test_admin_tokens_by_their_permission(attributes: tuple[tuple[str, str], ...],
                                          alerts: bool) -> None:
    token = event("Personal access token created", category="Users and groups",
                  extra_attributes=tuple(AuditAttribute(n, v) for n, v in attributes))
    assert matched_titles(token) == (["Access Token Created With Admin Scope"] if alerts else [])
