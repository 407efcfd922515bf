-- Run-time configuration shared by every node (issue 5): coverage, denylist, redaction,
-- retention, file retention. One row per setting, the value as JSON. ``version`` grows with
-- every change so nodes notice a change by polling max(version).
CREATE TABLE settings (
    name    text COLLATE "C" PRIMARY KEY,
    value   text NOT NULL,
    version bigint NOT NULL
);

-- Where each consumer of the committed log (file sink, forwarders, detection) has got to.
-- ``state`` is the consumer's own JSON (at least the last delivered event id).
CREATE TABLE consumer_positions (
    name  text COLLATE "C" PRIMARY KEY,
    state text NOT NULL
);

-- Scheduled jobs that run once per cluster: whoever holds an unexpired lease runs the job.
CREATE TABLE job_runs (
    name           text COLLATE "C" PRIMARY KEY,
    owner          text,
    lease_until_ms bigint NOT NULL DEFAULT 0,
    last_run_ms    bigint
);
