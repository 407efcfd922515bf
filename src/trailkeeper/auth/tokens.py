"""API tokens: their text, how they are stored, and the rules for issuing them.

Text: ``tkn_<id>_<secret>`` — the ``tkn_`` prefix makes a leaked token recognisable to
secret scanners and to people; ``<id>`` (16 hex digits) is public, shown by ``token list``
and used for revocation and for the one indexed lookup per request; ``<secret>`` is 256
random bits (43 URL-safe characters). The token is shown once, when it is created; the store
keeps only the SHA-256 of the secret. A slow password hash would add tens of ms to every
request and buys nothing for a 256-bit random secret (it cannot be guessed from its hash),
so the check is one SHA-256 and a constant-time comparison.

Who may issue tokens: every user for themselves, with the scopes their effective role allows
(``ingest`` and ``read`` for every role, ``admin`` only for ``sysadmin``); a ``sysadmin``
for anyone. The CLI acts with the store owner's authority (whoever can open the database
already has it all) but applies the same scope rule to the token's user.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trailkeeper.auth import audit_events
from trailkeeper.auth.audit_events import Trail
from trailkeeper.auth.grants import principal_for
from trailkeeper.auth.principals import Principal, Role, Scope
from trailkeeper.errors import BadRequestError, NotFoundError, PermissionDeniedError
from trailkeeper.storage.base import Storage, TokenRecord

PREFIX = "tkn_"
_ID_HEX = 16
_TOKEN = re.compile(r"^tkn_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_RATE = re.compile(r"^\s*(\d{1,6})\s*/\s*(\d{1,5})\s*m\s*$")
MAX_RATE_REQUESTS = 100_000
MAX_RATE_MINUTES = 10_080  # a week
MAX_EXPIRY_S = 10 * 366 * 86_400
MAX_ALLOW_IPS = 100
MAX_DESCRIPTION = 200


def generate() -> tuple[str, str, str]:
    """A new token: (id, secret, text)."""
    token_id = secrets.token_hex(_ID_HEX // 2)
    secret = secrets.token_urlsafe(32)
    return token_id, secret, f"{PREFIX}{token_id}_{secret}"


def parse(text: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token text, else None."""
    match = _TOKEN.match(text)
    return (match.group(1), match.group(2)) if match else None


def looks_like_token(text: str) -> bool:
    return text.startswith(PREFIX)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def secret_matches(record: TokenRecord, secret: str) -> bool:
    return hmac.compare_digest(record.secret_sha256, secret_hash(secret))


# -- parsing what admins type -------------------------------------------------------------


def parse_duration(text: str) -> int | None:
    """``30d``, ``12h``, ``90m``, ``2w`` in seconds; ``never`` is None."""
    if text.strip().lower() == "never":
        return None
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise BadRequestError(f"expires: {text!r} is not a duration like 30d, 12h, 90m, 2w "
                              "or never")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_EXPIRY_S:
        raise BadRequestError("expires: at most 10 years")
    return seconds


def parse_rate(text: str) -> tuple[int, int]:
    """``100/5m`` (100 requests within 5 minutes) as (100, 5)."""
    match = _RATE.match(text)
    if not match:
        raise BadRequestError(f"rate: {text!r} is not N/MINUTESm, e.g. 100/5m")
    requests, minutes = int(match.group(1)), int(match.group(2))
    if not 1 <= requests <= MAX_RATE_REQUESTS or not 1 <= minutes <= MAX_RATE_MINUTES:
        raise BadRequestError(f"rate: 1 to {MAX_RATE_REQUESTS} requests within 1 to "
                              f"{MAX_RATE_MINUTES} minutes")
    return requests, minutes


def parse_networks(texts: Iterable[str]) -> tuple[str, ...]:
    """CIDRs (or single addresses), IPv4 or IPv6, normalised (``10.1.2.3/8`` -> 10.0.0.0/8)."""
    found: list[str] = []
    for text in texts:
        try:
            network = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise BadRequestError(f"allow-ip: {text!r} is not an IPv4 or IPv6 CIDR") from None
        if str(network) not in found:
            found.append(str(network))
    if len(found) > MAX_ALLOW_IPS:
        raise BadRequestError(f"allow-ip: at most {MAX_ALLOW_IPS} networks")
    return tuple(found)


def parse_scopes(texts: Iterable[str]) -> frozenset[Scope]:
    scopes: set[Scope] = set()
    for text in texts:
        for part in text.replace(",", " ").split():
            try:
                scopes.add(Scope(part.strip().lower()))
            except ValueError:
                raise BadRequestError(f"scope: {part!r} is not one of ingest, read, "
                                      "admin") from None
    if not scopes:
        raise BadRequestError("scope: give at least one of ingest, read, admin")
    return frozenset(scopes)


