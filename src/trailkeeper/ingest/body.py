"""Decode an HTTP ingest body: one JSON object, a JSON array, or NDJSON (one per line)."""

from __future__ import annotations

from typing import Any

import orjson

from trailkeeper.errors import (
    BadRequestError,
    FieldProblem,
    InvalidEventError,
    PayloadTooLargeError,
)


def decode_items(body: bytes, content_type: str | None, *, max_events: int) -> list[Any]:
    """The raw JSON items of a body; errors name the line (NDJSON) or position (JSON)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    ndjson = media in ("application/x-ndjson", "application/ndjson", "application/jsonl",
                       "application/x-jsonlines", "application/jsonlines")
    stripped = body.lstrip()
    if not stripped:
        raise BadRequestError("The request body is empty; send an event, an array or NDJSON")
    if not ndjson and media not in ("", "application/json", "text/plain") \
            and not media.endswith("+json"):
        raise BadRequestError(f"Unsupported content type {media!r}; use application/json "
                              "or application/x-ndjson")
    if ndjson:
        items = _ndjson(body, max_events)
    else:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequestError(f"Malformed JSON: {exc}") from None
        items = parsed if isinstance(parsed, list) else [parsed]
    if not items:
        raise BadRequestError("The request holds no events")
    if len(items) > max_events:
        raise PayloadTooLargeError(
            f"The batch holds {len(items)} events; at most {max_events} are accepted per request")
    return items


def _ndjson(body: bytes, max_events: int) -> list[Any]:
    items: list[Any] = []
    problems: list[FieldProblem] = []
    # Split on b"\n" only: str.splitlines() would also split on U+2028 and friends.
    for line in body.split(b"\n"):
        if not line.strip():
            continue
        index = len(items)
        if index >= max_events:
            raise PayloadTooLargeError(
                f"The batch holds more than {max_events} events; at most {max_events} are "
                "accepted per request")
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            problems.append(FieldProblem("(event)", f"malformed JSON: {exc}", index))
            items.append(None)
    if problems:
        raise InvalidEventError(problems)
    return items
