"""What the web UI adds to both stores: `Storage.histogram` (the chart) and the session
table."""

from __future__ import annotations

import orjson
import pytest

from tests.factories import ALICE, BOB, OTHER_PROJECT, OTHER_REPO, PROJECT, REPO, batch, event, ms
from trailkeeper.auth.permissions import scoped
from trailkeeper.auth.principals import Principal, Role
from trailkeeper.model.areas import CoverageArea
from trailkeeper.model.event import AuditAttribute, ChangedValue
from trailkeeper.query.ast import (
    AttributeIs,
    Compare,
    HasObject,
    In,
    Match,
    MatchAll,
    Node,
    Not,
    Text,
    all_of,
)
from trailkeeper.storage.base import SessionRecord, Storage

MINUTE = 60_000


def _fill(storage: Storage) -> None:
    events = []
    for i in range(240):
        author = ALICE if i % 3 else BOB
        objects = (PROJECT, REPO) if i % 4 else (OTHER_PROJECT, OTHER_REPO)
        area = CoverageArea.SECURITY if i % 5 == 0 else CoverageArea.PERMISSIONS
        events.append(event(f"Action {i % 7}", minutes=i * 1.5, author=author, objects=objects,
                            area=area,
                            changed_values=(ChangedValue("Size", str(i), str(i + 1)),),
                            extra_attributes=(AuditAttribute("tag", f"t{i % 11}"),)))
    storage.append([batch(storage, *events)])


def _expected(storage: Storage, where: Node, start: int, step: int, count: int) -> list[int]:
    counts = [0] * count
    for e in storage.search(where, limit=10_000).events:
        index = (e.timestamp_ms - start) // step
        if 0 <= index < count:
            counts[index] += 1
    return counts


@pytest.mark.parametrize("name", ["all", "action", "object", "delegated", "text", "area",
                                  "attribute", "not", "window", "window_object",
                                  "window_delegated"])
def test_histogram_counts_what_the_search_finds(storage: Storage, name: str) -> None:
    """Each access path (the time index, an indexed column, one object's index, a
    delegated scope's union, full text, a scan) counts exactly the events the search
    returns, window by window, including windows partly outside the data."""
    _fill(storage)
    delegate = Principal("carol", Role.USER, frozenset({("PROJECT", "2"), ("REPOSITORY", "7")}))
    where = {
        "all": MatchAll(),
        "action": In("action", ("Action 3", "Action 5")),
        "object": HasObject("REPOSITORY", ("8",)),
        "delegated": scoped(delegate, In("author.id", (BOB.id,))),
        "text": Text(("rep_2",), match_all=True),
        "area": In("area", ("SECURITY",)),
        "attribute": AttributeIs("tag", Match("=", "t3")),
        "not": all_of([Not(In("action", ("Action 1",))), HasObject("PROJECT", ("1",))]),
        "window": all_of([Compare("timestamp", ">=", ms(40)), Compare("timestamp", "<", ms(200)),
                          In("action", ("Action 2",))]),
        "window_object": all_of([Compare("timestamp", ">", ms(41)),
                                 Compare("timestamp", "<=", ms(190)),
                                 HasObject("REPOSITORY", ("7",))]),
        "window_delegated": scoped(delegate, all_of([Compare("timestamp", ">=", ms(100)),
                                                     Compare("timestamp", "<", ms(300))])),
    }[name]
    start, step, count = ms(-30), 17 * MINUTE, 24
    counts = storage.histogram(where, start_ms=start, bucket_ms=step, buckets=count)
    assert counts == _expected(storage, where, start, step, count)
    assert sum(counts or ()) > 0


def test_histogram_of_nothing_is_zeros(storage: Storage) -> None:
    _fill(storage)
    assert storage.histogram(In("action", ("never",)), start_ms=ms(0), bucket_ms=MINUTE,
                             buckets=5) == [0] * 5


def test_histogram_gives_up_after_its_timeout(storage: Storage) -> None:
    """A count that takes longer than ``timeout_ms`` answers None (the page then offers
    to draw it without the budget); without a timeout it finishes."""
    events = [event(minutes=i / 10, extra_attributes=tuple(
        AuditAttribute(f"k{j}", f"value {i} {j}") for j in range(20))) for i in range(6000)]
    storage.append([batch(storage, *events)])
    slow = AttributeIs("k19", Match("like", "%never%"))
    assert storage.histogram(slow, start_ms=ms(0), bucket_ms=MINUTE, buckets=600,
                             timeout_ms=0) is None
    assert storage.histogram(slow, start_ms=ms(0), bucket_ms=MINUTE,
                             buckets=600) == [0] * 600


def test_sessions_are_stored_touched_and_deleted(storage: Storage) -> None:
    session = SessionRecord("ab" * 32, "alice", "fp", 1000, 1000, 5000, "10.0.0.1")
    storage.put_session(session)
    assert storage.get_session(session.id) == session
    storage.touch_session(session.id, 2000)
    assert storage.get_session(session.id) == SessionRecord(
        "ab" * 32, "alice", "fp", 1000, 2000, 5000, "10.0.0.1")
    storage.put_session(SessionRecord("cd" * 32, "bob", "fp", 1000, 3000, 9000))
    storage.put_session(SessionRecord("ef" * 32, "bob", "fp", 1000, 1000, 3000))
    # At 3500 with an idle limit of 1000: the first is idle, the third past its end.
    assert storage.delete_stale_sessions(3500, 1000) == 2
    assert storage.get_session("ab" * 32) is None
    assert storage.get_session("cd" * 32) is not None
    assert storage.delete_session("cd" * 32) is True
    assert storage.delete_session("cd" * 32) is False


def test_an_objects_view_in_a_delegated_scope_is_that_objects_events(storage: Storage) -> None:
    """The view of one administered object (scope AND object, absorbed into the object)
    finds, pages and counts exactly the events naming it: checked against every stored
    document, not against the planner."""
    _fill(storage)
    delegate = Principal("carol", Role.USER, frozenset({("PROJECT", "2"), ("REPOSITORY", "7")}))
    where = scoped(delegate, HasObject("PROJECT", ("2",)))
    everything = storage.search(MatchAll(), limit=10_000).events
    expected = [e.id for e in everything if any(
        o["type"] == "PROJECT" and o["id"] == "2"
        for o in orjson.loads(e.doc).get("affectedObjects", []))]
    assert [e.id for e in storage.search(where, limit=10_000).events] == expected
    first = storage.search(where, limit=7)
    assert [e.id for e in first.events] == expected[:7]
    assert first.next_cursor is not None
    second = storage.search(where, limit=7, cursor=first.next_cursor)
    assert [e.id for e in second.events] == expected[7:14]
    counts = storage.histogram(where, start_ms=ms(0), bucket_ms=10 * MINUTE, buckets=40)
    assert sum(counts or ()) == len(expected) > 0
