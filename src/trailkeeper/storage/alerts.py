"""The alert tables, as both backends read and write them (one implementation, two dialects).

Each backend hands these functions a `Run` and its `Dialect` (`trailkeeper.storage.dialect`),
so the statements are the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from trailkeeper.alerts.model import MAX_EVENT_IDS, AlertQuery, AlertRecord, NewAlert
from trailkeeper.storage.dialect import POSTGRES, SQLITE, Dialect, Run

__all__ = ["POSTGRES", "SQLITE", "Dialect", "Run"]  # re-exported for the backends

_COLUMNS = ("id, rule_id, rule_title, level, tags, ts, last_ms, created_ms, event_ids,"
            " group_json, count, status, origin, acknowledged_by, acknowledged_ms")
# Ids per IN list (well under both backends' limits on parameters).
_IDS_PER_STATEMENT = 1000


def level_rank(level: str | None) -> int:
    """`trailkeeper.detection.model.level_rank`, imported when first needed (that module
    loads pySigma, which opening a store should not)."""
    from trailkeeper.detection.model import level_rank as rank

    return rank(level)


def group_json(group: dict[str, str]) -> str:
    """A correlation's group as shown: JSON of its sorted (name, value) pairs."""
    return orjson.dumps(sorted(group.items())).decode()


def group_key(group: dict[str, str]) -> str:
    """The group as the throttle compares it: values casefolded, as the correlation does."""
    return orjson.dumps(sorted((k, v.casefold()) for k, v in group.items())).decode()


def alert_of_row(row: Sequence[Any]) -> AlertRecord:
    return AlertRecord(
        id=int(row[0]), rule_id=row[1], rule_title=row[2], level=row[3],
        tags=tuple(orjson.loads(row[4])), timestamp_ms=int(row[5]), last_ms=int(row[6]),
        created_ms=int(row[7]), event_ids=tuple(orjson.loads(row[8])),
        group={str(k): str(v) for k, v in orjson.loads(row[9])}, count=int(row[10]),
        status=row[11], origin=row[12], acknowledged_by=row[13],
        acknowledged_ms=None if row[14] is None else int(row[14]))


@dataclass(slots=True)
class _Open:
    """An open alert of one rule and group as this call builds it: loaded, or inserted
    now; merged matches change it in memory and it is written once at the end."""

    id: int  # 0 until a new alert is inserted, at the end of the call
    ts: int
    last_ms: int
    event_ids: list[int]
    seen: set[int]
    added: int = 0  # matches merged in by this call
    changed: bool = False
    new: NewAlert | None = None  # the match that opened it, when this call did

    def merge(self, alert: NewAlert) -> None:
        self.added += 1
        self.ts = min(self.ts, alert.timestamp_ms)
        self.last_ms = max(self.last_ms, alert.timestamp_ms)
        for event_id in alert.event_ids:
            if len(self.event_ids) >= MAX_EVENT_IDS:
                break
            if event_id not in self.seen:
                self.seen.add(event_id)
                self.event_ids.append(event_id)
        self.changed = True


def record(run: Run, dialect: Dialect, alerts: Sequence[NewAlert], *, throttle_ms: int,
           now_ms: int, position: tuple[str, str] | None) -> list[int]:
    """`Storage.record_alerts` inside the caller's transaction (which holds the alert
    writers' lock): every check here sees every earlier write, this call's included.

    A batch costs one lookup of its triggers, one lookup of the open alert per rule and
    group it touches, an UPDATE per stored alert merged into, and multi-row INSERTs of the
    new alerts and of the triggers (live detection records a batch per 1,000 events)."""
    q = dialect.sql
    recorded = _recorded(run, dialect, alerts)
    current: dict[tuple[str, str], _Open | None] = {}
    triggers: list[tuple[str, int, _Open]] = []
    opened: list[_Open] = []
    for alert in alerts:
        pair = (alert.rule_id, alert.trigger_id)
        if pair in recorded:
            continue
        recorded.add(pair)
        key = group_key(alert.group)
        slot = (alert.rule_id, key)
        if slot not in current:
            current[slot] = _latest_open(run, q, alert.rule_id, key) if throttle_ms > 0 \
                else None
        target = current[slot]
        if target is not None and throttle_ms > 0 \
                and target.last_ms >= alert.timestamp_ms - throttle_ms:
            target.merge(alert)
        else:
            ids = _merged_ids([], alert.event_ids)
            target = _Open(0, alert.timestamp_ms, alert.timestamp_ms, ids, set(ids), new=alert)
            current[slot] = target
            opened.append(target)
        triggers.append((alert.rule_id, alert.trigger_id, target))
    created = _insert(run, q, opened, now_ms)
    for target in current.values():
        if target is not None and target.changed and target.new is None:
            run(q("UPDATE alerts SET count = count + ?, ts = ?, last_ms = ?, event_ids = ?"
                  " WHERE id = ?"),
                (target.added, target.ts, target.last_ms,
                 orjson.dumps(target.event_ids).decode(), target.id))
    for start in range(0, len(triggers), _IDS_PER_STATEMENT):
        part = triggers[start:start + _IDS_PER_STATEMENT]
        run(q("INSERT INTO alert_triggers VALUES " + ", ".join(["(?, ?, ?)"] * len(part))),
            [v for rule_id, trigger_id, target in part for v in (rule_id, trigger_id,
                                                                 target.id)])
    if position is not None:
        run(q("INSERT INTO consumer_positions VALUES (?, ?) ON CONFLICT (name)"
              " DO UPDATE SET state = excluded.state"), position)
    return created


