"""Checking an API token on each request, and the scope each route needs.

A token arrives as ``Authorization: Bearer tkn_...`` or, for Atlassian tools that only speak
HTTP Basic, as the password of ``user:tkn_...`` (the user must be the token's owner). Each
request looks the token up by id in the store (one primary-key read), so a revocation, an
expiry or a disabled user takes effect on the next request on every node: nothing about a
token is cached. Then: constant-time hash comparison, expiry, the owner (still enabled; role
and grants resolved as for a password login; grants are remembered for 5 s per process,
where a password login remembers its whole principal for 60 s), the IP allowlist against
the direct peer (``X-Forwarded-For`` is not trusted: a proxy in front makes every client the
proxy), and the rate limit (`RateLimiter`). ``last_used`` is written at most once a minute
per token.

Basic credentials whose password is not a token go to the password `Authenticator`; so does a
Basic password that looks like a token but is not a valid one (it is logged as passed on).
Every refusal also tells the request's `Attempt` why (the token's id and owner, never its
text), from which `api.deps` records the audit event.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import threading
import time
from collections.abc import Callable

from trailkeeper.auth import authlog, tokens
from trailkeeper.auth.audit_events import API_TOKEN, Attempt, Reason
from trailkeeper.auth.authlog import RequestInfo
from trailkeeper.auth.grants import access_of
from trailkeeper.auth.principals import Principal, Scope
from trailkeeper.auth.ratelimit import RateLimiter
from trailkeeper.errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from trailkeeper.storage.base import Grant, Storage, TokenRecord, UserRecord

TOUCH_EVERY_MS = 60_000
GRANTS_SECONDS = 5.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The only writes an ``ingest`` token may make; every other write needs ``admin``.
INGEST_ROUTES = frozenset({("POST", "/api/v1/events")})
ADMIN_PREFIX = "/api/v1/admin"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def required_scope(method: str, route_path: str) -> Scope:
    """The token scope a route needs (``route_path`` is its template, e.g. /api/v1/events).

    Administration needs ``admin``; reads (GET, HEAD, OPTIONS) ``read``; the ingest routes
    ``ingest``; any other write ``admin``, so a new write route is never open to a weaker
    token by accident.
    """
    if route_path == ADMIN_PREFIX or route_path.startswith(ADMIN_PREFIX + "/"):
        return Scope.ADMIN
    if method in SAFE_METHODS:
        return Scope.READ
    if (method, route_path) in INGEST_ROUTES:
        return Scope.INGEST
    return Scope.ADMIN


def check_scope(principal: Principal, required: Scope, info: RequestInfo) -> None:
    """403 (and the seed-001 log line) when a token's scopes do not cover the route."""
    if principal.allows(required):
        return
    assert principal.scopes is not None
    if required is Scope.ADMIN:
        reason = (f"The token scope is {authlog.scope_label(principal.scopes).lower()} and does "
                  "not cover administration.")
    elif required is Scope.INGEST or info.method not in SAFE_METHODS:
        reason = "The token scope is read-only and only covers GET, HEAD and OPTIONS requests."
    else:
        reason = "The token scope is ingest-only and only covers sending events."
    authlog.scope_refused(info, principal.name, reason)
    raise PermissionDeniedError(f"{reason} Request method type was {info.method}.")


