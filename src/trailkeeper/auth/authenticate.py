"""HTTP Basic authentication against the users in the store.

Argon2 is deliberately slow (tens of ms), too slow to run on every request of a poller, so a
successful check is remembered for a minute under a keyed hash of the credentials; the
password itself is never kept. Changing a password or disabling a user clears the memory of
this node; other nodes forget within the same minute.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
import threading
import time

from trailkeeper.auth.audit_events import PASSWORD, Attempt, Reason
from trailkeeper.auth.grants import principal_for
from trailkeeper.auth.passwords import hash_password, verify_password
from trailkeeper.auth.principals import Principal
from trailkeeper.errors import AuthenticationError
from trailkeeper.storage.base import Storage

_CACHE_SECONDS = 60.0
_CACHE_ENTRIES = 1024


class Authenticator:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._key = secrets.token_bytes(32)
        self._cache: dict[bytes, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None,
                     attempt: Attempt | None = None) -> Principal:
        """The principal of an ``Authorization`` header, or `AuthenticationError`;
        ``attempt`` learns who tried and why they were refused (for the audit event)."""
        attempt = attempt if attempt is not None else Attempt()
        if not authorization:
            raise AuthenticationError("Authentication required (HTTP Basic)")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "basic":
            attempt.refused(Reason.UNSUPPORTED_SCHEME)
            raise AuthenticationError(f"Unsupported authentication scheme {scheme[:20]!r}; "
                                      "use HTTP Basic")
        try:
            name, password = _decode_basic(credentials.strip())
        except AuthenticationError:
            attempt.refused(Reason.MALFORMED)
            raise
        return self.login(name, password, attempt)

    def login(self, name: str, password: str, attempt: Attempt | None = None) -> Principal:
        """The principal of a user name and password (HTTP Basic, the web sign-in form), or
        `AuthenticationError`; ``attempt`` learns who tried and why they were refused."""
        attempt = attempt if attempt is not None else Attempt()
        attempt.tried(PASSWORD, name)
        key = hmac.digest(self._key, name.encode() + b"\0" + password.encode(), hashlib.sha256)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        user = self._storage.get_user(name)
        # An unknown name costs the same hashing as a wrong password, so response times do
        # not tell which user names exist.
        stored_hash = user.password_hash if user is not None else _decoy_hash()
        matches = verify_password(stored_hash, password)
        if user is None or not matches or user.disabled:
            attempt.refused(Reason.NO_SUCH_USER if user is None else
                            Reason.WRONG_PASSWORD if not matches else Reason.USER_DISABLED,
                            known=user is not None)
            raise AuthenticationError("Invalid user name or password")
        # Effective role and delegations (own and groups' grants), resolved once per cache
        # lifetime: grant changes reach this node at once (forget) and others within a minute.
        principal = principal_for(self._storage, user)
        with self._lock:
            if len(self._cache) >= _CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = (principal, now + _CACHE_SECONDS)
        return principal

    def forget(self) -> None:
        """Drop every remembered credential (after a password change or a disable)."""
        with self._lock:
            self._cache.clear()


@functools.cache
def _decoy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def _decode_basic(credentials: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationError("Malformed HTTP Basic credentials") from None
    name, sep, password = decoded.partition(":")
    if not sep or not name:
        raise AuthenticationError("Malformed HTTP Basic credentials")
    return name, password
