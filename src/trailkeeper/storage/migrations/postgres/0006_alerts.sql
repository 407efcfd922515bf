-- Alerts raised by detection rules (issue 6). Alerts are written under a transaction-level
-- advisory lock, so ids grow in commit order and dispatchers follow them like the event log.
-- ``group_json`` is the correlation's group-by values as JSON of sorted [name, value] pairs
-- ('[]' for a plain rule), ``group_key`` the same with the values casefolded (the correlation
-- compares them so: "Alice" and "alice" are one group); ``tags`` and ``event_ids`` are JSON
-- arrays.
CREATE TABLE alerts (
    id              bigserial PRIMARY KEY,
    rule_id         text COLLATE "C" NOT NULL,
    rule_title      text NOT NULL,
    level           text,
    level_rank      integer NOT NULL,
    tags            text NOT NULL,
    ts              bigint NOT NULL,
    last_ms         bigint NOT NULL,
    created_ms      bigint NOT NULL,
    event_ids       text NOT NULL,
    group_key       text COLLATE "C" NOT NULL,
    group_json      text NOT NULL,
    count           bigint NOT NULL DEFAULT 1,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged')),
    origin          text NOT NULL CHECK (origin IN ('live', 'hunt')),
    acknowledged_by text,
    acknowledged_ms bigint
);
CREATE INDEX alerts_by_group ON alerts (rule_id, group_key, status);
CREATE INDEX alerts_by_status ON alerts (status, id);
CREATE INDEX alerts_by_time ON alerts (ts);

-- Each (rule, trigger event) is recorded once, whichever path (live or hunt) sees it first.
CREATE TABLE alert_triggers (
    rule_id    text COLLATE "C" NOT NULL,
    trigger_id bigint NOT NULL,
    alert_id   bigint NOT NULL,
    PRIMARY KEY (trigger_id, rule_id)  -- a batch looks its trigger events up
);