def check_description(text: str) -> str:
    """Descriptions end up in log lines: one line of printable text."""
    if len(text) > MAX_DESCRIPTION:
        raise BadRequestError(f"description: at most {MAX_DESCRIPTION} characters")
    if any(unicodedata.category(c).startswith("C") for c in text):
        raise BadRequestError("description: control characters are not allowed")
    return text


# -- issuing --------------------------------------------------------------------------------


def grantable_scopes(role: Role) -> frozenset[Scope]:
    if role is Role.SYSADMIN:
        return frozenset(Scope)
    return frozenset({Scope.INGEST, Scope.READ})


def may_manage_tokens_of(actor: Principal, user: str) -> bool:
    """A sysadmin manages everyone's tokens; everyone else only their own."""
    return actor.role is Role.SYSADMIN or actor.name == user


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """What a new token should be (validated by `issue`)."""

    user: str
    scopes: frozenset[Scope]
    expires_in_s: int | None = None
    allow_ips: tuple[str, ...] = ()
    rate: tuple[int, int] | None = None
    description: str = ""


def issue(storage: Storage, spec: TokenSpec, *, created_by: str, now_ms: int,
          actor: Principal | None = None, trail: Trail | None = None
          ) -> tuple[str, TokenRecord]:
    """Create and store a token; return its text (to show once) and its record.

    ``actor`` is the API caller (None for the CLI, which has the store owner's authority);
    ``trail`` records "API token created" (with the token's id and settings, never its text).
    """
    if actor is not None and not may_manage_tokens_of(actor, spec.user):
        raise PermissionDeniedError("Only a sysadmin may create tokens for other users")
    user = storage.get_user(spec.user)
    if user is None:
        raise NotFoundError(f"No user {spec.user!r}")
    if user.disabled:
        raise BadRequestError(f"user: {spec.user!r} is disabled")
    role = principal_for(storage, user).role
    refused = spec.scopes - grantable_scopes(role)
    if refused:
        raise PermissionDeniedError(
            f"scope: the role {role} of {spec.user!r} does not allow "
            f"{', '.join(sorted(refused))} (admin needs sysadmin)")
    if actor is not None and actor.scopes is not None and not spec.scopes <= actor.scopes \
            and Scope.ADMIN not in actor.scopes:
        raise PermissionDeniedError("A token cannot create a token with more scopes")
    token_id, secret, text = generate()
    record = TokenRecord(
        id=token_id, user=user.name, secret_sha256=secret_hash(secret),
        scopes=tuple(sorted(spec.scopes)), created_ms=now_ms, created_by=created_by,
        description=check_description(spec.description),
        expires_ms=None if spec.expires_in_s is None else now_ms + spec.expires_in_s * 1000,
        allow_ips=spec.allow_ips,
        rate_requests=spec.rate[0] if spec.rate else None,
        rate_minutes=spec.rate[1] if spec.rate else None)
    storage.put_token(record)
    if trail is not None:
        trail.add(audit_events.token_created(trail.actor, record))
    return text, record


def revoke(storage: Storage, token_id: str, *, now_ms: int, actor: Principal | None = None,
           trail: Trail | None = None) -> tuple[TokenRecord, bool]:
    """Revoke a token (the row is kept); return its record and whether it was active until
    now (only then is "API token revoked" recorded). An API caller who may not manage the
    owner's tokens gets the answer of an unknown id: others' token ids are not disclosed."""
    record = storage.get_token(token_id)
    if record is None:
        raise NotFoundError(f"No token {token_id!r}")
    if actor is not None and not may_manage_tokens_of(actor, record.user):
        raise NotFoundError(f"No token {token_id!r}") from PermissionDeniedError(token_id)
    if record.revoked_ms is not None:
        return record, False
    storage.revoke_token(token_id, now_ms)
    revoked = storage.get_token(token_id)
    assert revoked is not None
    if trail is not None:
        trail.add(audit_events.token_revoked(trail.actor, revoked))
    return revoked, True


def status(record: TokenRecord, now_ms: int) -> str:
    if record.revoked_ms is not None:
        return "revoked"
    if record.expires_ms is not None and record.expires_ms <= now_ms:
        return "expired"
    return "active"


def visible_tokens(storage: Storage, actor: Principal, user: str | None
                   ) -> Sequence[TokenRecord]:
    """The tokens ``actor`` may list: anyone's for a sysadmin, else only their own."""
    if user is None and actor.role is not Role.SYSADMIN:
        user = actor.name
    if user is not None and not may_manage_tokens_of(actor, user):
        raise PermissionDeniedError("Only a sysadmin may list other users' tokens")
    return storage.list_tokens(user)
