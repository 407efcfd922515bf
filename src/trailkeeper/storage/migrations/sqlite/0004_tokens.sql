-- API tokens (issue 4). Only the SHA-256 of the secret is stored; the token text is shown
-- once at creation. Rows are never deleted: revocation sets revoked_ms. Independent of 0003.
CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    user_name     TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    created_ms    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    expires_ms    INTEGER,
    allow_ips     TEXT NOT NULL DEFAULT '',
    rate_requests INTEGER,
    rate_minutes  INTEGER,
    revoked_ms    INTEGER,
    last_used_ms  INTEGER
) WITHOUT ROWID;
CREATE INDEX api_tokens_user ON api_tokens (user_name, created_ms);
