"""The alert store on both backends: dedup, throttling, acknowledgement, atomic positions."""

from __future__ import annotations

import sqlite3
import threading

import psycopg
import pytest

from trailkeeper.alerts.model import MAX_EVENT_IDS, AlertQuery, NewAlert
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import Storage

MINUTE = 60_000
T0 = 1_700_000_000_000


def match(trigger: int, *, rule: str = "r1", at: int = T0, group: dict[str, str] | None = None,
          level: str | None = "high", events: tuple[int, ...] | None = None,
          origin: str = "live") -> NewAlert:
    return NewAlert(rule_id=rule, rule_title=f"Rule {rule}", level=level, timestamp_ms=at,
                    trigger_id=trigger, event_ids=events if events is not None else (trigger,),
                    group=group or {}, tags=("attack.t1078",), origin=origin)  # type: ignore[arg-type]


def test_a_new_match_becomes_an_alert_with_every_field(storage: Storage) -> None:
    """A recorded match reads back with its rule, level, tags, group, events and times."""
    ids = storage.record_alerts([match(7, group={"user": "bob", "ip": "10.0.0.1"})],
                                throttle_ms=0, now_ms=T0 + 5)
    assert len(ids) == 1
    alert = storage.get_alert(ids[0])
    assert alert is not None
    assert (alert.rule_id, alert.rule_title, alert.level, alert.tags) == (
        "r1", "Rule r1", "high", ("attack.t1078",))
    assert (alert.timestamp_ms, alert.last_ms, alert.created_ms) == (T0, T0, T0 + 5)
    assert alert.event_ids == (7,)
    assert alert.group == {"ip": "10.0.0.1", "user": "bob"}
    assert (alert.count, alert.status, alert.origin) == (1, "open", "live")
    assert alert.acknowledged_by is None and alert.acknowledged_ms is None
    assert storage.get_alert(ids[0] + 1) is None
    assert storage.last_alert_id() == ids[0]


def test_the_same_trigger_is_recorded_once(storage: Storage) -> None:
    """(rule, trigger event) already recorded is skipped, in the same call or a later one;
    another rule on the same event is a different alert."""
    first = storage.record_alerts([match(1), match(1)], throttle_ms=0, now_ms=T0)
    again = storage.record_alerts([match(1, origin="hunt")], throttle_ms=0, now_ms=T0)
    other = storage.record_alerts([match(1, rule="r2")], throttle_ms=0, now_ms=T0)
    assert len(first) == 1 and again == [] and len(other) == 1
    assert len(storage.list_alerts(AlertQuery())) == 2


def test_matches_within_the_throttle_window_merge_into_one_alert(storage: Storage) -> None:
    """A match of the same rule and group within the window adds to the open alert; one
    after the window, or of another group, starts a new alert."""
    window = 10 * MINUTE
    (first,) = storage.record_alerts([match(1, group={"user": "bob"})], throttle_ms=window,
                                     now_ms=T0)
    merged = storage.record_alerts(
        [match(2, at=T0 + 5 * MINUTE, group={"user": "bob"}),
         match(3, at=T0 + 14 * MINUTE, group={"user": "bob"}),  # within 10 min of the last
         match(4, at=T0 + 15 * MINUTE, group={"user": "eve"})],
        throttle_ms=window, now_ms=T0)
    assert len(merged) == 1  # only eve's
    alert = storage.get_alert(first)
    assert alert is not None
    assert (alert.count, alert.event_ids) == (3, (1, 2, 3))
    assert (alert.timestamp_ms, alert.last_ms) == (T0, T0 + 14 * MINUTE)
    late = storage.record_alerts([match(5, at=T0 + 25 * MINUTE, group={"user": "bob"})],
                                 throttle_ms=window, now_ms=T0)
    assert len(late) == 1 and late[0] > merged[0]


def test_without_throttle_every_match_is_an_alert(storage: Storage) -> None:
    """throttle 0 never merges."""
    ids = storage.record_alerts([match(1), match(2)], throttle_ms=0, now_ms=T0)
    assert len(ids) == 2


def test_an_acknowledged_alert_is_not_merged_into(storage: Storage) -> None:
    """Once acknowledged an alert stays as it was; the next match opens a new one."""
    (first,) = storage.record_alerts([match(1)], throttle_ms=MINUTE, now_ms=T0)
    assert storage.acknowledge_alerts([first], "alice", T0 + 1) == 1
    assert storage.acknowledge_alerts([first], "bob", T0 + 2) == 0  # only open ones change
    second = storage.record_alerts([match(2, at=T0 + 1)], throttle_ms=MINUTE, now_ms=T0)
    assert len(second) == 1 and second[0] != first
    acked = storage.get_alert(first)
    assert acked is not None
    assert (acked.status, acked.acknowledged_by, acked.acknowledged_ms, acked.count) == (
        "acknowledged", "alice", T0 + 1, 1)


