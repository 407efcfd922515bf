"""Cross-site request forgery protection for every form and state-changing request.

Three layers, each sufficient against a form posted from another site:

- the session cookie is ``SameSite=Lax``: browsers do not send it with a cross-site POST;
- every POST must carry the session's token in the ``csrf`` field: an HMAC of the cookie's
  secret (synchronizer token without storage; another site can neither read the cookie nor
  compute the token), compared in constant time;
- a POST whose ``Origin`` (or, without one, ``Sec-Fetch-Site``) says it came from another
  site is refused before anything else.

The sign-in form has no session yet: it uses a double-submit token instead, a random value
in a short-lived ``tk_login`` cookie that the form must repeat.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

FIELD = "csrf"
LOGIN_COOKIE = "tk_login"
_CONTEXT = b"trailkeeper web csrf v1"


def token_for(secret: str) -> str:
    """The CSRF token of a session, derived from its cookie's secret."""
    digest = hmac.digest(secret.encode(), _CONTEXT, hashlib.sha256)
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def login_token() -> str:
    return secrets.token_urlsafe(24)


def matches(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; a missing value never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def same_site(request: Request) -> bool:
    """Whether a state-changing request comes from our own pages, as far as the browser
    says: ``Origin`` names our host, or ``Sec-Fetch-Site`` is same-origin (or none: typed in).
    Clients that send neither (not a browser) are left to the token check."""
    origin = request.headers.get("origin")
    if origin is not None:
        if origin == "null":
            return False
        host = request.headers.get("host", "")
        return urlsplit(origin).netloc.lower() == host.lower()
    fetch_site = request.headers.get("sec-fetch-site")
    return fetch_site in (None, "same-origin", "none")
