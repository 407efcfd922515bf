"""The streaming correlation engine: Sigma correlation rules parsed by pySigma, fed by hand.

The base rules' matches are decided by each test (the single-event engine is tested apart);
the events are file-shape dicts and time is event time in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule

from trailkeeper.detection.correlation import (
    MAX_HIT_EVENT_IDS,
    CorrelationError,
    CorrelationHit,
    Correlator,
    usable,
)
from trailkeeper.detection.model import LoadedCorrelation, LoadedRule

MINUTE = 60_000

BASE_RULES = """
title: Failed login
name: failed_login
logsource: {product: bitbucket, service: audit}
detection:
  sel: {auditType.action: Login failed}
  condition: sel
---
title: Successful login
name: successful_login
logsource: {product: bitbucket, service: audit}
detection:
  sel: {auditType.action: Login succeeded}
  condition: sel
---
title: Token created
name: token_created
logsource: {product: bitbucket, service: audit}
detection:
  sel: {auditType.action: Token created}
  condition: sel
---
title: Repository deleted
name: repo_deleted
logsource: {product: bitbucket, service: audit}
detection:
  sel: {auditType.action: Repository deleted}
  condition: sel
"""


class Rules:
    """Base rules and correlations loaded from YAML the way the loader does."""

    def __init__(self, correlations_yaml: str) -> None:
        collection = SigmaCollection.from_yaml(BASE_RULES + "---\n" + correlations_yaml)
        collection.resolve_rule_references()
        self.rules: dict[str, LoadedRule] = {}
        sigma_correlations: list[SigmaCorrelationRule] = []
        for rule in collection:
            if isinstance(rule, SigmaRule):
                assert rule.name is not None
                self.rules[rule.name] = LoadedRule(id=rule.name, title=rule.title, sigma=rule,
                                                   name=rule.name)
            else:
                assert isinstance(rule, SigmaCorrelationRule)
                sigma_correlations.append(rule)
        # an inner correlation raises no alert of its own unless the outer says generate: true
        quiet = {ref.reference for c in sigma_correlations if not c.generate
                 for ref in c.referenced_rules}
        self.correlations = [
            LoadedCorrelation(id=c.name or str(c.id), title=c.title, sigma=c, name=c.name,
                              generate=(c.name not in quiet and str(c.id) not in quiet))
            for c in sigma_correlations]

    def __getitem__(self, name: str) -> LoadedRule:
        return self.rules[name]

    def correlator(self, **limits: int) -> Correlator:
        return Correlator(self.correlations, **limits)


def event(user: str | None = "alice", action: str = "Login failed", **extra: Any) -> dict[
        str, Any]:
    doc: dict[str, Any] = {"auditType": {"action": action, "category": "Authentication"},
                           "source": "10.0.0.1", **extra}
    if user is not None:
        doc["author"] = {"name": user, "type": "NORMAL"}
    return doc


Step = tuple[Sequence[LoadedRule], dict[str, Any], int, int]  # matched, event, id, time


def run(correlator: Correlator, steps: Iterable[Step]) -> list[tuple[int, CorrelationHit]]:
    """(event id, hit) for every hit, in order."""
    return [(event_id, hit) for matched, doc, event_id, ts in steps
            for hit in correlator.observe(matched, doc, event_id, ts)]


def failed_logins(rules: Rules, times_ms: Sequence[int], user: str = "alice",
                  first_id: int = 1) -> list[Step]:
    return [([rules["failed_login"]], event(user), first_id + i, ts)
            for i, ts in enumerate(times_ms)]


def count_rule(condition: str, timespan: str = "10m", group_by: str = "[author.name]") -> Rules:
    return Rules(f"""
title: Many failed logins
name: many_failed
correlation:
  type: event_count
  rules: [failed_login]
  group-by: {group_by}
  timespan: {timespan}
  condition: {{{condition}}}
level: high
""")


# -- event_count ---------------------------------------------------------------------------


def test_event_count_fires_on_the_event_that_reaches_the_threshold() -> None:
    """Five failed logins of one user within ten minutes raise one hit, at the fifth."""
    rules = count_rule("gte: 5")
    hits = run(rules.correlator(), failed_logins(rules, [i * MINUTE for i in range(5)]))
    assert [event_id for event_id, _ in hits] == [5]
    hit = hits[0][1]
    assert hit.correlation is rules.correlations[0]
    assert hit.group == {"author.name": "alice"}
    assert hit.event_ids == (1, 2, 3, 4, 5)
    assert (hit.first_ms, hit.last_ms) == (0, 4 * MINUTE)


def test_event_count_below_the_threshold_does_not_fire() -> None:
    """Four failed logins are not five."""
    rules = count_rule("gte: 5")
    assert run(rules.correlator(), failed_logins(rules, [i * MINUTE for i in range(4)])) == []


def test_events_of_other_rules_are_not_counted() -> None:
    """Only the referenced rules' matches count; unmatched events are ignored."""
    rules = count_rule("gte: 2")
    correlator = rules.correlator()
    steps: list[Step] = [([rules["failed_login"]], event(), 1, 0),
                         ([rules["successful_login"]], event(action="Login succeeded"), 2, 1),
                         ([], event(), 3, 2)]
    assert run(correlator, steps) == []
    assert run(correlator, failed_logins(rules, [3], first_id=4))[0][1].event_ids == (1, 4)


