"""JSON: one document, streamed.

Not bare: ``{"total": N, "events": [...], "next_cursor": "..."}`` followed by a newline;
``total`` only when given, ``next_cursor`` only when `ExportOptions.next_cursor` is a string
or a function that returns one (it is called after the last row). Bare: the array alone,
``[...]`` (no total, no cursor).

Each event is the REST entity with ``"id"`` first: the stored document spliced after the id
(`StoredEvent.rest_json`), not decoded and encoded again. With ``fields``:
``{"<field name>": "<value>", ...}`` in the order chosen (values are text).

A document written by another tool could hold what orjson never writes and a JSON reader
may refuse: bytes that are not UTF-8, raw control characters, lone surrogate escapes,
``NaN``. Each chunk is validated at once (msgspec, without building objects, about 0.5 µs
a row); the rows of a chunk that fails are validated one by one, and those that fail are
decoded leniently and encoded again (see `documents`). DEL,
C1 controls and U+2028/U+2029 are escaped as in NDJSON, so the output is also safe to
embed in JavaScript and to split into lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import msgspec
import orjson

from trailkeeper.export.documents import UNREADABLE, dict_of, rescue, values_of
from trailkeeper.export.escaping import json_one_line
from trailkeeper.export.options import CHUNK_ROWS, ExportOptions
from trailkeeper.query.fields import Field
from trailkeeper.storage.base import StoredEvent

_validate = msgspec.json.Decoder(list[msgspec.Raw]).decode


def write_json(rows: Iterable[StoredEvent], options: ExportOptions) -> Iterator[bytes]:
    if options.bare:
        head = b"["
    elif options.total is not None:
        head = b'{"total":%d,"events":[' % options.total
    else:
        head = b'{"events":['
    bodies = _field_entities(rows, options.fields) if options.fields else _entities(rows)
    for body in bodies:
        yield head + body
        head = b","
    if head != b",":  # no rows: the head is still due
        yield head
    if options.bare:
        yield b"]\n"
        return
    cursor = options.resolved_cursor()
    tail = b"]" if cursor is None else b'],"next_cursor":' + orjson.dumps(cursor)
    yield tail + b"}\n"


def _entities(rows: Iterable[StoredEvent]) -> Iterator[bytes]:
    """Comma-joined REST entities, one chunk at a time."""
    parts: list[bytes] = []
    batch: list[StoredEvent] = []
    for row in rows:
        doc = row.doc
        # rest_json splices after "{": it needs an object with at least one key.
        parts.append(row.rest_json() if doc[:2] == b'{"' and doc[-1:] == b"}"
                     else _encoded(row))
        batch.append(row)
        if len(parts) == CHUNK_ROWS:
            yield _checked(parts, batch)
            parts.clear()
            batch.clear()
    if parts:
        yield _checked(parts, batch)


def _checked(parts: list[bytes], batch: list[StoredEvent]) -> bytes:
    body = b",".join(parts)
    if not _sound(body, len(parts)):
        body = b",".join([part if _sound(part, 1) else _encoded(row)
                          for part, row in zip(parts, batch, strict=True)])
    return json_one_line(body)


def _sound(body: bytes, count: int) -> bool:
    """Whether comma-joined entities are ``count`` values that any JSON reader accepts."""
    try:  # msgspec checks syntax, escapes and surrogates without building the values
        if len(_validate(b"[%s]" % body)) != count:
            return False
    except UNREADABLE:
        return False
    if body.isascii():
        return True
    try:  # ... but not that the bytes are UTF-8
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def _encoded(row: StoredEvent) -> bytes:
    doc = dict_of(row)
    try:
        return orjson.dumps({"id": row.id, **doc})
    except orjson.JSONEncodeError:  # nested deeper than orjson goes, or an integer > 64 bits
        return orjson.dumps({"id": row.id, **msgspec.to_builtins(rescue(doc))})


def _field_entities(rows: Iterable[StoredEvent], fields: Sequence[Field]) -> Iterator[bytes]:
    names = [f.name for f in fields]
    parts: list[bytes] = []
    for row in rows:
        parts.append(orjson.dumps(dict(zip(names, values_of(row, fields), strict=True))))
        if len(parts) == CHUNK_ROWS:
            yield json_one_line(b",".join(parts))
            parts.clear()
    if parts:
        yield json_one_line(b",".join(parts))