class TokenAuthenticator:
    def __init__(self, storage: Storage, limiter: RateLimiter, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._storage = storage
        self._limiter = limiter
        self._clock = clock
        self._touched: dict[str, int] = {}
        self._grant_cache: dict[str, tuple[list[Grant], float]] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None, info: RequestInfo,
                     attempt: Attempt | None = None) -> Principal | None:
        """The principal of a token credential; None when the header carries none (or a
        Basic password that is no valid token: the password check decides). ``attempt``
        learns the token's id and owner and why it was refused (for the audit event)."""
        if not authorization:
            return None
        attempt = attempt if attempt is not None else Attempt()
        scheme, _, credentials = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return self._bearer(credentials.strip(), info, attempt)
        if scheme == "basic":
            return self._basic(credentials.strip(), info, attempt)
        return None

    def _bearer(self, text: str, info: RequestInfo, attempt: Attempt) -> Principal:
        parsed = tokens.parse(text)
        found = self._storage.get_token_and_owner(parsed[0]) if parsed else None
        attempt.tried(API_TOKEN, found[0].user if found else None,
                      parsed[0] if parsed else None)
        reason = self._refusal(parsed, found)
        if reason is not None:
            attempt.refused(reason, known=bool(found and found[1]))
            authlog.invalid_bearer(info, found[0].user if found else "(unknown)")
            raise AuthenticationError("Invalid, expired or revoked API token")
        assert found is not None
        return self._admit(*found, info, attempt)

    def _basic(self, credentials: str, info: RequestInfo,
               attempt: Attempt) -> Principal | None:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None  # the password authenticator explains what is malformed
        name, _, password = decoded.partition(":")
        if not tokens.looks_like_token(password):
            return None
        parsed = tokens.parse(password)
        found = self._storage.get_token_and_owner(parsed[0]) if parsed else None
        attempt.tried(API_TOKEN, name, parsed[0] if parsed else None)
        reason = self._refusal(parsed, found)
        if reason is None and found is not None and found[0].user != name:
            reason = Reason.OTHER_USERS_TOKEN
        if reason is not None:
            # The password check decides; if it refuses too, the token's reason is the
            # telling one. Whether the named user exists is for that check to find out.
            attempt.refused(reason)
            authlog.passed_on(info, name)
            return None
        assert found is not None
        return self._admit(*found, info, attempt)

    def _refusal(self, parsed: tuple[str, str] | None,
                 found: tuple[TokenRecord, UserRecord | None] | None) -> Reason | None:
        """Why a presented token is not valid (None: it is). Revocation and expiry are
        told apart only once the secret matched."""
        if parsed is None:
            return Reason.MALFORMED_TOKEN
        if found is None:
            return Reason.NO_SUCH_TOKEN
        record = found[0]
        if not tokens.secret_matches(record, parsed[1]):
            return Reason.WRONG_SECRET
        if record.revoked_ms is not None:
            return Reason.TOKEN_REVOKED
        if record.expires_ms is not None and record.expires_ms <= self._clock() * 1000:
            return Reason.TOKEN_EXPIRED
        return None

    def _admit(self, record: TokenRecord, user: UserRecord | None,
               info: RequestInfo, attempt: Attempt) -> Principal:
        if user is None or user.disabled:
            attempt.refused(Reason.OWNER_DISABLED if user else Reason.NO_SUCH_USER,
                            known=user is not None)
            authlog.invalid_bearer(info, record.user)
            raise AuthenticationError("Invalid, expired or revoked API token")
        attempt.known = True
        if record.allow_ips and not _allowed(info.client, record.allow_ips):
            attempt.refused(Reason.IP_NOT_ALLOWED)
            authlog.ip_refused(info, record.user)
            raise PermissionDeniedError(
                f"This token may not be used from IP address {info.client}")
        now = self._clock()
        if record.rate_requests and record.rate_minutes:
            wait = self._limiter.acquire(record.id, record.rate_requests,
                                         record.rate_minutes * 60.0, now)
            if wait is not None:
                attempt.refused(Reason.RATE_LIMITED)
                authlog.rate_limited(info, record.user, record.rate_requests,
                                     record.rate_minutes)
                raise RateLimitedError(
                    f"Rate limited: this token allows {record.rate_requests} requests within "
                    f"{record.rate_minutes} minutes; retry in {wait} s", retry_after=wait)
        self._touch(record, int(now * 1000))
        authlog.matched(info, record)
        access = access_of(user, self._grants(user.name))
        return Principal(user.name, access.role, access.administers,
                         frozenset(Scope(s) for s in record.scopes), record.id)

    def _grants(self, user: str) -> list[Grant]:
        """The user's grants, remembered for `GRANTS_SECONDS` (the token and its owner are
        read on every request; grant changes reach token requests within seconds)."""
        now = time.monotonic()
        with self._lock:
            hit = self._grant_cache.get(user)
        if hit is not None and hit[1] > now:
            return hit[0]
        grants = self._storage.grants_for(user)
        with self._lock:
            if len(self._grant_cache) > 10_000:
                self._grant_cache.clear()
            self._grant_cache[user] = (grants, now + GRANTS_SECONDS)
        return grants

    def _touch(self, record: TokenRecord, now_ms: int) -> None:
        """Remember the last use, at most once a minute per token and process."""
        if record.last_used_ms is not None and now_ms - record.last_used_ms < TOUCH_EVERY_MS:
            return
        with self._lock:
            if now_ms - self._touched.get(record.id, 0) < TOUCH_EVERY_MS:
                return
            if len(self._touched) > 10_000:
                self._touched.clear()
            self._touched[record.id] = now_ms
        self._storage.touch_token(record.id, now_ms)


@functools.lru_cache(maxsize=1024)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _allowed(client: str | None, cidrs: tuple[str, ...]) -> bool:
    if client is None:
        return False
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == n.version and address in n for n in _networks(cidrs))
