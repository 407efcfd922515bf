"""The Storage protocol, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from tests.factories import (
    ALICE,
    BOB,
    OTHER_PROJECT,
    OTHER_REPO,
    PROJECT,
    REPO,
    batch,
    event,
    ms,
    rich_event,
)
from trailkeeper.errors import ConflictError
from trailkeeper.model.event import AuditAuthor, AuditEvent, AuditResource
from trailkeeper.query.ast import AuditQuery, Compare, HasObject, In, MatchAll, Not, Text
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import AppendResult, Cursor, Storage
from trailkeeper.storage.rows import Batch


def append_one(storage: Storage, *events):  # type: ignore[no-untyped-def]
    [result] = storage.append([batch(storage, *events)])
    assert isinstance(result, AppendResult)
    return result


def test_append_assigns_increasing_ids_in_input_order(storage: Storage) -> None:
    """Ids are assigned in input order and keep growing across commits."""
    first = append_one(storage, event(minutes=1), event(minutes=0))
    second = append_one(storage, event(minutes=2))
    assert first.ids[1] == first.ids[0] + 1
    assert second.ids[0] > first.ids[1]
    assert first.created == 2


def test_stored_event_round_trips_every_field(storage: Storage) -> None:
    """What comes back is what went in, with the id added."""
    original = rich_event(uid="abc")
    [event_id] = append_one(storage, original).ids
    stored = storage.get(event_id)
    assert stored is not None
    back = stored.to_event()
    assert back == original
    assert back.id == event_id
    assert stored.timestamp_ms == ms(0)


def test_search_is_newest_first_and_pages_by_cursor_without_gaps(storage: Storage) -> None:
    """Following next_cursor visits every event once, in (timestamp, id) descending order."""
    # Several events share a timestamp, so the id tie-break matters.
    ids = append_one(storage, *[event(minutes=i // 3) for i in range(20)]).ids
    expected = sorted(((i // 3, ids[i]) for i in range(20)), reverse=True)
    seen, cursor = [], None
    while True:
        page = storage.search(MatchAll(), limit=6, cursor=cursor)
        seen.extend(row.id for row in page.events)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [event_id for _, event_id in expected]


def test_ascending_search_reverses_the_order(storage: Storage) -> None:
    ids = append_one(storage, *[event(minutes=i) for i in range(5)]).ids
    page = storage.search(MatchAll(), limit=10, descending=False)
    assert [row.id for row in page.events] == ids


def test_offset_applies_after_the_cursor(storage: Storage) -> None:
    ids = append_one(storage, *[event(minutes=i) for i in range(10)]).ids
    first = storage.search(MatchAll(), limit=3)
    assert first.next_cursor is not None
    page = storage.search(MatchAll(), limit=2, cursor=first.next_cursor, offset=2)
    assert [row.id for row in page.events] == [ids[4], ids[3]]


def test_last_page_has_no_cursor(storage: Storage) -> None:
    append_one(storage, event(), event(minutes=1))
    page = storage.search(MatchAll(), limit=2)
    assert page.last_page and page.next_cursor is None


def test_filters_by_action_category_author_and_time(storage: Storage) -> None:
    append_one(
        storage,
        event("User created", category="Users and groups", author=BOB, minutes=1),
        event("Repository created", minutes=2),
        event("Repository deleted", minutes=3),
    )
    def actions(where) -> list[str]:  # type: ignore[no-untyped-def]
        return [r.to_event().type.action for r in storage.search(where, limit=10).events]

    assert actions(In("action", ("Repository created",))) == ["Repository created"]
    assert actions(In("category", ("Users and groups",))) == ["User created"]
    assert actions(In("author.id", (BOB.id,))) == ["User created"]
    assert actions(AuditQuery(since=None, until=None).to_ast()) == [
        "Repository deleted", "Repository created", "User created"]
    assert actions(Compare("timestamp", ">=", ms(2))) == ["Repository deleted",
                                                          "Repository created"]
    assert actions(Not(In("action", ("Repository created",)))) == [
        "Repository deleted", "User created"]
    assert storage.count(In("category", ("Repositories",))) == 2


def test_not_keeps_events_where_the_field_is_missing(storage: Storage) -> None:
    """NOT source = x matches events that have no source at all."""
    append_one(storage, rich_event(source="10.0.0.1"), event(minutes=1))
    assert storage.count(Not(In("source", ("10.0.0.1",)))) == 1


def test_affected_objects_and_across_types_or_within_a_type(storage: Storage) -> None:
    """Atlassian's rule: PROJECT,1;REPOSITORY,7;REPOSITORY,8 means P1 and (R7 or R8)."""
    ids = append_one(
        storage,
        event(objects=(PROJECT, REPO)),
        event(objects=(PROJECT, OTHER_REPO), minutes=1),
        event(objects=(OTHER_PROJECT, REPO), minutes=2),
        event(objects=(PROJECT,), minutes=3),
    ).ids
    query = AuditQuery(objects=[("PROJECT", "1"), ("REPOSITORY", "7"), ("repository", "8")])
    found = {row.id for row in storage.search(query.to_ast(), limit=10).events}
    assert found == {ids[0], ids[1]}
    assert storage.count(HasObject("project", ("1",))) == 3


