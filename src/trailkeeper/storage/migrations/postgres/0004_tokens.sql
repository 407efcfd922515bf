-- API tokens (issue 4). Only the SHA-256 of the secret is stored; the token text is shown
-- once at creation. Rows are never deleted: revocation sets revoked_ms. Independent of 0003.
CREATE TABLE api_tokens (
    id            text COLLATE "C" PRIMARY KEY,
    user_name     text COLLATE "C" NOT NULL,
    secret_sha256 text COLLATE "C" NOT NULL,
    scopes        text COLLATE "C" NOT NULL,
    description   text NOT NULL DEFAULT '',
    created_ms    bigint NOT NULL,
    created_by    text COLLATE "C" NOT NULL,
    expires_ms    bigint,
    allow_ips     text COLLATE "C" NOT NULL DEFAULT '',
    rate_requests integer,
    rate_minutes  integer,
    revoked_ms    bigint,
    last_used_ms  bigint
);
CREATE INDEX api_tokens_user ON api_tokens (user_name, created_ms);
