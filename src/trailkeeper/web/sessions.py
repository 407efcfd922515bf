"""Sign-in sessions of the web UI, kept in the store and named by an HttpOnly cookie.

Why in the store rather than in a signed cookie: signing out really ends the session (a copy
of the cookie is worthless afterwards), a session ends when its user is disabled or changes
password (checked on every request), and every ``serve --workers N`` process and every node
sharing a PostgreSQL store sees the same sessions without a shared secret file to
distribute. The cost is one primary-key read per page (and a write at most once a minute).

The cookie holds 256 random bits; the store keeps only their SHA-256, as for API tokens, so
reading the sessions table gives nobody a usable cookie. A session ends after `IDLE_MS`
without a request or `LIFETIME_MS` after sign-in, whichever comes first. The CSRF token of a
session is derived from the cookie's secret (see `trailkeeper.web.csrf`), so it needs no
storage and cannot be known without the cookie.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from trailkeeper.auth.grants import principal_for
from trailkeeper.auth.principals import Principal
from trailkeeper.model.timestamps import now_ms
from trailkeeper.storage.base import SessionRecord, Storage, UserRecord
from trailkeeper.web import csrf

COOKIE = "tk_session"
IDLE_MS = 30 * 60_000  # 30 minutes without a request
LIFETIME_MS = 12 * 3_600_000  # 12 hours after sign-in at most
TOUCH_EVERY_MS = 60_000  # ``seen_ms`` is written at most this often


@dataclass(frozen=True, slots=True)
class Visitor:
    """A signed-in browser: the principal (role and grants resolved now), its session and
    the session's CSRF token."""

    principal: Principal
    session: SessionRecord
    csrf_token: str


def session_id(secret: str) -> str:
    """The stored id of a cookie's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def credential(user: UserRecord) -> str:
    """A fingerprint of the user's password hash: a new password ends every session."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:32]


class Sessions:
    def __init__(self, storage: Storage, *, clock: Callable[[], int] = now_ms) -> None:
        self._storage = storage
        self._clock = clock

    def start(self, user: UserRecord, client: str | None) -> str:
        """A new session for ``user`` (signed in just now); the cookie's value. Sessions that
        ended meanwhile, anyone's, are deleted on the way."""
        now = self._clock()
        self._storage.delete_stale_sessions(now, IDLE_MS)
        secret = secrets.token_urlsafe(32)
        self._storage.put_session(SessionRecord(
            session_id(secret), user.name, credential(user), now, now, now + LIFETIME_MS,
            client))
        return secret

    def resume(self, secret: str | None) -> Visitor | None:
        """The visitor a cookie signs in, or None when it names no live session (unknown,
        idle, expired, its user disabled, deleted or given a new password)."""
        if not secret or len(secret) > 100:
            return None
        ident = session_id(secret)
        session = self._storage.get_session(ident)
        now = self._clock()
        if session is None or session.expires_ms <= now or session.seen_ms + IDLE_MS <= now:
            return None
        user = self._storage.get_user(session.user)
        if user is None or user.disabled or credential(user) != session.credential:
            self._storage.delete_session(ident)
            return None
        if now - session.seen_ms >= TOUCH_EVERY_MS:
            self._storage.touch_session(ident, now)
        return Visitor(principal_for(self._storage, user), session, csrf.token_for(secret))

    def end(self, secret: str | None) -> None:
        """Sign out: the session is deleted (a copy of the cookie no longer works)."""
        if secret and len(secret) <= 100:
            self._storage.delete_session(session_id(secret))
