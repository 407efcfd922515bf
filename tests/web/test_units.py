"""The web UI's pure parts: the filter and its URL, the chart's windows, the escaping of
values and links, the CSRF tokens."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trailkeeper.query.ast import And, Compare, In, MatchAll, Text
from trailkeeper.web import chart, csrf
from trailkeeper.web.events import link, reveal
from trailkeeper.web.filters import ALL, CUSTOM, LogFilter
from trailkeeper.web.login import safe_next

NOW = 1_717_200_000_000


def _round_trip(view: LogFilter) -> LogFilter:
    query = view.query_string()
    return LogFilter.from_params(parse_qsl(urlsplit(query).query, keep_blank_values=True))


def test_a_view_survives_its_url() -> None:
    view = LogFilter(range=CUSTOM, since="2024-05-01", until="now", tz="Europe/Berlin",
                     categories=("Repositories", "A & B"), actions=("Repository created",),
                     authors=("12",), objects=("REPOSITORY,7", "plat api"),
                     object_type="REPOSITORY", areas=("SECURITY",), levels=("FULL",),
                     search="failed login", q='action:"x" AND object.type:PROJECT', limit=25,
                     alert=4)
    assert _round_trip(view) == view
    assert LogFilter().query_string() == ""


@given(st.lists(st.tuples(st.sampled_from(
    ["range", "from", "to", "category", "action", "author", "object", "area", "level",
     "search", "q", "limit", "alert", "tz", "object_type", "other"]), st.text(max_size=30)),
    max_size=12))
def test_any_parameters_read_without_raising_and_read_back_the_same(
        params: list[tuple[str, str]]) -> None:
    view = LogFilter.from_params(params)
    assert _round_trip(view).but() == view.but()


def test_dates_without_a_range_mean_a_custom_range_and_presets_ignore_them() -> None:
    assert LogFilter.from_params([("from", "2024-05-01")]).range == CUSTOM
    view = LogFilter.from_params([("range", "7d"), ("from", "2024-05-01")])
    assert (view.range, view.since) == ("7d", "")
    assert LogFilter.from_params([("range", "fortnight")]).problems == {
        "range": "Unknown time range 'fortnight'"}
    assert LogFilter.from_params([("range", "fortnight")]).range == ALL


def test_the_view_compiles_to_the_query_ast() -> None:
    view = LogFilter(range="1h", categories=("Repositories",), search="Failed  LOGIN")
    compiled = view.where(now_ms=NOW, resolved=[In("author.id", ("7",))])
    assert compiled.where == And((
        Compare("timestamp", ">=", NOW - 3_600_000), In("category", ("Repositories",)),
        Text(("failed", "login"), match_all=True), In("author.id", ("7",))))
    assert (compiled.start_ms, compiled.end_ms) == (NOW - 3_600_000, NOW + 1)
    assert LogFilter().where(now_ms=NOW).where == MatchAll()


def test_problems_name_their_field() -> None:
    compiled = LogFilter(range=CUSTOM, since="2024-13-45", until="2024-01-01", q="a:(",
                         tz="Mars/Olympus").where(now_ms=NOW)
    assert set(compiled.problems.fields) == {"from", "tz"}
    assert compiled.problems.query is not None and compiled.problems.query.column == 4
    backwards = LogFilter(range=CUSTOM, since="2024-02-01", until="2024-01-01").where(
        now_ms=NOW)
    assert backwards.problems.fields == {"to": "The end of the time range is before its start"}


@pytest.mark.parametrize(("span_ms", "step", "bars"), [
    (3_600_000, chart.MINUTE, 60), (86_400_000, 30 * chart.MINUTE, 48),
    (21 * chart.DAY, 12 * chart.HOUR, 42), (3 * 365 * chart.DAY, 30 * chart.DAY, 37),
    (1, chart.MINUTE, 1)])
def test_windows_are_round_and_at_most_61(span_ms: int, step: int, bars: int) -> None:
    windows = chart.windows(NOW + 123, NOW + 123 + span_ms)
    assert windows.step_ms == step
    assert windows.start_ms % step == 0 and windows.start_ms <= NOW + 123
    assert windows.end_ms >= NOW + 123 + span_ms
    assert windows.count <= chart.MAX_BARS and abs(windows.count - bars) <= 1


def test_bars_scale_to_the_peak_and_link_their_window() -> None:
    windows = chart.Windows(0, chart.HOUR, 3)
    drawn = chart.build(windows, [0, 5, 10], lambda a, b: f"?from={a}&to={b}")
    assert [b.height for b in drawn.bars] == [0, 60, 120]
    assert drawn.bars[0].href is None
    assert drawn.bars[1].href == "?from=1970-01-01T01:00:00Z&to=1970-01-01T01:59:59.999Z"
    assert drawn.bars[2].label == "1970-01-01 02:00 to 1970-01-01 03:00 UTC: 10 events"
    assert (drawn.total, drawn.peak, drawn.step) == (15, 10, "1 hour")


def test_reveal_escapes_and_shows_hidden_characters() -> None:
    assert str(reveal("<b>&\"'")) == "&lt;b&gt;&amp;&#34;&#39;"
    shown = str(reveal("a\u202eb\u2028c\u200bd"))
    assert "\u202e" not in shown and "\u2028" not in shown and "\u200b" not in shown
    assert shown.count('class="ctl"') == 3 and "U+202E" in shown


@pytest.mark.parametrize(("uri", "href"), [
    ("https://bitbucket.example.com/users/alice", "https://bitbucket.example.com/users/alice"),
    ("http://h:7990/x?y=1", "http://h:7990/x?y=1"),
    ("javascript:alert(1)", None), ("JavaScript:alert(1)", None), (" javascript:x", None),
    ("data:text/html,<script>", None), ("//evil.example/", None), ("/relative", None),
    ("https://a b", None), ("https://h/\u202e", None), ("", None), (None, None)])
def test_only_http_uris_become_links(uri: str | None, href: str | None) -> None:
    assert link(uri) == href


def test_csrf_tokens_depend_on_the_session_and_compare_strictly() -> None:
    assert csrf.token_for("a") == csrf.token_for("a") != csrf.token_for("b")
    assert csrf.matches(csrf.token_for("a"), csrf.token_for("a"))
    assert not csrf.matches(csrf.token_for("a"), None)
    assert not csrf.matches(None, None)
    assert not csrf.matches("", "")


@pytest.mark.parametrize(("target", "where"), [
    ("/audit/?q=x", "/audit/?q=x"), ("/audit/settings", "/audit/settings"),
    ("https://evil.example/audit/", "/audit/"), ("//evil.example", "/audit/"),
    ("/audit/\\evil", "/audit/"), ("/auditx", "/audit/"), ("/audit/\r\nSet-Cookie:", "/audit/"),
    (None, "/audit/")])
def test_after_sign_in_only_pages_of_the_ui(target: str | None, where: str) -> None:
    assert safe_next("/audit", target) == where


def test_too_many_or_too_long_values_are_problems_not_silently_dropped() -> None:
    many = LogFilter.from_params([("category", f"c{i}") for i in range(201)])
    assert many.problems == {"category": "At most 200 values of category at a time"}
    long = LogFilter.from_params([("q", "x" * 10_001)])
    assert long.problems == {"q": "The q is longer than 10,000 characters"} and long.q == ""
    assert long.where(now_ms=NOW).problems
