"""Sigma matching alone: events per second of `Engine.match` on one core.

Rules: the built-in rules plus ``--rules`` generated ones of realistic shape (most pin
``auditType.action``/``category`` to exact values with OR-lists; some add contains/startswith
on ``author.name`` or ``affectedObjects.name``; some have a ``not filter``; one in forty is a
keyword, regex or cidr rule on ``source`` that no index can narrow). Events: the demo generator's
Bitbucket-like mix, converted once to the matchable (file) shape before timing. Best of
``--repeat`` runs (the median is reported too). Target (issue 6): >= 200,000 events/s.

``live_path_events_per_s`` is what live detection costs ingest per event: from the stored
document (REST-shape JSON bytes, as `storage.rows.encode` writes it) through what
`Detector.document` and `Detector.process` do: ``orjson.loads``, set ``id``, `matchable`,
`Engine.match`.

Usage: ``.venv/bin/python bench/sigma_match.py [--events 200000] [--rules 200] [--repeat 3]``
"""

from __future__ import annotations

import gc
import itertools
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from benchlib import REPO_DIR, emit, log, machine, parser, target

from trailkeeper.demo import _KINDS, demo_events
from trailkeeper.detection.document import matchable
from trailkeeper.detection.engine import Engine
from trailkeeper.detection.rules import load_rules

TARGET = 200_000
BUILTIN = REPO_DIR / "src" / "trailkeeper" / "detection" / "builtin"

# Everyday actions (logins, repository access) are left out: rules watch for rarer things.
_ACTIONS = [k.type.action for k in _KINDS if k.weight < 2] + [
    "Security hook skipped", "User details exported", "Global permission granted",
    "Audit log configuration updated", "SSH settings changed", "Repository fork created",
    "Branch permission added", "Webhook created", "Personal access token deleted",
    "Project deleted", "Mirror server added", "Rate limit settings changed"]
_CATEGORIES = sorted({k.type.category for k in _KINDS} | {"Global administration", "Security"})


def _yaml_list(values: list[str], indent: int) -> str:
    pad = " " * indent
    return "".join(f"\n{pad}- '{v}'" for v in values)


