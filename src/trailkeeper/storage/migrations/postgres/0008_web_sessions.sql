-- Sign-in sessions of the web UI (issue 8). Only the SHA-256 of the session secret is
-- stored; the secret itself travels in the browser's HttpOnly cookie. ``credential`` is a
-- fingerprint of the user's password hash at sign-in: a new password ends every session.
-- Rows past their end are deleted at sign-in.
CREATE TABLE web_sessions (
    id          text COLLATE "C" PRIMARY KEY,
    user_name   text COLLATE "C" NOT NULL,
    credential  text COLLATE "C" NOT NULL,
    created_ms  bigint NOT NULL,
    seen_ms     bigint NOT NULL,
    expires_ms  bigint NOT NULL,
    client      text
);
