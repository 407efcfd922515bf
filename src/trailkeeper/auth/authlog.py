"""Token authentication lines of the application log, in the formats of Atlassian's API
token app (seed 001), so tooling that reads those reads ours:

``2021-01-07 08:52:38,540 INFO [thread] @REQID 79.209.73.23 "GET /path HTTP/1.1"
trailkeeper.auth.tokens Found a matching token "desc" with Read Only scope and ...``

The client is the direct peer only (``X-Forwarded-For`` is neither trusted nor logged). Only
names, ids, descriptions, methods and paths (never the query string) are written: never a
token, its hash or a password.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from trailkeeper.auth.principals import Scope
from trailkeeper.storage.base import TokenRecord

tokens_log = logging.getLogger("trailkeeper.auth.tokens")
ratelimit_log = logging.getLogger("trailkeeper.auth.ratelimit")

_NO_FALLBACK = "and basic auth with password or personal access token is disabled"
SCOPE_LABELS = {Scope.READ: "Read Only", Scope.INGEST: "Ingest Only", Scope.ADMIN: "Admin"}


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the log lines and the IP allowlist need to know about a request."""

    client: str | None
    method: str
    path: str
    http_version: str = "1.1"

    def describe(self) -> str:
        return (f"@{secrets.token_hex(5).upper()} {self.client or '-'} "
                f'"{self.method} {self.path} HTTP/{self.http_version}"')


def scope_label(scopes: tuple[str, ...] | frozenset[Scope]) -> str:
    return " and ".join(SCOPE_LABELS[Scope(s)] for s in sorted(scopes))


def _created(ms: int) -> str:
    """``Jan 6, 2021 2:14:46 PM`` in the server's time zone, as the log's own timestamps."""
    t = datetime.fromtimestamp(ms / 1000).astimezone()
    return f"{t:%b} {t.day}, {t.year} {t.hour % 12 or 12}:{t:%M:%S} {t:%p}"


def matched(info: RequestInfo, token: TokenRecord) -> None:
    if tokens_log.isEnabledFor(logging.INFO):
        tokens_log.info(
            'Found a matching token "%s" with %s scope and authenticated user %s. Token was '
            "created on %s. REST endpoint: %s", token.description or token.id,
            scope_label(token.scopes), token.user, _created(token.created_ms), info.path,
            extra={"request": info.describe()})


def invalid_bearer(info: RequestInfo, user: str) -> None:
    tokens_log.info("Token verification for user %s failed: No valid API token was provided %s."
                    " REST endpoint: %s", user, _NO_FALLBACK, info.path,
                    extra={"request": info.describe()})


def passed_on(info: RequestInfo, user: str) -> None:
    tokens_log.info("User %s tried to authenticate with an invalid token or regular password. "
                    "Passing the request further to the default authenticator. "
                    "REST endpoint: %s", user, info.path, extra={"request": info.describe()})


def ip_refused(info: RequestInfo, user: str) -> None:
    tokens_log.info("Token verification for user %s failed: IP address %s of request is not "
                    "allowed to access the REST API %s. REST endpoint: %s", user, info.client,
                    _NO_FALLBACK, info.path, extra={"request": info.describe()})


def scope_refused(info: RequestInfo, user: str, reason: str) -> None:
    tokens_log.info("Token verification for %s user failed: %s Request method type was %s. "
                    "REST endpoint: %s", user, reason, info.method, info.path,
                    extra={"request": info.describe()})


def rate_limited(info: RequestInfo, user: str, requests: int, minutes: int) -> None:
    ratelimit_log.info("User %s has been rate limited. The API token allows executing %d "
                       "requests within %d minutes.", user, requests, minutes,
                       extra={"request": info.describe()})
