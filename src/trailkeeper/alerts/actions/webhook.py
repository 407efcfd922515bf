"""The webhook alert action: each alert POSTed as JSON, signed with HMAC-SHA256.

```toml
[[action]]
name = "soar"
type = "webhook"
url = "https://soar.example.com/hooks/trailkeeper"
secret_env = "TRAILKEEPER_WEBHOOK_SECRET"
min_level = "high"
```

The request carries the alert (`AlertMessage.as_json`) and these headers:

- ``X-Trailkeeper-Timestamp``: the time of signing, in Unix seconds;
- ``X-Trailkeeper-Signature``: ``sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``;
- ``X-Trailkeeper-Delivery``: the alert id, the same on every retry (an idempotency key).

A receiver checks the signature with `verify_signature` (or its few lines in any language,
see docs/detection.md). A 2xx reply is a delivery; 408, 429, 5xx, refused connections and
time-outs are retried (after ``Retry-After`` when the receiver sends one); any other reply
gives the alert up for this action.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import ssl
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from trailkeeper import __version__
from trailkeeper.alerts.actions.base import AlertMessage, DeliveryError
from trailkeeper.alerts.actions.secrets import check_one_secret, resolve_secret
from trailkeeper.alerts.routing import RouteConfig
from trailkeeper.errors import ConfigurationError

log = logging.getLogger("trailkeeper.alerts.webhook")

TIMESTAMP_HEADER = "X-Trailkeeper-Timestamp"
SIGNATURE_HEADER = "X-Trailkeeper-Signature"
DELIVERY_HEADER = "X-Trailkeeper-Delivery"
_RESERVED = {"content-type", "content-length", "host", "user-agent", TIMESTAMP_HEADER.lower(),
             SIGNATURE_HEADER.lower(), DELIVERY_HEADER.lower()}
_RETRYABLE_STATUS = {408, 425, 429}


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Trailkeeper-Signature`` value of ``body`` sent at ``timestamp``."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(secret: str | bytes, timestamp: str, body: bytes, header: str, *,
                     tolerance_s: float = 300, now: float | None = None) -> bool:
    """Whether a webhook request is genuine: ``header`` (``X-Trailkeeper-Signature``) signs
    exactly ``body`` (the raw request body, before any JSON parsing) and ``timestamp``
    (``X-Trailkeeper-Timestamp``), and that timestamp is within ``tolerance_s`` seconds of
    ``now`` (default: the current time), which stops the replay of an old request.

    Receivers should also drop repeated ``X-Trailkeeper-Delivery`` ids: a delivery is
    retried until it is acknowledged, so the same alert can arrive twice.
    """
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body).encode(),
                               header.strip().encode("utf-8", "replace"))


class WebhookConfig(RouteConfig):
    """``[[action]]`` with ``type = "webhook"``."""

    type: Literal["webhook"] = "webhook"
    url: str
    secret: SecretStr | None = None
    secret_env: str | None = None
    secret_file: Path | None = None
    headers: dict[str, str] = Field(default_factory=dict)  # e.g. an Authorization header
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    ca_file: Path | None = None  # trust this CA (a private or self-signed receiver)
    verify: bool = True

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if any(ord(c) <= 32 or ord(c) == 127 for c in value):
            raise ValueError("must not contain spaces or control characters")
        return value

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not name or not all(c.isascii() and (c.isalnum() or c in "-_") for c in name):
                raise ValueError(f"not a header name: {name!r}")
            if name.lower() in _RESERVED:
                raise ValueError(f"{name} is set by Trailkeeper")
            if any(ord(c) < 32 or ord(c) == 127 for c in text):
                raise ValueError(f"the value of {name} must not contain control characters")
        return value

    @model_validator(mode="after")
    def _has_secret(self) -> WebhookConfig:
        check_one_secret(self.secret, self.secret_env, self.secret_file, what="secret")
        if self.secret is None and self.secret_env is None and self.secret_file is None:
            raise ValueError("a webhook needs secret, secret_env or secret_file "
                             "(the key its requests are signed with)")
        return self

    def build(self, *, clock: Callable[[], float] = time.time) -> WebhookAction:
        """The live action; reads the secret and the CA file now."""
        try:
            secret = resolve_secret(self.secret, self.secret_env, self.secret_file,
                                    what="secret")
            verify: ssl.SSLContext | bool = True
            if not self.verify:
                verify = False
            elif self.ca_file is not None:
                verify = ssl.create_default_context(cafile=str(self.ca_file))
        except (ValueError, OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"action {self.name}: {exc}") from None
        assert secret is not None
        return WebhookAction(self, secret=secret, verify=verify, clock=clock)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


class WebhookAction:
    """POSTs each alert to one URL; one connection pool for the action's life."""

    def __init__(self, config: WebhookConfig, *, secret: str,
                 verify: ssl.SSLContext | bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._secret = secret.encode()
        self._clock = clock
        self._client = httpx.Client(
            verify=verify, timeout=config.timeout_s, follow_redirects=False,
            headers={**config.headers, "User-Agent": f"Trailkeeper/{__version__}"})
        parts = urlsplit(config.url)
        # For messages: never the query string, which may hold a token.
        self._where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"WebhookAction(name={self.config.name!r}, url={self._where!r})"

    def request_headers(self, alert_id: int, body: bytes) -> dict[str, str]:
        """The signed headers of one delivery."""
        timestamp = str(int(self._clock()))
        return {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            DELIVERY_HEADER: str(alert_id),
        }

    def deliver(self, message: AlertMessage) -> None:
        body = orjson.dumps(message.as_json())
        headers = self.request_headers(message.alert.id, body)
        try:
            response = self._client.post(self.config.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            if _certificate_problem(exc):
                raise DeliveryError(f"{self._where}: the receiver's certificate is not "
                                    "trusted; set ca_file to its CA", retryable=False) from None
            raise DeliveryError(f"{self._where}: {type(exc).__name__}: {exc}",
                                retryable=True) from None
        status = response.status_code
        if 200 <= status < 300:
            log.debug("alert %d delivered to %s (%d)", message.alert.id, self._where, status)
            return
        reason = f"{self._where} replied {status} {response.reason_phrase}"
        if status in _RETRYABLE_STATUS or status >= 500:
            raise DeliveryError(reason, retryable=True, retry_after_s=retry_after_seconds(
                response.headers.get("Retry-After"), now=self._clock()))
        if 300 <= status < 400:
            target = response.headers.get("Location", "the final URL")
            reason += f" (redirects are not followed: configure {target!r} instead)"
        raise DeliveryError(reason, retryable=False)

    def close(self) -> None:
        self._client.close()


def _certificate_problem(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