def _recorded(run: Run, dialect: Dialect, alerts: Sequence[NewAlert]) -> set[tuple[str, int]]:
    """The (rule, trigger) pairs among ``alerts`` that are recorded already."""
    wanted = {(a.rule_id, a.trigger_id) for a in alerts}
    trigger_ids = sorted({a.trigger_id for a in alerts})
    found: set[tuple[str, int]] = set()
    for start in range(0, len(trigger_ids), _IDS_PER_STATEMENT):
        part = trigger_ids[start:start + _IDS_PER_STATEMENT]
        rows = run(dialect.sql("SELECT rule_id, trigger_id FROM alert_triggers WHERE"
                               f" trigger_id IN ({', '.join('?' * len(part))})"), part)
        found.update(p for p in ((str(r[0]), int(r[1])) for r in rows) if p in wanted)
    return found


def _latest_open(run: Run, q: Callable[[str], str], rule_id: str, key: str) -> _Open | None:
    """The open alert of this rule and group whose latest match is the most recent."""
    rows = run(q("SELECT id, ts, last_ms, event_ids FROM alerts WHERE rule_id = ?"
                 " AND group_key = ? AND status = 'open' ORDER BY last_ms DESC, id DESC"
                 " LIMIT 1"), (rule_id, key))
    if not rows:
        return None
    ids = [int(i) for i in orjson.loads(rows[0][3])]
    return _Open(int(rows[0][0]), int(rows[0][1]), int(rows[0][2]), ids, set(ids))


def _insert(run: Run, q: Callable[[str], str], opened: list[_Open], now_ms: int) -> list[int]:
    """Insert the alerts this call opened (with the matches merged into them since), in
    order; their ids. Ids are handed out in the order of the VALUES rows, on both
    backends (RETURNING itself promises no order, so the ids are sorted)."""
    created: list[int] = []
    rows_per_statement = _IDS_PER_STATEMENT // 13
    for start in range(0, len(opened), rows_per_statement):
        part = opened[start:start + rows_per_statement]
        params: list[object] = []
        for target in part:
            alert = target.new
            assert alert is not None
            params += [alert.rule_id, alert.rule_title, alert.level, level_rank(alert.level),
                       _tags(alert), target.ts, target.last_ms, now_ms,
                       orjson.dumps(target.event_ids).decode(), group_key(alert.group),
                       group_json(alert.group), alert.origin, 1 + target.added]
        rows = run(q("INSERT INTO alerts (rule_id, rule_title, level, level_rank, tags, ts,"
                     " last_ms, created_ms, event_ids, group_key, group_json, origin, count)"
                     " VALUES "
                     + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(part))
                     + " RETURNING id"), params)
        for target, row in zip(part, sorted(int(r[0]) for r in rows), strict=True):
            target.id = row
            created.append(row)
    return created


def _tags(alert: NewAlert) -> str:
    return orjson.dumps(list(alert.tags)).decode()


def _merged_ids(kept: list[int], more: Sequence[int]) -> list[int]:
    """``kept`` then the new ids of ``more``, without repeats, at most `MAX_EVENT_IDS`."""
    seen = set(kept)
    for event_id in more:
        if len(kept) >= MAX_EVENT_IDS:
            break
        if event_id not in seen:
            seen.add(event_id)
            kept.append(event_id)
    return kept


def list_query(dialect: Dialect, query: AlertQuery) -> tuple[str, list[object]]:
    """`Storage.list_alerts`: newest first, keyset paged by id."""
    where: list[str] = []
    params: list[object] = []
    if query.status is not None:
        where.append("status = ?")
        params.append(query.status)
    if query.rule_ids:
        where.append(f"rule_id IN ({', '.join('?' * len(query.rule_ids))})")
        params.extend(query.rule_ids)
    if query.min_level is not None:
        where.append("level_rank >= ?")
        params.append(level_rank(query.min_level))
    if query.from_ms is not None:
        where.append("ts >= ?")
        params.append(query.from_ms)
    if query.to_ms is not None:
        where.append("ts < ?")
        params.append(query.to_ms)
    if query.origin is not None:
        where.append("origin = ?")
        params.append(query.origin)
    if query.before_id is not None:
        where.append("id < ?")
        params.append(query.before_id)
    sql = f"SELECT {_COLUMNS} FROM alerts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return dialect.sql(sql + " ORDER BY id DESC LIMIT ?"), [*params, query.limit]


def get_query(dialect: Dialect) -> str:
    return dialect.sql(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?")


def after_query(dialect: Dialect) -> str:
    return dialect.sql(f"SELECT {_COLUMNS} FROM alerts WHERE id > ? ORDER BY id LIMIT ?")


LAST_ID = "SELECT coalesce(max(id), 0) FROM alerts"


def acknowledge(run_count: Callable[[str, Sequence[object]], int], dialect: Dialect,
                ids: Sequence[int], by: str, now_ms: int) -> int:
    """`Storage.acknowledge_alerts` inside the caller's transaction: only open alerts
    change; how many did."""
    unique = sorted(set(ids))
    changed = 0
    for start in range(0, len(unique), _IDS_PER_STATEMENT):
        part = unique[start:start + _IDS_PER_STATEMENT]
        changed += run_count(dialect.sql(
            "UPDATE alerts SET status = 'acknowledged', acknowledged_by = ?,"
            f" acknowledged_ms = ? WHERE status = 'open' AND id IN ({', '.join('?' * len(part))})"),
            [by, now_ms, *part])
    return changed