def generated_rule(n: int, rng: random.Random) -> str:
    """One rule; the shape depends on ``n`` so the mix is fixed for a seed."""
    head = (f"title: Generated rule {n}\nid: 00000000-0000-4000-8000-{n:012d}\n"
            "status: test\nlogsource:\n    product: bitbucket\n    service: audit\n"
            f"level: {rng.choice(['low', 'medium', 'high'])}\ndetection:\n")
    shape = n % 20
    if n % 40 == 39:  # one in forty rules has no exact value to index on
        kind = (n // 40) % 3
        if kind == 0:
            return head + f"    keywords:\n        - 'evil-{n}'\n    condition: keywords\n"
        if kind == 1:
            return (head + f"    selection:\n        source|re: '^192\\.0\\.2\\.{n % 250}$'\n"
                    "    condition: selection\n")
        return (head + f"    selection:\n        source|cidr: '198.51.{n % 250}.0/24'\n"
                "    condition: selection\n")
    actions = rng.sample(_ACTIONS, rng.randint(1, 4))
    # Mostly actions no event has: real rule sets watch for rare things.
    actions = [a if rng.random() < 0.15 else f"{a} variant {n}" for a in actions]
    if shape < 10:
        body = f"    selection:\n        auditType.action:{_yaml_list(actions, 12)}\n"
        if shape % 2:
            body += f"        auditType.category: '{rng.choice(_CATEGORIES)}'\n"
        return head + body + "    condition: selection\n"
    if shape < 13:
        return (head + f"    selection:\n        auditType.category: '{rng.choice(_CATEGORIES)}'\n"
                f"        author.name|startswith:{_yaml_list(['adm', 'svc_', 'root'], 12)}\n"
                "    condition: selection\n")
    if shape < 16:
        return (head + f"    selection:\n        auditType.action:{_yaml_list(actions, 12)}\n"
                f"        affectedObjects.name|contains: '{rng.choice(['api', 'sec', 'deploy'])}'\n"
                "    filter:\n        author.name|startswith: 'svc_'\n"
                "    condition: selection and not filter\n")
    if shape < 19:
        return (head + f"    selection:\n        auditType.action:{_yaml_list(actions, 12)}\n"
                "    filter:\n        method: 'Git'\n    condition: selection and not filter\n")
    return (head + f"    selection:\n        auditType.action:{_yaml_list(actions, 12)}\n"
            "        method: 'REST'\n    condition: selection\n")


def timed(runs: int, body: Callable[[], int]) -> tuple[list[float], int]:
    """Seconds of each of ``runs`` calls of ``body`` (gc collected first), and what the
    fastest returned."""
    times: list[float] = []
    best_result = 0
    for _ in range(runs):
        gc.collect()
        began = time.perf_counter()
        result = body()
        elapsed = time.perf_counter() - began
        if not times or elapsed < min(times):
            best_result = result
        times.append(elapsed)
    return times, best_result


def main() -> None:
    p = parser(__doc__.split("\n", 1)[0])  # --backend and the rest are accepted, unused
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--rules", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for n in range(args.rules):
            (folder / f"rule_{n:04d}.yml").write_text(generated_rule(n, rng))
        loaded = load_rules([folder], builtin_dir=BUILTIN if BUILTIN.exists() else None)
    if loaded.errors:
        raise SystemExit(f"rules failed to load: {loaded.errors[:3]}")
    engine = Engine(loaded.rules)
    log(f"{len(loaded.rules)} rules, {len(engine.always)} without a witness, "
        f"{len(engine.unconditional)} evaluated for every event, indexed on "
        f"{engine.indexed_fields}, by prefix on {engine.prefix_fields}")
    log(f"building {args.events:,} demo events")
    rest = []
    for e in itertools.islice(demo_events(args.events, seed=7), args.events):
        doc = e.to_rest()
        doc.pop("id", None)
        rest.append(doc)
    stored = [orjson.dumps(doc) for doc in rest]  # what the store holds
    events = [matchable(doc) for doc in rest]
    match = engine.match

    def pre_parsed() -> int:
        found = 0
        for event in events:
            if match(event):
                found += 1
        return found

    def live() -> int:
        found = 0
        loads = orjson.loads
        for event_id, raw in enumerate(stored, 1):
            doc = loads(raw)
            doc["id"] = event_id
            if match(matchable(doc)):
                found += 1
        return found

    engine.evaluated = 0
    times, matches = timed(args.repeat, pre_parsed)
    evaluated = engine.evaluated // args.repeat
    best = min(times)
    rate = round(len(events) / best)
    median_rate = round(len(events) / statistics.median(times))
    log(f"{rate:,} events/s (median {median_rate:,})")
    live_times, live_matches = timed(args.repeat, live)
    if live_matches != matches:
        raise SystemExit(f"the live path matched {live_matches} events, pre-parsed {matches}")
    live_rate = round(len(stored) / min(live_times))
    live_median = round(len(stored) / statistics.median(live_times))
    log(f"live path: {live_rate:,} events/s (median {live_median:,})")
    emit({"benchmark": "sigma_match", "machine": machine("none", ""),
          "events": len(events), "rules": len(loaded.rules),
          "rules_without_witness": len(engine.always),
          "rules_evaluated_for_every_event": len(engine.unconditional),
          "indexed_fields": engine.indexed_fields,
          "prefix_indexed_fields": engine.prefix_fields,
          "events_per_s": rate, "events_per_s_median": median_rate,
          "us_per_event": round(best / len(events) * 1e6, 3),
          "live_path_events_per_s": live_rate, "live_path_events_per_s_median": live_median,
          "live_path_us_per_event": round(min(live_times) / len(stored) * 1e6, 3),
          "rules_evaluated_per_event": round(evaluated / len(events), 3),
          "events_matched": matches,
          "targets": [target("events/s matched against all rules", rate, TARGET,
                             at_least=True)]})


if __name__ == "__main__":
    main()
