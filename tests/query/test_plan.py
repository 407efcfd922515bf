"""Access-path choices of the search planner (pure: SQL text and parameters)."""

from __future__ import annotations

from trailkeeper.query.ast import And, Compare, HasObject, In, Or, Text, all_of
from trailkeeper.query.compile import POSTGRES, SQLITE, compile_where
from trailkeeper.query.plan import Page, absorbed, plan_search, tighten_to_cursor

WINDOW = [Compare("timestamp", ">=", 0), Compare("timestamp", "<=", 10_000)]


def test_one_required_object_drives_the_scan() -> None:
    sql, params = plan_search(all_of([*WINDOW, HasObject("repository", ("7",))]), Page(200),
                              SQLITE)
    assert "FROM event_objects d CROSS JOIN events e" in sql
    assert "ORDER BY d.ts DESC, d.event_id DESC" in sql
    assert params[:2] == ["REPOSITORY", "7"]
    assert params[-2:] == [201, 0]


def test_alternative_objects_fall_back_to_membership() -> None:
    sql, _ = plan_search(HasObject("REPOSITORY", ("7", "8")), Page(50), SQLITE)
    assert "FROM events e WHERE" in sql and "event_objects o" in sql


def test_the_cursor_replaces_a_looser_upper_bound() -> None:
    tightened = tighten_to_cursor(all_of(WINDOW), Page(10, cursor_ts=5_000, cursor_id=3))
    assert tightened == all_of([Compare("timestamp", ">=", 0),
                                Compare("timestamp", "<=", 5_000)])
    tighter = all_of([Compare("timestamp", "<=", 100)])
    assert tighten_to_cursor(tighter, Page(10, cursor_ts=5_000, cursor_id=3)) == tighter
    ascending = tighten_to_cursor(all_of(WINDOW), Page(10, 4_000, 3, descending=False))
    assert ascending == all_of([Compare("timestamp", "<=", 10_000),
                                Compare("timestamp", ">=", 4_000)])


def test_wide_text_filters_the_time_scan_on_sqlite() -> None:
    where = all_of([*WINDOW, Text(("billing",))])
    narrow, _ = plan_search(where, Page(200), SQLITE, text_matches=10)
    wide, _ = plan_search(where, Page(200), SQLITE, text_matches=1_000_000)
    assert " e.id IN (SELECT rowid" in narrow
    assert "+e.id IN (SELECT rowid" in wide


def test_values_never_enter_the_sql_text() -> None:
    hostile = "x' OR '1'='1"
    where = all_of([In("action", (hostile,)), HasObject(hostile, (hostile,)),
                    Text((hostile,))])
    for dialect in (SQLITE, POSTGRES):
        sql, params = compile_where(where, dialect)
        assert hostile not in sql and "1'='1" not in sql
        assert hostile in params


def test_a_scope_anded_with_one_of_its_objects_is_absorbed() -> None:
    """A AND (A OR B) is A: the object's view of a delegated administrator reads from the
    object's index; anything the scope could exclude stays."""
    scope = Or((In("author.id", ("carol",)), HasObject("PROJECT", ("2", "3"))))
    own = HasObject("PROJECT", ("2",))
    assert absorbed(And((scope, own))) == own
    assert absorbed(And((scope, HasObject("project", ("3",)), In("action", ("x",))))) == \
        And((HasObject("project", ("3",)), In("action", ("x",))))
    for kept in (And((scope, HasObject("PROJECT", ("4",)))),
                 And((scope, HasObject("REPOSITORY", ("2",)))),
                 And((scope, HasObject("PROJECT")))):  # any project: not implied
        assert absorbed(kept) == kept
    anything = Or((In("author.id", ("carol",)), HasObject("PROJECT")))
    assert absorbed(And((anything, own))) == own