def test_an_event_matching_two_referenced_rules_counts_once() -> None:
    """event_count counts events, not rule matches."""
    rules = Rules("""
title: Login noise
name: noise
correlation:
  type: event_count
  rules: [failed_login, successful_login]
  group-by: [author.name]
  timespan: 10m
  condition: {gte: 2}
""")
    both = [rules["failed_login"], rules["successful_login"]]
    correlator = rules.correlator()
    assert correlator.observe(both, event(), 1, 0) == []
    assert correlator.observe(both, event(), 2, 1)[0].event_ids == (1, 2)


def test_groups_are_counted_separately() -> None:
    """Three failed logins of alice and two of bob do not add up to five."""
    rules = count_rule("gte: 4")
    steps = [([rules["failed_login"]], event("alice" if i % 2 else "bob"), i, i * 1000)
             for i in range(1, 6)]
    assert run(rules.correlator(), steps) == []


def test_group_keys_ignore_case_and_report_the_first_spelling() -> None:
    """'Alice' and 'alice' are one group, reported as first seen."""
    rules = count_rule("gte: 2")
    steps: list[Step] = [([rules["failed_login"]], event("Alice"), 1, 0),
                         ([rules["failed_login"]], event("alice"), 2, 1)]
    [(_, hit)] = run(rules.correlator(), steps)
    assert hit.group == {"author.name": "Alice"}


def test_several_group_by_fields_are_anded() -> None:
    """The same user from two sources forms two groups."""
    rules = count_rule("gte: 2", group_by="[author.name, source]")
    steps: list[Step] = [([rules["failed_login"]], event(source="10.0.0.1"), 1, 0),
                         ([rules["failed_login"]], event(source="10.0.0.2"), 2, 1)]
    correlator = rules.correlator()
    assert run(correlator, steps) == []
    [(_, hit)] = run(correlator, [([rules["failed_login"]], event(source="10.0.0.2"), 3, 2)])
    assert hit.group == {"author.name": "alice", "source": "10.0.0.2"}
    assert hit.event_ids == (2, 3)


def test_a_missing_group_field_is_the_empty_group() -> None:
    """Events without the group-by field are grouped together under ''."""
    rules = count_rule("gte: 2")
    steps: list[Step] = [([rules["failed_login"]], event(None), 1, 0),
                         ([rules["failed_login"]], event(None), 2, 1)]
    [(_, hit)] = run(rules.correlator(), steps)
    assert hit.group == {"author.name": ""}


def test_the_group_is_spelled_as_the_hits_earliest_event() -> None:
    """Once 'Alice' has left the window, the hit reports 'alice' (a replay would too)."""
    rules = count_rule("gte: 2")
    steps: list[Step] = [([rules["failed_login"]], event("Alice"), 1, 0),
                         ([rules["failed_login"]], event("alice"), 2, 2 * MINUTE),
                         ([rules["failed_login"]], event("ALICE"), 3, 11 * MINUTE)]
    hits = run(rules.correlator(), steps)
    assert [(event_id, h.group["author.name"]) for event_id, h in hits] == [
        (2, "Alice"), (3, "alice")]


def test_group_by_an_array_field_takes_the_first_element_that_has_it() -> None:
    """affectedObjects.name groups by the first affected object with a name."""
    rules = count_rule("gte: 2", group_by="[affectedObjects.name]")
    objects = [{"type": "REPOSITORY"}, {"type": "REPOSITORY", "name": "Core"},
               {"type": "PROJECT", "name": "Platform"}]
    steps: list[Step] = [
        ([rules["failed_login"]], event(affectedObjects=objects), 1, 0),
        ([rules["failed_login"]], event(affectedObjects=[{"name": "core"}]), 2, 1)]
    [(_, hit)] = run(rules.correlator(), steps)
    assert hit.group == {"affectedObjects.name": "Core"}


def test_no_group_by_counts_all_events_together() -> None:
    """Without group-by every matching event is in one window."""
    rules = Rules("""
title: Any failed logins
name: any_failed
correlation: {type: event_count, rules: [failed_login], timespan: 1m, condition: {gte: 2}}
""")
    steps: list[Step] = [([rules["failed_login"]], event("a"), 1, 0),
                         ([rules["failed_login"]], event("b"), 2, 1)]
    [(_, hit)] = run(rules.correlator(), steps)
    assert hit.group == {}


# -- windows -------------------------------------------------------------------------------


def test_the_window_includes_an_event_exactly_one_timespan_old() -> None:
    """With a 10m timespan, events at 0 and at 10m are in one window."""
    rules = count_rule("gte: 2")
    hits = run(rules.correlator(), failed_logins(rules, [0, 10 * MINUTE]))
    assert [h.event_ids for _, h in hits] == [(1, 2)]


def test_eviction_keeps_the_event_exactly_one_timespan_old() -> None:
    """When older events slide out, the one exactly a timespan old stays."""
    rules = count_rule("gte: 4")
    hits = run(rules.correlator(), failed_logins(rules, [0, MINUTE, 5 * MINUTE, 11 * MINUTE,
                                                         11 * MINUTE]))
    assert [(event_id, h.event_ids) for event_id, h in hits] == [(5, (2, 3, 4, 5))]


def test_the_window_excludes_an_event_older_than_the_timespan() -> None:
    """Events at 0 and at 10m plus 1 ms are not in one window."""
    rules = count_rule("gte: 2")
    assert run(rules.correlator(), failed_logins(rules, [0, 10 * MINUTE + 1])) == []


