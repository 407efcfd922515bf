-- Sign-in sessions of the web UI (issue 8). Only the SHA-256 of the session secret is
-- stored; the secret itself travels in the browser's HttpOnly cookie. ``credential`` is a
-- fingerprint of the user's password hash at sign-in: a new password ends every session.
-- Rows past their end are deleted at sign-in.
CREATE TABLE web_sessions (
    id          TEXT PRIMARY KEY,
    user_name   TEXT NOT NULL,
    credential  TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    seen_ms     INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    client      TEXT
) WITHOUT ROWID;
