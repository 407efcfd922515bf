-- Run-time configuration shared by every node (issue 5): coverage, denylist, redaction,
-- retention, file retention. One row per setting, the value as JSON. ``version`` grows with
-- every change so nodes notice a change by polling max(version).
CREATE TABLE settings (
    name    TEXT PRIMARY KEY,
    value   TEXT NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;

-- Where each consumer of the committed log (file sink, forwarders, detection) has got to.
-- ``state`` is the consumer's own JSON (at least the last delivered event id).
CREATE TABLE consumer_positions (
    name  TEXT PRIMARY KEY,
    state TEXT NOT NULL
) WITHOUT ROWID;

-- Scheduled jobs that run once per cluster: whoever holds an unexpired lease runs the job.
CREATE TABLE job_runs (
    name           TEXT PRIMARY KEY,
    owner          TEXT,
    lease_until_ms INTEGER NOT NULL DEFAULT 0,
    last_run_ms    INTEGER
) WITHOUT ROWID;