def test_windows_slide_instead_of_using_fixed_buckets() -> None:
    """Four events in minute 9 and four in minute 11 are five within 10m at the fifth."""
    rules = count_rule("gte: 5")
    times = [9 * MINUTE + s * 1000 for s in (0, 10, 20, 30)]
    times += [11 * MINUTE + s * 1000 for s in (0, 10, 20, 30)]
    hits = run(rules.correlator(), failed_logins(rules, times))
    assert [event_id for event_id, _ in hits] == [5, 6, 7, 8]
    assert hits[0][1].event_ids == (1, 2, 3, 4, 5)
    assert (hits[0][1].first_ms, hits[0][1].last_ms) == (times[0], times[4])


def test_old_events_slide_out_of_the_window() -> None:
    """Four events at minute 0 and four at minute 11 never make five within 10m."""
    rules = count_rule("gte: 5")
    times = [s * 1000 for s in (0, 10, 20, 30)] + [11 * MINUTE + s * 1000 for s in (0, 10, 20, 30)]
    assert run(rules.correlator(), failed_logins(rules, times)) == []


def test_a_late_event_inside_the_window_counts() -> None:
    """An event that arrives after newer ones but lies in their window is counted."""
    rules = count_rule("gte: 3")
    hits = run(rules.correlator(), failed_logins(rules, [100 * MINUTE, 105 * MINUTE,
                                                         97 * MINUTE]))
    assert [event_id for event_id, _ in hits] == [3]
    assert (hits[0][1].first_ms, hits[0][1].last_ms) == (97 * MINUTE, 105 * MINUTE)


def test_a_late_event_older_than_the_window_is_not_counted() -> None:
    """An event more than a timespan older than the newest of its group is dropped."""
    rules = count_rule("gte: 3")
    correlator = rules.correlator()
    assert run(correlator, failed_logins(rules, [100 * MINUTE, 101 * MINUTE, 80 * MINUTE])) == []
    [(_, hit)] = run(correlator, failed_logins(rules, [102 * MINUTE], first_id=4))
    assert hit.event_ids == (1, 2, 4)


def test_the_window_is_kept_after_a_hit() -> None:
    """Every later event that enters the window while the condition holds is a hit again."""
    rules = count_rule("gte: 3")
    correlator = rules.correlator()
    hits = run(correlator, failed_logins(rules, [0, MINUTE, 2 * MINUTE, 3 * MINUTE]))
    assert [(event_id, h.event_ids, h.first_ms, h.last_ms) for event_id, h in hits] == [
        (3, (1, 2, 3), 0, 2 * MINUTE), (4, (1, 2, 3, 4), 0, 3 * MINUTE)]
    # at 12m the window [2m, 12m] holds events 3, 4 and 5: still three
    [(_, hit)] = run(correlator, failed_logins(rules, [12 * MINUTE], first_id=5))
    assert (hit.event_ids, hit.first_ms) == ((3, 4, 5), 2 * MINUTE)
    # at 22m plus 1 ms the window holds that event alone: no hit
    assert run(correlator, failed_logins(rules, [22 * MINUTE + 1], first_id=6)) == []


def test_a_burst_hits_on_every_event_from_the_threshold_on() -> None:
    """25 failed logins with gte: 10 are hits at the 10th to the 25th, one group throughout."""
    rules = count_rule("gte: 10")
    hits = run(rules.correlator(), failed_logins(rules, [i * 1000 for i in range(25)]))
    assert [event_id for event_id, _ in hits] == list(range(10, 26))
    assert {tuple(h.group.items()) for _, h in hits} == {(("author.name", "alice"),)}
    assert hits[-1][1].event_ids == tuple(range(1, 26))


@pytest.mark.parametrize(("condition", "firing"), [
    ("gt: 2", [3, 4, 5, 6]), ("eq: 2", [2]), ("lte: 1", [1]), ("lt: 1", []),
    ("neq: 1", [2, 3, 4, 5, 6]),
])
def test_each_condition_operator_is_checked_after_every_event(condition: str,
                                                              firing: list[int]) -> None:
    """gt/gte/eq/neq/lt/lte compare the window's count right after each event."""
    rules = count_rule(condition)
    hits = run(rules.correlator(), failed_logins(rules, [i * 1000 for i in range(6)]))
    assert [event_id for event_id, _ in hits] == firing


# -- value_count ---------------------------------------------------------------------------


VALUE_COUNT = """
title: Logins from many places
name: many_sources
correlation:
  type: value_count
  rules: [failed_login, successful_login]
  group-by: [author.name]
  timespan: 1h
  condition: {gte: 3, field: source}
"""


def test_value_count_fires_on_the_third_distinct_value() -> None:
    """Logins from three sources within an hour are a hit; repeats do not count."""
    rules = Rules(VALUE_COUNT)
    sources = ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2", "10.0.0.3"]
    steps = [([rules["failed_login"]], event(source=s), i, i * MINUTE)
             for i, s in enumerate(sources, 1)]
    hits = run(rules.correlator(), steps)
    assert [event_id for event_id, _ in hits] == [5]
    assert hits[0][1].event_ids == (1, 2, 3, 4, 5)


def test_value_count_compares_values_casefolded_and_ignores_missing_values() -> None:
    """'HOST-A' and 'host-a' are one value; an event without the field adds none."""
    rules = Rules(VALUE_COUNT)
    steps: list[Step] = [([rules["failed_login"]], event(source="HOST-A"), 1, 0),
                         ([rules["failed_login"]], event(source="host-a"), 2, 1),
                         ([rules["failed_login"]], {"author": {"name": "alice"}}, 3, 2),
                         ([rules["failed_login"]], event(source="host-b"), 4, 3)]
    correlator = rules.correlator()
    assert run(correlator, steps) == []
    assert correlator.observe([rules["failed_login"]], event(source="host-c"), 5, 4) != []


