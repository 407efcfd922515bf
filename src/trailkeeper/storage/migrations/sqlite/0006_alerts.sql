-- Alerts raised by detection rules (issue 6). AUTOINCREMENT: ids are never reused, and the
-- one writer hands them out in commit order, so dispatchers follow them like the event log.
-- ``group_json`` is the correlation's group-by values as JSON of sorted [name, value] pairs
-- ("[]" for a plain rule), ``group_key`` the same with the values casefolded (the correlation
-- compares them so: "Alice" and "alice" are one group); ``tags`` and ``event_ids`` are JSON
-- arrays.
CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id         TEXT NOT NULL,
    rule_title      TEXT NOT NULL,
    level           TEXT,
    level_rank      INTEGER NOT NULL,
    tags            TEXT NOT NULL,
    ts              INTEGER NOT NULL,
    last_ms         INTEGER NOT NULL,
    created_ms      INTEGER NOT NULL,
    event_ids       TEXT NOT NULL,
    group_key       TEXT NOT NULL,
    group_json      TEXT NOT NULL,
    count           INTEGER NOT NULL DEFAULT 1,
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged')),
    origin          TEXT NOT NULL CHECK (origin IN ('live', 'hunt')),
    acknowledged_by TEXT,
    acknowledged_ms INTEGER
);
CREATE INDEX alerts_by_group ON alerts (rule_id, group_key, status);
CREATE INDEX alerts_by_status ON alerts (status, id);
CREATE INDEX alerts_by_time ON alerts (ts);

-- Each (rule, trigger event) is recorded once, whichever path (live or hunt) sees it first.
CREATE TABLE alert_triggers (
    rule_id    TEXT NOT NULL,
    trigger_id INTEGER NOT NULL,
    alert_id   INTEGER NOT NULL,
    PRIMARY KEY (trigger_id, rule_id)  -- a batch looks its trigger events up
) WITHOUT ROWID;