def test_every_affected_object_is_indexed_not_only_five(storage: Storage) -> None:
    objects = tuple(AuditResource("USER", f"user{i}", str(i)) for i in range(12))
    append_one(storage, event(objects=objects))
    assert storage.count(HasObject("USER", ("11",))) == 1


def test_a_group_larger_than_one_statement_stores_each_event_and_object_once(
        storage: Storage) -> None:
    """Thousands of events with uids and objects in one commit (several statements per
    table, the last one padded) are each stored once, with all their objects."""
    count = 2100 * 3 + 5
    result = append_one(storage, *[event(minutes=i % 50, uid=f"u-{i}") for i in range(count)])
    assert result.ids == list(range(result.ids[0], result.ids[0] + count))
    assert storage.count(MatchAll()) == count
    assert storage.count(HasObject("REPOSITORY", ("7",))) == count
    assert storage.count(HasObject("PROJECT", ("1",))) == count
    again = append_one(storage, event(minutes=2049 % 50, uid="u-2049"))
    assert again.ids == [result.ids[2049]] and again.created == 0


def test_full_text_matches_names_values_and_attributes(storage: Storage) -> None:
    append_one(
        storage,
        rich_event(),
        event("User created", category="Users and groups", minutes=1,
              objects=(AuditResource("USER", "Zebediah", "99"),)),
    )
    def hits(*terms: str) -> int:
        return storage.count(Text(terms))

    assert hits("zebediah") == 1  # an object name, any case
    assert hits("zebe") == 1  # a word prefix
    assert hits("new") == 1  # a changed value
    assert hits("10.50.73.5") == 1  # the source address
    assert hits("zebediah", "10.50.73.5") == 2  # terms are alternatives
    assert hits("nothing-like-this") == 0
    assert storage.count(Text(("zebediah", "users"), match_all=True)) == 1


def test_full_text_terms_cannot_inject_query_syntax(storage: Storage) -> None:
    append_one(storage, rich_event())
    for term in ['"', "a OR b", "NEAR(", "*", "'", "\\", "a:b", "(", "-x", "&|!"]:
        assert storage.count(Text((term,))) >= 0


def test_same_uid_and_content_returns_the_stored_id(storage: Storage) -> None:
    first = append_one(storage, event(uid="u-1"))
    again = append_one(storage, event(uid="u-1"))
    assert again.ids == first.ids
    assert again.created == 0
    assert storage.count(MatchAll()) == 1


def test_same_uid_with_other_content_is_a_conflict_and_stores_nothing(storage: Storage) -> None:
    append_one(storage, event(uid="u-1"))
    [result] = storage.append([batch(storage, event(minutes=5), event("Other", uid="u-1"))])
    assert isinstance(result, ConflictError)
    assert result.index == 1
    assert storage.count(MatchAll()) == 1


def test_a_uid_twice_in_one_batch_is_stored_once(storage: Storage) -> None:
    result = append_one(storage, event(uid="dup"), event(uid="dup"))
    assert result.ids[0] == result.ids[1]
    assert storage.count(MatchAll()) == 1


def test_group_commit_keeps_good_batches_when_one_conflicts(storage: Storage) -> None:
    append_one(storage, event(uid="taken"))
    results = storage.append([
        batch(storage, event(minutes=1)),
        batch(storage, event("Different", uid="taken")),
        batch(storage, event(minutes=2)),
    ])
    assert isinstance(results[0], AppendResult)
    assert isinstance(results[1], ConflictError)
    assert isinstance(results[2], AppendResult)
    assert storage.count(MatchAll()) == 3


def test_full_text_finds_each_event_of_a_group_commit_under_its_own_id(
        storage: Storage) -> None:
    """Batches committed together, around a refused batch and a lenient batch that leaves
    a conflicting event out, index every stored event's words under that event's id."""
    append_one(storage, event(uid="taken"))
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]

    def named(word: str, uid: str | None = None) -> AuditEvent:
        return event(minutes=1, objects=(AuditResource("REPOSITORY", word, word),), uid=uid)

    lenient = batch(storage, named("charlie"), named("nope", uid="taken"), named("delta"))
    results = storage.append([
        batch(storage, named("alpha"), named("bravo")),
        batch(storage, named("refused", uid="taken")),
        Batch(lenient.events, lenient.catalogue, lenient.rows, lenient=True),
        batch(storage, named("echo"), named("foxtrot")),
    ])
    ids = [i for r in results if isinstance(r, AppendResult) for i in r.ids if i]
    assert len(ids) == len(words)
    for word, event_id in zip(words, ids, strict=True):
        page = storage.search(Text((word,)), limit=10)
        assert [row.id for row in page.events] == [event_id]
    assert storage.count(Text(("refused", "nope"))) == 0