def test_value_count_forgets_values_that_left_the_window() -> None:
    """A value seen more than a timespan ago is no longer counted."""
    rules = Rules(VALUE_COUNT)
    steps = [([rules["failed_login"]], event(source=s), i, t)
             for i, (s, t) in enumerate([("a", 0), ("b", 30 * MINUTE), ("c", 61 * MINUTE)], 1)]
    assert run(rules.correlator(), steps) == []


# -- temporal ------------------------------------------------------------------------------


TEMPORAL = """
title: Token then deletion
name: token_and_delete
correlation:
  type: temporal
  rules: [token_created, repo_deleted]
  group-by: [author.name]
  timespan: 30m
"""


def test_temporal_fires_when_every_rule_matched_in_the_window_in_any_order() -> None:
    """A deletion then a token creation by one user within 30m is a hit."""
    rules = Rules(TEMPORAL)
    steps: list[Step] = [([rules["repo_deleted"]], event(action="Repository deleted"), 1, 0),
                         ([rules["repo_deleted"]], event(action="Repository deleted"), 2, 1000),
                         ([rules["token_created"]], event(action="Token created"), 3, 20 * MINUTE)]
    [(event_id, hit)] = run(rules.correlator(), steps)
    assert event_id == 3
    assert hit.event_ids == (2, 3)  # the latest match of each rule
    assert (hit.first_ms, hit.last_ms) == (1000, 20 * MINUTE)


def test_temporal_needs_the_same_group() -> None:
    """Alice's token and Bob's deletion are not a hit."""
    rules = Rules(TEMPORAL)
    steps: list[Step] = [([rules["token_created"]], event("alice", "Token created"), 1, 0),
                         ([rules["repo_deleted"]], event("bob", "Repository deleted"), 2, 1)]
    assert run(rules.correlator(), steps) == []


def test_temporal_needs_the_rules_within_the_timespan() -> None:
    """A token 31 minutes before the deletion is too far apart."""
    rules = Rules(TEMPORAL)
    steps: list[Step] = [([rules["token_created"]], event(action="Token created"), 1, 0),
                         ([rules["repo_deleted"]], event(action="Repository deleted"), 2,
                          31 * MINUTE)]
    assert run(rules.correlator(), steps) == []


def test_temporal_repeats_of_one_rule_are_not_enough() -> None:
    """Many tokens without a deletion are not a hit."""
    rules = Rules(TEMPORAL)
    steps = [([rules["token_created"]], event(action="Token created"), i, i) for i in range(5)]
    assert run(rules.correlator(), steps) == []


def test_temporal_extended_condition_with_not() -> None:
    """'token_created and not repo_deleted' fires on a token unless a deletion is in the window."""
    rules = Rules("""
title: Token without deletion
name: token_only
correlation:
  type: temporal
  rules: [token_created, repo_deleted]
  group-by: [author.name]
  timespan: 30m
  condition: token_created and not repo_deleted
""")
    correlator = rules.correlator()
    steps: list[Step] = [([rules["repo_deleted"]], event("bob", "Repository deleted"), 1, 0),
                         ([rules["token_created"]], event("bob", "Token created"), 2, 1),
                         ([rules["token_created"]], event("alice", "Token created"), 3, 2)]
    hits = run(correlator, steps)
    assert [(event_id, h.group) for event_id, h in hits] == [(3, {"author.name": "alice"})]


def test_temporal_an_event_matching_two_rules_is_checked_once() -> None:
    """A token and then an event that is both a token and a deletion is one hit, not two."""
    rules = Rules(TEMPORAL)
    both = [rules["token_created"], rules["repo_deleted"]]
    correlator = rules.correlator()
    steps: list[Step] = [([rules["token_created"]], event(action="Token created"), 1, 0),
                         (both, event(), 2, 1), (both, event(), 3, 2)]
    hits = run(correlator, steps)
    assert [(event_id, h.event_ids) for event_id, h in hits] == [(2, (2,)), (3, (3,))]


def test_temporal_count_condition_counts_distinct_rules() -> None:
    """'gte: 2' of three rules fires once two different rules matched."""
    rules = Rules("""
title: Two of three
name: two_of_three
correlation:
  type: temporal
  rules: [token_created, repo_deleted, successful_login]
  group-by: [author.name]
  timespan: 30m
  condition: {gte: 2}
""")
    steps: list[Step] = [([rules["token_created"]], event(action="Token created"), 1, 0),
                         ([rules["token_created"]], event(action="Token created"), 2, 1),
                         ([rules["successful_login"]], event(action="Login succeeded"), 3, 2)]
    assert [event_id for event_id, _ in run(rules.correlator(), steps)] == [3]


# -- temporal_ordered ----------------------------------------------------------------------


ORDERED = """
title: Login, token, deletion
name: login_token_delete
correlation:
  type: temporal_ordered
  rules: [successful_login, token_created, repo_deleted]
  group-by: [author.name]
  timespan: 1h
"""


def ordered_step(rules: Rules, name: str, event_id: int, minute: int,
                 user: str = "alice") -> Step:
    return ([rules[name]], event(user, name), event_id, minute * MINUTE)


def test_temporal_ordered_fires_when_the_steps_come_in_order() -> None:
    """Login, then token, then deletion within an hour is a hit."""
    rules = Rules(ORDERED)
    steps = [ordered_step(rules, n, i, i) for i, n in
             enumerate(["successful_login", "token_created", "repo_deleted"], 1)]
    [(event_id, hit)] = run(rules.correlator(), steps)
    assert (event_id, hit.event_ids) == (3, (1, 2, 3))


