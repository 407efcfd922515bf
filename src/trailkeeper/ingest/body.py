"""Split an HTTP ingest body into the raw JSON of each event: one object, an array, or NDJSON."""

from __future__ import annotations

import orjson

from trailkeeper.errors import BadRequestError, PayloadTooLargeError
from trailkeeper.model.wire import split_array

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                          "application/x-jsonlines", "application/jsonlines"})
JSON_TYPES = frozenset({"", "application/json", "text/plain"})


def split_items(body: bytes, content_type: str | None, *, max_events: int) -> list[bytes]:
    """The raw JSON of every event in the body (decoding each is the caller's business)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    ndjson = media in NDJSON_TYPES
    if not ndjson and media not in JSON_TYPES and not media.endswith("+json"):
        raise BadRequestError(f"Unsupported content type {media!r}; use application/json "
                              "or application/x-ndjson")
    stripped = body.strip()
    if not stripped:
        raise BadRequestError("The request body is empty; send an event, an array or NDJSON")
    if ndjson:
        # Split on b"\n" only: str.splitlines() would also split on U+2028 and friends.
        items = [line for line in stripped.split(b"\n") if line.strip()]
    elif stripped[:1] == b"[":
        found = split_array(stripped)
        if found is None:
            _raise_malformed(stripped)
        items = found or []
    else:
        items = [stripped]
    if not items:
        raise BadRequestError("The request holds no events")
    if len(items) > max_events:
        raise PayloadTooLargeError(
            f"The batch holds {len(items)} events; at most {max_events} are accepted per request")
    return items


def _raise_malformed(body: bytes) -> None:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"Malformed JSON: {exc}") from None
    raise BadRequestError("Malformed JSON array")
