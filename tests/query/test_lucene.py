"""The query language, end to end: query text -> AST -> SQL -> rows, on both real stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import batch
from trailkeeper.errors import QuerySyntaxError
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import (
    AuditAttribute,
    AuditAuthor,
    AuditEvent,
    AuditResource,
    AuditType,
    ChangedValue,
)
from trailkeeper.query.ast import MatchAll
from trailkeeper.query.dates import zone
from trailkeeper.query.lucene import parse_query
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import AppendResult, Storage

ALICE = AuditAuthor("11", "alice", "NORMAL")
BOB = AuditAuthor("12", "bob", "NORMAL")
PRJ = AuditResource("PROJECT", "PRJ", "1")
OPS = AuditResource("PROJECT", "OPS", "2")
REP1 = AuditResource("REPOSITORY", "rep_1", "7")
REP2 = AuditResource("REPOSITORY", "rep_2", "8")
NOW = datetime(2024, 4, 5, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def _event(label: str, action: str, category: str, when: datetime, **fields: object) -> AuditEvent:
    area = fields.pop("area", CoverageArea.GLOBAL_CONFIG_AND_ADMINISTRATION)
    level = fields.pop("level", CoverageLevel.BASE)
    return AuditEvent(
        type=AuditType(category, action, area, level),  # type: ignore[arg-type]
        timestamp=when,
        uid=label,
        **fields,
    )  # type: ignore[arg-type]


EVENTS = [
    _event(
        "e1",
        "Project created",
        "Projects",
        datetime(2024, 3, 1, 12, tzinfo=UTC),
        author=ALICE,
        affected_objects=(PRJ,),
        source="10.1.2.3",
        method="Browser",
        extra_attributes=(AuditAttribute("Mode", "fast"),),
    ),
    _event(
        "e2",
        "Repository created",
        "Repositories",
        datetime(2024, 3, 2, tzinfo=UTC),
        author=BOB,
        affected_objects=(PRJ, REP1),
        source="192.168.0.5",
        level=CoverageLevel.ADVANCED,
    ),
    _event(
        "e3",
        "Project permission changed",
        "Permissions",
        datetime(2024, 3, 5, 23, 59, 59, 999000, tzinfo=UTC),
        author=ALICE,
        affected_objects=(OPS,),
        source="2001:db8::1",
        changed_values=(ChangedValue("Level", "5", "3"),),
    ),
    _event(
        "e4",
        "Project permission changed",
        "Permissions",
        datetime(2024, 3, 6, tzinfo=UTC),
        author=ALICE,
        affected_objects=(OPS,),
        changed_values=(ChangedValue("Level", "7", "2"),),
    ),
    _event(
        "e5",
        "Repository deleted",
        "Repositories",
        datetime(2024, 3, 10, tzinfo=UTC),
        author=AuditAuthor.SYSTEM,
        affected_objects=(REP2,),
        source="not-an-ip",
        changed_values=(ChangedValue("Default branch", "main", "develop"),),
        extra_attributes=(AuditAttribute("Project Name", "Ops Tools"),),
    ),
    _event(
        "e6",
        "User login failed",
        "Authentication",
        datetime(2024, 4, 1, tzinfo=UTC),
        author=AuditAuthor.ANONYMOUS,
        area=CoverageArea.SECURITY,
        changed_values=(ChangedValue("Level", "x", "10"),),
    ),
]
ALL = {e.uid for e in EVENTS}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Storage, dict[str, int]]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('lucene')}/audit.db"
    else:
        from tests.conftest import _empty_postgres, _with_database

        admin = request.getfixturevalue("pg_url")
        url = _with_database(admin, admin.rsplit("/", 1)[1])
        _empty_postgres(url)
    storage = open_storage(url)
    [result] = storage.append([batch(storage, *EVENTS)])
    assert isinstance(result, AppendResult)
    ids = {e.uid or "": i for e, i in zip(EVENTS, result.ids, strict=True)}
    yield storage, ids
    storage.close()


def found(storage: Storage, query: str) -> set[str]:
    page = storage.search(parse_query(query, now_ms=NOW_MS), limit=100)
    labels = {orjson.loads(row.doc)["uid"] for row in page.events}
    assert storage.count(parse_query(query, now_ms=NOW_MS)) == len(labels)
    return labels


CASES = [
    ('action:"Repository created"', {"e2"}),
    ("action:Repo*", {"e2", "e5"}),
    ("action:repo*", {"e2", "e5"}),
    ("action:*permission?changed", {"e3", "e4"}),
    ('audit.type:"Repository created" AND object.type:PROJECT', {"e2"}),
    ("category:Projects OR category:Permissions", {"e1", "e3", "e4"}),
    ("audit.class:Permissions", {"e3", "e4"}),
    ("-category:Permissions", ALL - {"e3", "e4"}),
    ("NOT source:10.1.2.3", ALL - {"e1"}),
    ("source:10.0.0.0/8", {"e1"}),
    ("source:192.168.0.0/16 OR source:10.1.2.3", {"e1", "e2"}),
    ('source:"2001:db8::/32"', {"e3"}),
    ("source:*", ALL - {"e4", "e6"}),
    ("audit.stamp:[2024/03/01 TO 2024/03/05]", {"e1", "e2", "e3"}),
    ("timestamp:{2024/03/01 TO 2024/03/06}", {"e2", "e3"}),
    ("timestamp:2024-03-06", {"e4"}),
    ("timestamp:[2024-03-02T00:00:00Z TO *]", ALL - {"e1"}),
    ('timestamp:"2024-03-05T23:59:59.999Z"', {"e3"}),
    ("timestamp:[now-30d TO now]", {"e5", "e6"}),
    ("timestamp:[now-1M/M TO now/M}", {"e1", "e2", "e3", "e4", "e5"}),
    ("ioLevel:[4 TO 6] AND inLevel:3", {"e3"}),
    ("ioLevel:{3 TO 6} AND inLevel:(2 OR 3)", {"e3"}),
    ("inLevel:[2 TO 10]", {"e3", "e4", "e6"}),
    ("ioLevel:[0 TO 100]", {"e3", "e4"}),
    ("old.Level:x", {"e6"}),
    ("changed.level:3", {"e3"}),
    ("changed.default_branch:main", {"e5"}),
    ("soDefaultBranch:main", {"e5"}),
    ("snDefaultBranch:main", set()),
    ("snDefaultBranch:dev*", {"e5"}),
    (r"changed.Default\ branch:develop", {"e5"}),
    ('sxProjectName:"Ops Tools"', {"e5"}),
    ("attr.mode:fast", {"e1"}),
    ("attr.mode:*", {"e1"}),
    ("author:alice", {"e1", "e3", "e4"}),
    ("audit.user:12", {"e2"}),
    ("author:ali*", {"e1", "e3", "e4"}),
    ("author.type:system", {"e5"}),
    ("object:rep_1", {"e2"}),
    ("object:REPOSITORY,8", {"e5"}),
    ("audit.target:PRJ", {"e1", "e2"}),
    ("object.name:rep*", {"e2", "e5"}),
    ("object.id:7", {"e2"}),
    ("object.type:repo*", {"e2", "e5"}),
    ("level:advanced", {"e2"}),
    ("area:SECURITY", {"e6"}),
    ("permission", {"e3", "e4"}),
    ("perm*", {"e3", "e4"}),
    ('"Ops Tools"', {"e5"}),
    ("develop", {"e5"}),
    ("project created", {"e1"}),
    ('(action:"Project created" OR action:"Repository created") AND author:bob', {"e2"}),
    ('+author:alice -action:"Project created"', {"e3", "e4"}),
    ("*", ALL),
    ("timestamp:* AND id:*", ALL),
    ("", ALL),
]


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[c[0] or "empty" for c in CASES])
def test_query_finds_exactly_the_matching_events(
    store: tuple[Storage, dict[str, int]], query: str, expected: set[str]
) -> None:
    storage, _ = store
    assert found(storage, query) == expected


def test_id_ranges_are_numeric(store: tuple[Storage, dict[str, int]]) -> None:
    storage, ids = store
    assert found(storage, f"id:[{ids['e2']} TO {ids['e3']}]") == {"e2", "e3"}
    assert found(storage, f"id:{{{ids['e2']} TO {ids['e4']}}}") == {"e3"}
    assert found(storage, f"id:{ids['e6']}") == {"e6"}


def test_dates_without_a_zone_are_read_in_the_callers_zone(
    store: tuple[Storage, dict[str, int]],
) -> None:
    """bfauditlog reads dates in the user's time zone: in Tokyo (UTC+9), the 6th of March
    begins at 15:00 UTC on the 5th, so it holds e4 but not e3 (23:59 UTC on the 5th)...
    and in Los Angeles the 5th ends at 08:00 UTC on the 6th, so it holds both."""
    storage, _ = store
    tokyo = parse_query("timestamp:2024/03/06", now_ms=NOW_MS, tz=zone("Asia/Tokyo"))
    assert {orjson.loads(r.doc)["uid"] for r in storage.search(tokyo, limit=10).events} == {
        "e3",
        "e4",
    }
    la = parse_query("timestamp:2024/03/05", now_ms=NOW_MS, tz=zone("America/Los_Angeles"))
    assert {orjson.loads(r.doc)["uid"] for r in storage.search(la, limit=10).events} == {"e3", "e4"}


@pytest.mark.parametrize(
    ("query", "column", "words"),
    [
        ("foo:bar", 1, "unknown field 'foo'"),
        ("actoin:x", 1, "did you mean action"),
        ("action:x AND", 13, "unexpected end"),
        ("action:x OR OR y", 13, "unexpected 'OR'"),
        ('action:"unterminated', 8, "unterminated quote"),
        ("id:abc", 4, "id needs an integer"),
        ("level:HIGH", 7, "level is one of OFF, BASE, ADVANCED, FULL"),
        ("action:a\x00b", 9, "control characters"),
        ("author:x AND timestamp:yesterday", 24, "is not a time"),
        ("action:/re.*/", 8, "regular expressions are not supported"),
        ("action:x~", 8, "fuzzy"),
        ("*admin", 1, "wildcard in a bare term"),
        ("source:10.0.0.0/33", 8, "is not a network"),
        ("[1 TO 2]", 1, "a range needs a field"),
        ("author:[a TO b]", 8, "author takes no ranges"),
        ("ioLevel:abc", 9, "ioLevel needs an integer"),
        ("id:a*", 4, "id takes no wildcards"),
        ("timestamp:[now-1x TO now]", 12, "not date math"),
        ("timestamp:2024/02/30", 11, "not a valid date"),
    ],
)
def test_bad_queries_name_the_column(query: str, column: int, words: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query, now_ms=NOW_MS)
    assert caught.value.column == column, caught.value.message
    assert words in caught.value.message
    assert caught.value.http_status == 400 and caught.value.exit_code == 2


def test_a_blank_query_matches_everything() -> None:
    assert parse_query("   ") == MatchAll()


_TOKENS = st.sampled_from(
    [
        "action:",
        "author:",
        "source:",
        "timestamp:",
        "id:",
        "level:",
        "ioLevel:",
        "snName:",
        "object:",
        "object.name:",
        "attr.x:",
        "changed.Level:",
        "audit.stamp:",
        "nofield:",
        "AND ",
        "OR ",
        "NOT ",
        "+",
        "-",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        " TO ",
        "*",
        "?",
        '"',
        "\\",
        "now-7d",
        "2024/03/01",
        "10.0.0.0/8",
        "alice",
        "Repo*",
        "5",
        "-3",
        "x y",
        "é",
        "'",
        " ",
        ":",
        "/",
        "~",
        "^",
        "%",
        "_",
        ";",
        "--",
        "\x00",
        "\u2028",
        "DROP TABLE events",
    ]
)


@settings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_TOKENS, max_size=12).map("".join))
def test_any_query_is_answered_or_rejected_with_a_column(
    store: tuple[Storage, dict[str, int]], query: str
) -> None:
    """Thousands of generated queries (over both stores): each either runs or raises a
    QuerySyntaxError naming a column inside the query; never a database error."""
    storage, _ = store
    try:
        node = parse_query(query, now_ms=NOW_MS)
    except QuerySyntaxError as exc:
        assert 1 <= exc.column <= len(query) + 1
        return
    storage.search(node, limit=5)
    storage.count(node)


def test_the_cidr_function_runs_in_parallel_postgres_plans(pg_url: str) -> None:
    """tk_inet() catches bad casts in a subtransaction, which parallel queries refuse; the
    function must keep its queries serial (a 1M-event store plans in parallel)."""
    import psycopg

    from tests.conftest import _empty_postgres

    _empty_postgres(pg_url)
    storage = open_storage(pg_url)
    try:
        storage.append([batch(storage, *EVENTS)])
    finally:
        storage.close()
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("SET force_parallel_mode = on")
        count = con.execute("SELECT count(*) FROM events e WHERE tk_inet(e.source) <<="
                            " '2001:db8::/32'::inet OR tk_inet(e.source) <<= '10.0.0.0/8'")
        assert count.fetchone() == (2,)