def test_temporal_ordered_hits_again_with_the_latest_chain() -> None:
    """While a chain is in the window every event hits; the hit shows the newest chain."""
    rules = Rules(ORDERED)
    names = ["successful_login", "token_created", "repo_deleted", "token_created",
             "repo_deleted"]
    steps = [ordered_step(rules, n, i, i) for i, n in enumerate(names, 1)]
    hits = run(rules.correlator(), steps)
    assert [(event_id, h.event_ids, h.first_ms, h.last_ms) for event_id, h in hits] == [
        (3, (1, 2, 3), MINUTE, 3 * MINUTE), (4, (1, 2, 3), MINUTE, 3 * MINUTE),
        (5, (1, 4, 5), MINUTE, 5 * MINUTE)]


def test_temporal_ordered_in_the_wrong_order_does_not_fire() -> None:
    """Deletion, token, login is every rule, but backwards."""
    rules = Rules(ORDERED)
    steps = [ordered_step(rules, n, i, i) for i, n in
             enumerate(["repo_deleted", "token_created", "successful_login"], 1)]
    assert run(rules.correlator(), steps) == []


def test_temporal_ordered_enforces_the_order_of_every_step() -> None:
    """Login, deletion, token has the right first step only; a later deletion completes it."""
    rules = Rules(ORDERED)
    correlator = rules.correlator()
    steps = [ordered_step(rules, n, i, i) for i, n in
             enumerate(["successful_login", "repo_deleted", "token_created"], 1)]
    assert run(correlator, steps) == []
    [(_, hit)] = run(correlator, [ordered_step(rules, "repo_deleted", 4, 4)])
    assert hit.event_ids == (1, 3, 4)


def test_temporal_ordered_one_event_is_not_two_steps() -> None:
    """An event that matches two consecutive steps does not complete both."""
    rules = Rules(ORDERED)
    both = [rules["successful_login"], rules["token_created"]]
    correlator = rules.correlator()
    assert correlator.observe(both, event(), 1, 0) == []
    assert correlator.observe([rules["repo_deleted"]], event(), 2, 1) == []
    assert correlator.observe([rules["token_created"]], event(), 3, 2) == []
    assert correlator.observe([rules["repo_deleted"]], event(), 4, 3)[0].event_ids == (1, 3, 4)


def test_temporal_ordered_uses_event_time_for_late_events() -> None:
    """A token that arrives last but happened between login and deletion completes the chain."""
    rules = Rules(ORDERED)
    steps = [ordered_step(rules, "successful_login", 1, 0),
             ordered_step(rules, "repo_deleted", 2, 10),
             ordered_step(rules, "token_created", 3, 5)]
    [(event_id, hit)] = run(rules.correlator(), steps)
    assert (event_id, hit.event_ids, hit.last_ms) == (3, (1, 2, 3), 10 * MINUTE)


def test_temporal_ordered_needs_the_chain_within_the_timespan() -> None:
    """A login 61 minutes before the deletion is outside the hour."""
    rules = Rules(ORDERED)
    steps = [ordered_step(rules, "successful_login", 1, 0),
             ordered_step(rules, "token_created", 2, 30),
             ordered_step(rules, "repo_deleted", 3, 61)]
    assert run(rules.correlator(), steps) == []


def test_temporal_ordered_with_a_partial_condition_is_rejected() -> None:
    """Only 'every rule in order' is supported for temporal_ordered."""
    rules = Rules(ORDERED.replace("timespan: 1h", "timespan: 1h\n  condition: {gte: 2}"))
    with pytest.raises(ValueError, match=r"login_token_delete.*temporal_ordered"):
        rules.correlator()


# -- chaining, aliases, generate -----------------------------------------------------------


CHAINED = """
title: Multiple failed logins
name: multiple_failed_login
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [author.name]
  timespan: 10m
  condition: {gte: 3}
---
title: Successful login after multiple failed logins
name: brute_force_success
correlation:
  type: temporal_ordered
  rules: [multiple_failed_login, successful_login]
  group-by: [author.name]
  timespan: 1h
"""


def test_chained_failed_logins_then_success_fires_the_outer_correlation() -> None:
    """The Sigma spec's example: many failed logins, then a successful one, for one user."""
    rules = Rules(CHAINED)
    correlator = rules.correlator()
    steps = [*failed_logins(rules, [0, MINUTE, 2 * MINUTE]),
             ([rules["successful_login"]], event(action="Login succeeded"), 4, 30 * MINUTE)]
    hits = run(correlator, steps)
    assert [(event_id, h.correlation.name) for event_id, h in hits] == [
        (4, "brute_force_success")]  # the inner correlation does not generate
    hit = hits[0][1]
    assert hit.event_ids == (1, 2, 3, 4)
    assert hit.group == {"author.name": "alice"}
    assert (hit.first_ms, hit.last_ms) == (2 * MINUTE, 30 * MINUTE)


def test_chained_success_before_the_failed_logins_does_not_fire() -> None:
    """A successful login followed by many failed ones is not the pattern."""
    rules = Rules(CHAINED)
    steps = [([rules["successful_login"]], event(action="Login succeeded"), 1, 0),
             *failed_logins(rules, [MINUTE, 2 * MINUTE, 3 * MINUTE], first_id=2)]
    assert run(rules.correlator(), steps) == []