def test_catalogues_know_authors_and_objects(storage: Storage) -> None:
    append_one(storage, event(author=ALICE), event(author=AuditAuthor.SYSTEM, minutes=1))
    authors = storage.lookup_authors(None, limit=10)
    assert [a.id for a in authors][:1] == ["-1"]  # built-ins first
    assert {a.name for a in authors} == {"System", "alice"}
    assert [a.name for a in storage.lookup_authors("ali", limit=10)] == ["alice"]
    assert [o.name for o in storage.lookup_objects("repository", None, limit=10)] == ["rep_1"]
    [project] = storage.find_objects("PROJECT", name="prj")
    assert project.id == "1"
    assert storage.objects_seen_together("REPOSITORY", "7", "PROJECT", "1")
    assert not storage.objects_seen_together("REPOSITORY", "7", "PROJECT", "2")


def test_max_id_and_count(storage: Storage) -> None:
    assert storage.max_id() == 0
    ids = append_one(storage, event(), event(minutes=1)).ids
    assert storage.max_id() == ids[1]
    assert storage.max_id(Compare("timestamp", "<", ms(1))) == ids[0]


def test_stream_visits_everything_once(storage: Storage) -> None:
    ids = append_one(storage, *[event(minutes=i % 7) for i in range(25)]).ids
    streamed = [row.id for row in storage.stream(MatchAll(), batch_size=4)]
    assert sorted(streamed) == sorted(ids)
    assert len(streamed) == len(set(streamed))


def test_reopening_keeps_data_and_migrations_apply_once(db_url: str) -> None:
    store = open_storage(db_url)
    append_one(store, event())
    store.close()
    store = open_storage(db_url)
    try:
        assert store.count(MatchAll()) == 1
        assert store.integrity_check() == []
    finally:
        store.close()


def test_cursor_text_round_trips() -> None:
    assert str(Cursor.parse("1577437517322,9")) == "1577437517322,9"
    assert Cursor.parse(" 1, 2 ") == Cursor(1, 2)
    for bad in ["", "1", "a,b", "1,2,3", "1;2", ",", "1,-2"]:
        with pytest.raises(ValueError, match="Cursor format is invalid"):
            Cursor.parse(bad)


def page_through(storage: Storage, where, limit: int) -> list[int]:  # type: ignore[no-untyped-def]
    seen, cursor = [], None
    while True:
        page = storage.search(where, limit=limit, cursor=cursor)
        seen.extend(row.id for row in page.events)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def test_paging_an_object_filter_visits_every_event_once(storage: Storage) -> None:
    """The plan that drives from the object's index keeps (timestamp, id) order."""
    events = [event(minutes=i // 2, objects=(PROJECT, REPO) if i % 3 else (PROJECT,))
              for i in range(40)]
    ids = append_one(storage, *events).ids
    where = AuditQuery(objects=[("REPOSITORY", "7")], since=None).to_ast()
    expected = [event_id for i, event_id in sorted(
        ((i // 2, ids[i]) for i in range(40) if i % 3), reverse=True)]
    assert page_through(storage, where, 4) == expected


def test_text_matching_thousands_of_events_pages_in_order(storage: Storage) -> None:
    """Above the wide-text threshold the time scan filters by text; order and paging hold."""
    many = [event("Bulk import", minutes=i % 50, objects=(AuditResource("FILE", "batchfile"),))
            for i in range(5200)]
    others = [event("Other", minutes=i) for i in range(30)]
    ids = append_one(storage, *many).ids + append_one(storage, *others).ids
    seen = page_through(storage, Text(("batchfile",)), 1000)
    assert len(seen) == 5200 and len(set(seen)) == 5200
    assert set(seen) == set(ids[:5200])
    stamps = [storage.get(i).timestamp_ms for i in seen[:50]]  # type: ignore[union-attr]
    assert stamps == sorted(stamps, reverse=True)


def test_a_cursor_beyond_the_to_bound_still_respects_it(storage: Storage) -> None:
    ids = append_one(storage, *[event(minutes=i) for i in range(10)]).ids
    where = Compare("timestamp", "<=", ms(4))
    page = storage.search(where, limit=2, cursor=Cursor(ms(8), ids[8]))
    assert [row.id for row in page.events] == [ids[4], ids[3]]