def test_a_merged_alert_keeps_at_most_the_first_event_ids(storage: Storage) -> None:
    """Event ids are deduplicated and capped at MAX_EVENT_IDS; the count keeps counting."""
    big = tuple(range(1, MAX_EVENT_IDS))  # one short of the cap
    (alert_id,) = storage.record_alerts([match(10_000, events=(*big, 10_000))],
                                        throttle_ms=MINUTE, now_ms=T0)
    storage.record_alerts([match(10_001, events=(5, 10_001, 10_002))], throttle_ms=MINUTE,
                          now_ms=T0)
    alert = storage.get_alert(alert_id)
    assert alert is not None
    assert len(alert.event_ids) == MAX_EVENT_IDS
    assert alert.event_ids[-2:] == (MAX_EVENT_IDS - 1, 10_000)
    assert alert.count == 2


def test_the_position_is_saved_with_the_alerts(storage: Storage) -> None:
    """A position given to record_alerts is stored, also when nothing new was recorded."""
    storage.record_alerts([match(1)], throttle_ms=0, now_ms=T0, position=("detect", '{"id":1}'))
    assert storage.get_position("detect") == '{"id":1}'
    storage.record_alerts([], throttle_ms=0, now_ms=T0, position=("detect", '{"id":2}'))
    assert storage.get_position("detect") == '{"id":2}'


def test_a_failed_record_stores_neither_alerts_nor_position(storage: Storage) -> None:
    """The database refuses an alert of an unknown origin: the alerts before it in the
    call and the position are rolled back with it."""
    storage.put_position("detect", '{"id":0}')
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.CheckViolation)):
        storage.record_alerts([match(1), match(2, origin="bogus")], throttle_ms=0, now_ms=T0,
                              position=("detect", '{"id":2}'))
    assert storage.list_alerts(AlertQuery()) == []
    assert storage.get_position("detect") == '{"id":0}'
    # The store is still usable, and the trigger was not taken.
    assert len(storage.record_alerts([match(1)], throttle_ms=0, now_ms=T0)) == 1


def test_listing_filters_and_pages_newest_first(storage: Storage) -> None:
    """Status, rules, minimum level, time range, origin and keyset paging by id."""
    storage.record_alerts([
        match(1, rule="a", level="low", at=T0),
        match(2, rule="b", level="high", at=T0 + MINUTE),
        match(3, rule="c", level=None, at=T0 + 2 * MINUTE, origin="hunt"),
        match(4, rule="a", level="critical", at=T0 + 3 * MINUTE),
    ], throttle_ms=0, now_ms=T0)
    storage.acknowledge_alerts([2], "alice", T0)

    def ids(**filters: object) -> list[int]:
        return [a.id for a in storage.list_alerts(AlertQuery(**filters))]  # type: ignore[arg-type]

    assert ids() == [4, 3, 2, 1]
    assert ids(status="open") == [4, 3, 1]
    assert ids(status="acknowledged") == [2]
    assert ids(rule_ids=("a", "c")) == [4, 3, 1]
    assert ids(min_level="high") == [4, 2]
    assert ids(min_level="informational") == [4, 2, 1]  # no level ranks below every level
    assert ids(from_ms=T0 + MINUTE, to_ms=T0 + 3 * MINUTE) == [3, 2]
    assert ids(origin="hunt") == [3]
    assert ids(limit=2) == [4, 3]
    assert ids(limit=2, before_id=3) == [2, 1]
    assert [a.id for a in storage.alerts_after(1, 2)] == [2, 3]
    assert storage.last_alert_id() == 4


def test_two_writers_recording_the_same_trigger_make_one_alert(db_url: str) -> None:
    """Two stores on one database (as two processes would be) record the same matches at
    once: each trigger becomes exactly one alert."""
    stores = [open_storage(db_url), open_storage(db_url)]
    created: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def record(index: int) -> None:
        start.wait()
        for trigger in range(1, 51):
            created[index] += stores[index].record_alerts([match(trigger)], throttle_ms=0,
                                                          now_ms=T0)

    try:
        threads = [threading.Thread(target=record, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(created[0]) + len(created[1]) == 50
        assert len(stores[0].list_alerts(AlertQuery(limit=1000))) == 50
    finally:
        for s in stores:
            s.close()


def test_a_group_spelled_differently_is_the_same_group(storage: Storage) -> None:
    """The correlation compares group values casefolded, so does the throttle; the alert
    shows the spelling it was opened with."""
    [first] = storage.record_alerts([match(1, group={"author.name": "Alice"})],
                                    throttle_ms=10 * MINUTE, now_ms=T0)
    merged = storage.record_alerts([match(2, at=T0 + MINUTE, group={"author.name": "alice"})],
                                   throttle_ms=10 * MINUTE, now_ms=T0)
    assert merged == []
    alert = storage.get_alert(first)
    assert alert is not None
    assert (alert.count, alert.event_ids, alert.group) == (2, (1, 2), {"author.name": "Alice"})
    other = storage.record_alerts([match(3, at=T0 + MINUTE, group={"author.name": "bob"})],
                                  throttle_ms=10 * MINUTE, now_ms=T0)
    assert len(other) == 1