def test_chained_groups_stay_apart() -> None:
    """Bob's failed logins and Alice's success are not a brute force."""
    rules = Rules(CHAINED)
    steps = [*failed_logins(rules, [0, 1, 2], user="bob"),
             ([rules["successful_login"]], event("alice", "Login succeeded"), 4, 3)]
    assert run(rules.correlator(), steps) == []


def test_generate_true_returns_the_inner_hits_too() -> None:
    """With generate: true on the outer one, the inner correlation's hits are returned."""
    rules = Rules(CHAINED.replace("timespan: 1h", "timespan: 1h\n  generate: true"))
    steps = [*failed_logins(rules, [0, MINUTE, 2 * MINUTE]),
             ([rules["successful_login"]], event(action="Login succeeded"), 4, 30 * MINUTE)]
    hits = run(rules.correlator(), steps)
    assert [(event_id, h.correlation.name) for event_id, h in hits] == [
        (3, "multiple_failed_login"), (4, "brute_force_success")]


def test_aliases_group_rules_by_differently_named_fields() -> None:
    """A token created by alice and a repository deleted on alice's behalf are one group."""
    rules = Rules("""
title: Token then deletion for one user
name: token_and_delete_user
correlation:
  type: temporal
  rules: [token_created, repo_deleted]
  group-by: [user]
  timespan: 30m
  aliases:
    user:
      token_created: author.name
      repo_deleted: affectedObjects.name
""")
    deleted_for = {"affectedObjects": [{"type": "USER", "name": "ALICE"}]}
    correlator = rules.correlator()
    steps: list[Step] = [
        ([rules["token_created"]], event("alice", "Token created"), 1, 0),
        ([rules["repo_deleted"]], event("admin", "Repository deleted", **deleted_for), 2, 1)]
    [(_, hit)] = run(correlator, steps)
    assert hit.group == {"user": "alice"}
    assert hit.event_ids == (1, 2)
    deleted_for_bob = {"affectedObjects": [{"type": "USER", "name": "bob"}]}
    steps = [([rules["token_created"]], event("alice", "Token created"), 3, 2),
             ([rules["repo_deleted"]], event("alice", "Repository deleted", **deleted_for_bob),
              4, 3)]
    assert run(rules.correlator(), steps) == []


def test_an_event_count_over_a_correlation_counts_its_hits() -> None:
    """The inner correlation hits on every event while its condition holds; each one counts."""
    rules = Rules("""
title: Multiple failed logins
name: multiple_failed_login
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [author.name]
  timespan: 10m
  condition: {gte: 3}
---
title: Failed logins keep coming
name: sustained
correlation:
  type: event_count
  rules: [multiple_failed_login]
  group-by: [author.name]
  timespan: 1h
  condition: {gte: 3}
  generate: true
""")
    hits = run(rules.correlator(), failed_logins(rules, [i * MINUTE for i in range(6)]))
    assert [(event_id, h.correlation.name) for event_id, h in hits] == [
        (3, "multiple_failed_login"), (4, "multiple_failed_login"),
        (5, "multiple_failed_login"), (5, "sustained"),
        (6, "multiple_failed_login"), (6, "sustained")]
    assert hits[3][1].event_ids == (1, 2, 3, 4, 5)


def test_referenced_ids_and_replay_span_cover_chains() -> None:
    """The chain needs the inner rules and the sum of the timespans for a warm-up replay."""
    correlator = Rules(CHAINED).correlator()
    assert correlator.referenced_rule_ids() == {"failed_login", "multiple_failed_login",
                                                "successful_login"}
    assert correlator.max_timespan_ms == 70 * MINUTE


# -- limits and errors ---------------------------------------------------------------------


def test_least_recently_used_groups_are_evicted_beyond_max_groups() -> None:
    """With room for two groups, a third user evicts the idlest one and its count."""
    rules = count_rule("gte: 3")
    correlator = rules.correlator(max_groups=2)
    steps = [*failed_logins(rules, [0], user="alice", first_id=1),
             *failed_logins(rules, [1], user="bob", first_id=2),
             *failed_logins(rules, [2], user="alice", first_id=3),
             *failed_logins(rules, [3], user="carol", first_id=4)]  # evicts bob, not alice
    assert run(correlator, steps) == []
    assert correlator.evicted == 1
    assert correlator.state_size() == 3
    [(_, hit)] = run(correlator, failed_logins(rules, [4], user="alice", first_id=5))
    assert hit.event_ids == (1, 3, 5)
    # bob starts again from nothing (two more events are not three), evicting carol, now
    # the idlest group: alice's window is kept after her hit
    assert run(correlator, failed_logins(rules, [5, 6], user="bob", first_id=6)) == []
    assert correlator.evicted == 2
    assert correlator.state_size() == 5


def test_a_group_keeps_at_most_max_events_per_group_entries() -> None:
    """The oldest entries are dropped when a group is full."""
    rules = count_rule("lt: 0")  # never fires, so the window only grows
    correlator = rules.correlator(max_events_per_group=50)
    run(correlator, failed_logins(rules, list(range(200))))
    assert correlator.state_size() == 50


def test_value_count_state_is_bounded_too() -> None:
    """value_count holds at most max_events_per_group entries per group."""
    rules = Rules(VALUE_COUNT.replace("gte: 3", "gte: 40"))
    correlator = rules.correlator(max_events_per_group=40)
    steps = [([rules["failed_login"]], event(source=str(i % 30)), i, i) for i in range(500)]
    assert run(correlator, steps) == []
    assert correlator.state_size() == 40


