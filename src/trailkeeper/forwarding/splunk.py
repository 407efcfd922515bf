"""Splunk HTTP Event Collector: a client that posts batches of events to
``{url}/services/collector/event``.

Each event is a JSON object ``{"time": <epoch seconds, ms precision>, "host", "source",
"sourcetype", "index"?, "event": <the Atlassian file shape of the audit event, with our
id and uid>}``; a request carries several of them back to back, up to ``max_batch_bytes``.

Every failure is retried (`SendError`), never dropped: 429, 503 and other 5xx and connection
failures are the receiver's trouble (``Retry-After`` honoured); 401 and 403 (a wrong or
disabled token) and 400 (a format Splunk refuses, which would be our bug) are logged as
errors at every attempt and retried too, so that nothing the store acknowledged is skipped
while an operator fixes the problem. HEC's indexer acknowledgment is not used: a 200 means
Splunk accepted the events for indexing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from trailkeeper import __version__
from trailkeeper.forwarding.errors import SendError

log = logging.getLogger("trailkeeper.forwarding.splunk")

DEFAULT_SOURCETYPE = "atlassian:audit"
DEFAULT_SOURCE = "trailkeeper"
DEFAULT_MAX_BATCH_BYTES = 1_000_000  # HEC's max_content_length is at least 1 MB
_RETRY_AFTER_MAX_S = 300.0


def hec_event(event_json: bytes, timestamp_ms: int, *, host: str | None,
              source: str | None, sourcetype: str | None, index: str | None) -> bytes:
    """One HEC event object as JSON, ``event_json`` (a JSON object) as its ``event``."""
    envelope: dict[str, Any] = {"time": round(timestamp_ms / 1000, 3)}
    for key, given in (("host", host), ("source", source), ("sourcetype", sourcetype),
                       ("index", index)):
        if given:
            envelope[key] = given
    return orjson.dumps(envelope)[:-1] + b',"event":' + event_json + b"}"


def _retry_after(response: httpx.Response) -> float | None:
    text = response.headers.get("retry-after")
    try:
        return min(_RETRY_AFTER_MAX_S, max(0.0, float(text))) if text else None
    except ValueError:
        return None


class HecClient:
    """Posts event objects to one HTTP Event Collector with one token."""

    def __init__(self, url: str, token: str, *, ca_file: Path | None = None,
                 verify: bool = True, timeout_s: float = 30.0,
                 max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.endpoint = url.rstrip("/") + "/services/collector/event"
        self.max_batch_bytes = max_batch_bytes
        verify_with: bool | str = str(ca_file) if ca_file and verify else verify
        self._client = httpx.Client(
            headers={"Authorization": f"Splunk {token}",
                     "Content-Type": "application/json",
                     "User-Agent": f"trailkeeper/{__version__}"},
            verify=verify_with, timeout=timeout_s, transport=transport)

    def post(self, objects: Sequence[bytes]) -> None:
        """Send the objects, in order, in requests of at most ``max_batch_bytes`` (one
        larger object goes alone); `SendError` at the first request not accepted."""
        chunk: list[bytes] = []
        size = 0
        for item in objects:
            if chunk and size + len(item) > self.max_batch_bytes:
                self._post(b"".join(chunk), len(chunk))
                chunk, size = [], 0
            chunk.append(item)
            size += len(item)
        if chunk:
            self._post(b"".join(chunk), len(chunk))

    def _post(self, body: bytes, count: int) -> None:
        try:
            response = self._client.post(self.endpoint, content=body)
        except httpx.HTTPError as exc:
            raise SendError(f"Splunk HEC {self.endpoint}: {type(exc).__name__}: {exc}") \
                from exc
        status = response.status_code
        if status == 200:
            return
        reason = _reason(response)
        if status in (401, 403):
            raise SendError(f"Splunk HEC refused the token ({status}: {reason}); fix the "
                            f"token: the {count} events are sent again", config_problem=True)
        if status == 400:
            raise SendError(f"Splunk HEC refused the data ({reason}); this is a bug in "
                            f"Trailkeeper: the {count} events are sent again",
                            config_problem=True)
        raise SendError(f"Splunk HEC answered {status} ({reason})",
                        retry_after_s=_retry_after(response))

    def close(self) -> None:
        self._client.close()


def _reason(response: httpx.Response) -> str:
    """HEC's ``{"text", "code"}`` answer, or the start of whatever else came back."""
    try:
        body = response.json()
        return f"code {body.get('code')}: {body.get('text')}"
    except (ValueError, AttributeError):
        return response.text[:200].replace("\n", " ")