def test_temporal_ordered_state_is_bounded_across_its_rules() -> None:
    """temporal_ordered keeps at most max_events_per_group entries over all its steps."""
    rules = Rules(ORDERED)
    correlator = rules.correlator(max_events_per_group=10)
    steps = [ordered_step(rules, ("token_created", "repo_deleted")[i % 2], i, 0)
             for i in range(100)]
    assert run(correlator, steps) == []
    assert correlator.state_size() == 10


def test_a_hit_carries_at_most_the_most_recent_event_ids() -> None:
    """Over a window of 1,500 events a hit lists the newest 1,000, by event time."""
    rules = count_rule("gte: 10")
    # ids 1..1500 at 100 ms steps; 1,501 arrives last but is the oldest event
    steps = [*failed_logins(rules, [10_000 + i * 100 for i in range(1500)]),
             *failed_logins(rules, [0], first_id=1501)]
    hits = run(rules.correlator(), steps)
    assert len(hits) == 1501 - 9
    event_id, last = hits[-1]
    assert event_id == 1501
    assert last.event_ids == tuple(range(501, 1501))
    assert (last.first_ms, last.last_ms) == (10_000 + 500 * 100, 10_000 + 1499 * 100)
    assert all(len(h.event_ids) <= MAX_HIT_EVENT_IDS == 1000 for _, h in hits)


def test_an_event_observed_twice_is_listed_once() -> None:
    """A hit's ids have no repeats even if the caller feeds one event twice."""
    rules = count_rule("gte: 2")
    steps = [*failed_logins(rules, [0, 1]), *failed_logins(rules, [1], first_id=1)]
    hits = run(rules.correlator(), steps)
    assert [h.event_ids for _, h in hits] == [(1, 2), (1, 2)]


def test_a_chained_hit_carries_at_most_the_most_recent_event_ids() -> None:
    """The outer hit over an inner one of 1,500 events keeps the newest 1,000 ids."""
    rules = Rules(CHAINED.replace("timespan: 1h", "timespan: 1h\n  generate: true"))
    steps = [*failed_logins(rules, [i * 100 for i in range(1500)]),
             ([rules["successful_login"]], event(action="Login succeeded"), 1501, 5 * MINUTE)]
    hits = run(rules.correlator(), steps)
    inner, (event_id, outer) = hits[-2][1], hits[-1]
    assert inner.event_ids == tuple(range(501, 1501))
    assert (event_id, outer.correlation.name) == (1501, "brute_force_success")
    assert outer.event_ids == tuple(range(502, 1502))
    assert (outer.first_ms, outer.last_ms) == (1499 * 100, 5 * MINUTE)


def test_a_threshold_above_the_group_limit_is_rejected() -> None:
    """A count no group can reach is an error, not a silent never."""
    with pytest.raises(ValueError, match=r"many_failed.*can never hold"):
        count_rule("gte: 11").correlator(max_events_per_group=10)


def test_reset_forgets_every_window() -> None:
    """After reset the same events start from nothing."""
    rules = count_rule("gte: 3")
    correlator = rules.correlator()
    run(correlator, failed_logins(rules, [0, 1]))
    assert correlator.state_size() == 2
    correlator.reset()
    assert correlator.state_size() == 0
    assert run(correlator, failed_logins(rules, [2], first_id=3)) == []


@pytest.mark.parametrize("kind", ["value_sum", "value_avg", "value_percentile", "value_median"])
def test_metric_correlations_are_rejected_naming_the_rule(kind: str) -> None:
    """value_sum and its kin are not supported."""
    rules = Rules(f"""
title: Big transfers
name: big_transfers
correlation:
  type: {kind}
  rules: [failed_login]
  group-by: [author.name]
  timespan: 1h
  condition: {{gte: 100, field: bytes}}
""")
    with pytest.raises(ValueError, match=f"big_transfers.*{kind} is not supported"):
        rules.correlator()


def test_a_reference_to_a_correlation_that_is_not_loaded_is_rejected() -> None:
    """The outer correlation alone cannot run."""
    rules = Rules(CHAINED)
    with pytest.raises(ValueError, match=r"multiple_failed_login.*not loaded"):
        Correlator(rules.correlations[1:])


def test_a_cycle_of_correlations_is_rejected() -> None:
    """Two correlations that refer to each other cannot be ordered."""
    rules = Rules("""
title: Ping
name: ping
correlation: {type: event_count, rules: [pong], timespan: 1m, condition: {gte: 1}}
---
title: Pong
name: pong
correlation: {type: event_count, rules: [ping], timespan: 1m, condition: {gte: 1}}
""")
    with pytest.raises(ValueError, match="cycle"):
        rules.correlator()


def test_usable_leaves_out_broken_correlations_and_those_built_on_them() -> None:
    """A metric correlation is reported, and so is the chain that needs it; the rest runs."""
    rules = Rules(CHAINED.replace("type: event_count", "type: value_sum")
                  .replace("condition: {gte: 3}", "condition: {gte: 3, field: bytes}")
                  + "---\n" + TEMPORAL)
    kept, problems = usable(rules.correlations)
    assert [c.name for c in kept] == ["token_and_delete"]
    assert [(p.correlation.name, p.problem) for p in problems] == [
        ("multiple_failed_login", "type value_sum is not supported"),
        ("brute_force_success", "refers to correlation 'multiple_failed_login', which is not "
                                "loaded")]
    assert all(isinstance(p, CorrelationError) for p in problems)
    Correlator(kept)


# -- determinism and window soundness ------------------------------------------------------


MIXED = "---\n".join([
    CHAINED.replace("gte: 3", "gte: 2"), VALUE_COUNT.replace("gte: 3", "gte: 2"), TEMPORAL,
    ORDERED, """
title: Bursts
name: bursts
correlation:
  type: event_count
  rules: [failed_login, token_created]
  group-by: [author.name]
  timespan: 5m
  condition: {gte: 3}
"""])
MIXED_RULES = Rules(MIXED)
NAMES = ["failed_login", "successful_login", "token_created", "repo_deleted"]

streams = st.lists(
    st.tuples(st.sampled_from(["alice", "bob", "Alice"]), st.sets(st.sampled_from(NAMES)),
              st.sampled_from(["a", "b", "c"]), st.integers(-10, 40)),
    max_size=80)


def as_steps(raw: list[tuple[str, set[str], str, int]]) -> list[Step]:
    steps: list[Step] = []
    clock = 0
    for i, (user, names, source, jitter_minutes) in enumerate(raw, 1):
        clock += 2 * MINUTE
        matched = [MIXED_RULES[n] for n in NAMES if n in names]
        steps.append((matched, event(user, source=source), i, clock - jitter_minutes * MINUTE))
    return steps


@settings(max_examples=150, deadline=None)
@given(streams)
def test_the_same_stream_gives_the_same_hits(raw: list[tuple[str, set[str], str, int]]) -> None:
    """Replaying a stream, into a fresh correlator or after reset, repeats every hit."""
    steps = as_steps(raw)
    correlator = MIXED_RULES.correlator(max_groups=2, max_events_per_group=20)
    first = run(correlator, steps)
    correlator.reset()
    assert run(correlator, steps) == first
    assert run(MIXED_RULES.correlator(max_groups=2, max_events_per_group=20), steps) == first


@settings(max_examples=150, deadline=None)
@given(streams)
def test_a_hit_never_spans_more_than_its_timespan(
        raw: list[tuple[str, set[str], str, int]]) -> None:
    """Every event of a (non-chained) hit lies within [last_ms - timespan, last_ms]."""
    steps = as_steps(raw)
    times = {event_id: ts for _, _, event_id, ts in steps}
    for _, hit in run(MIXED_RULES.correlator(), steps):
        if hit.correlation.name == "brute_force_success":
            continue  # its inner hits carry their own window
        span = hit.correlation.sigma.timespan.seconds * 1000
        assert hit.last_ms - span <= hit.first_ms <= hit.last_ms
        assert all(hit.first_ms <= times[i] <= hit.last_ms for i in hit.event_ids)
        if hit.correlation.name == "bursts":
            assert len(hit.event_ids) >= 3


# -- restarts ------------------------------------------------------------------------------


REPLAYED = MIXED + """---
title: Token and deletion
name: token_or_delete
correlation:
  type: temporal
  rules: [token_created, repo_deleted]
  group-by: [author.name]
  timespan: 20m
  condition: {gte: 1}
---
title: Tokens and deletions keep coming
name: token_or_delete_again
correlation:
  type: event_count
  rules: [token_or_delete]
  group-by: [author.name]
  timespan: 15m
  condition: {gte: 4}
  generate: true
---
title: Token without deletion
name: token_only
correlation:
  type: temporal
  rules: [token_created, repo_deleted]
  group-by: [author.name]
  timespan: 25m
  condition: token_created and not repo_deleted
"""
REPLAYED_RULES = Rules(REPLAYED)
# each correlation alone (a chain with its inner one), where the replayed span is exactly its
# own timespan, and all of them together
REPLAYED_SETS = [
    *([c] for c in REPLAYED_RULES.correlations
      if c.name not in {"multiple_failed_login", "brute_force_success", "token_or_delete",
                        "token_or_delete_again"}),
    [c for c in REPLAYED_RULES.correlations
     if c.name in {"multiple_failed_login", "brute_force_success"}],
    [c for c in REPLAYED_RULES.correlations
     if c.name in {"token_or_delete", "token_or_delete_again"}],
    REPLAYED_RULES.correlations]

in_order_events = st.lists(
    st.tuples(st.sampled_from(["alice", "bob", "Alice", "carol"]),
              st.sets(st.sampled_from(NAMES)), st.sampled_from(["a", "b", "c"]),
              st.integers(0, 7)),  # minutes after the previous event; 0 is a tie
    min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(before=in_order_events, after=in_order_events, max_events=st.sampled_from([4, 10_000]))
def test_replaying_the_last_max_timespan_after_a_restart_gives_the_same_hits(
        before: list[tuple[str, set[str], str, int]],
        after: list[tuple[str, set[str], str, int]], max_events: int) -> None:
    """A fresh correlator fed the events of the last max_timespan_ms before a restart
    (without alerting) then hits on the new events exactly as the uninterrupted one does."""
    steps: list[Step] = []
    clock = 0
    for i, (user, names, source, gap_minutes) in enumerate(before + after, 1):
        clock += gap_minutes * MINUTE
        matched = [REPLAYED_RULES[n] for n in NAMES if n in names]
        steps.append((matched, event(user, source=source), i, clock))
    history, new = steps[:len(before)], steps[len(before):]
    for correlations in REPLAYED_SETS:
        uninterrupted = Correlator(correlations, max_events_per_group=max_events)
        run(uninterrupted, history)
        expected = run(uninterrupted, new)

        restarted = Correlator(correlations, max_events_per_group=max_events)
        start = max(ts for *_, ts in history) - restarted.max_timespan_ms
        run(restarted, [step for step in history if step[3] >= start])
        assert run(restarted, new) == expected, [c.name for c in correlations]
