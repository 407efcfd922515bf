"""Canonical bytes and leaf records: what each leaf of the Merkle tree covers, and how an
exported line hashes to the same leaf as the stored event."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.export.strategies import events, raw_docs, row_of
from tests.factories import rich_event
from trailkeeper.consumers.fileline import file_line
from trailkeeper.export.formats import ExportOptions, export
from trailkeeper.integrity.canonical import (
    RECORD_SIZE,
    CanonicalError,
    LeafRecord,
    _iso_ms,
    _spelled_as_written,
    canonical_from_doc,
    canonical_from_line,
    leaf_record,
    stored_record,
)
from trailkeeper.integrity.merkle import leaf_hash
from trailkeeper.model.timestamps import MAX_MS, format_iso
from trailkeeper.storage.base import StoredEvent


def _ndjson_lines(rows: list[StoredEvent]) -> list[bytes]:
    out = b"".join(export(rows, "ndjson", ExportOptions()))
    return [line for line in out.split(b"\n") if line]


def _reference(value: Any) -> bytes:
    """The documented serialisation, written with the standard library."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


@settings(max_examples=300, deadline=None)
@given(events, st.integers(1, 2**40))
def test_canonical_bytes_are_the_audit_log_line_of_the_event(event: Any, row_id: int) -> None:
    """From a stored document, the canonical bytes are the file sink's line without its
    newline: the bytes Atlassian-format log files already hold."""
    row = row_of(event, row_id)
    ts, canonical = canonical_from_doc(row.doc, row.id)
    assert canonical + b"\n" == file_line(row)
    assert ts == row.timestamp_ms


@settings(max_examples=300, deadline=None)
@given(st.lists(events, min_size=1, max_size=4))
def test_an_exported_line_hashes_to_the_leaf_of_the_stored_event(batch: list[Any]) -> None:
    """An NDJSON export line, parsed and serialised again, gives the stored event's record:
    a verifier needs only the export."""
    rows = [row_of(e, n) for n, e in enumerate(batch, start=1)]
    for row, line in zip(rows, _ndjson_lines(rows), strict=True):
        event_id, ts, canonical = canonical_from_line(orjson.loads(line))
        assert leaf_record(event_id, ts, canonical) == stored_record(row.id, row.timestamp_ms,
                                                                    row.doc)


@settings(max_examples=300, deadline=None)
@given(events)
def test_the_serialisation_is_the_documented_one(event: Any) -> None:
    """Keys sorted, no whitespace, UTF-8, minimal escapes: json.dumps(sort_keys=True,
    separators=(",", ":"), ensure_ascii=False) writes the same bytes."""
    row = row_of(event, 5)
    _, canonical = canonical_from_doc(row.doc, row.id)
    assert _reference(orjson.loads(canonical)) == canonical


def test_reencoding_a_line_does_not_change_its_bytes_but_any_value_does() -> None:
    """Pretty printing, key order and escapes are not content; a changed value is."""
    row = row_of(rich_event(), 42)
    line = orjson.loads(_ndjson_lines([row])[0])
    _, _, canonical = canonical_from_line(line)
    pretty = json.loads(json.dumps(line, indent=3, ensure_ascii=True))
    assert canonical_from_line(dict(reversed(list(pretty.items()))))[2] == canonical
    changed = json.loads(json.dumps(line))
    changed["changedValues"][0]["to"] = "new text!"
    assert canonical_from_line(changed)[2] != canonical


def test_a_known_event_has_a_known_leaf() -> None:
    """The format is stable across versions and backends: this event's canonical bytes and
    leaf hash are fixed here, and a change to either is a change of format."""
    row = row_of(rich_event(uid="golden-1"), 1234, received_ms=1_700_000_000_000)
    ts, canonical = canonical_from_doc(row.doc, row.id)
    assert canonical == (
        b'{"affectedObjects":[{"id":"1","name":"PRJ","type":"PROJECT"},{"id":"7",'
        b'"name":"rep_1","type":"REPOSITORY"}],"auditType":{"action":"Repository created",'
        b'"area":"LOCAL_CONFIG_AND_ADMINISTRATION","category":"Repositories","level":"BASE"},'
        b'"author":{"id":"11","name":"alice","type":"NORMAL"},"changedValues":[{"from":'
        b'"old text","i18nKey":"bitbucket.audit.description","key":"Description","to":'
        b'"new text"}],"extraAttributes":[{"name":"target","nameI18nKey":'
        b'"bitbucket.audit.target","value":"rep_1"}],"id":1234,"method":"Browser","node":'
        b'"8767044c-1b98-4d64-82db-ef29af8c3792","source":"10.50.73.5","system":'
        b'"http://bitbucket.internal:7990","timestamp":{"epochSecond":1709294400,"nano":0},'
        b'"uid":"golden-1","version":"1.0"}')
    record = leaf_record(row.id, ts, canonical)
    assert record.hex() == ("01" "00000000000004d2" "0000018df9e2b200"
                            "2d81480b4c98004fa85cca2dbbc2e7a7ad8ad8c66213e3bcf089db34dbb1e3e0")
    assert record[17:] == hashlib.sha256(canonical).digest()
    assert leaf_hash(record).hex() == \
        "15e047acb8f41f4f9029e96eefe9061a0d0f8eec5d6577996f402a15536a4e31"


def test_a_record_decodes_to_the_event_it_names() -> None:
    """The id and time are in the clear: enough to tell an expired event from a deleted one."""
    record = leaf_record(99, -5, b"{}")
    decoded = LeafRecord.decode(record)
    assert (decoded.event_id, decoded.timestamp_ms, decoded.encode()) == (99, -5, record)
    assert len(record) == RECORD_SIZE
    with pytest.raises(CanonicalError, match="version"):
        LeafRecord.decode(b"\x02" + record[1:])
    with pytest.raises(CanonicalError, match="49 bytes"):
        LeafRecord.decode(record[:-1])


@settings(max_examples=300, deadline=None)
@given(raw_docs())
def test_any_stored_document_has_a_record_and_any_change_shows(doc: bytes) -> None:
    """A document no producer of ours writes still gets a leaf (hashed as stored), and
    changing one byte of it changes the leaf."""
    record = stored_record(7, 1_600_000_000_123, doc)
    assert len(record) == RECORD_SIZE
    if doc:
        flipped = bytes([doc[0] ^ 0x01]) + doc[1:]
        assert stored_record(7, 1_600_000_000_123, flipped) != record


@pytest.mark.parametrize("line", [
    [], "x", {"timestamp": {"epochSecond": 1, "nano": 0}}, {"id": "5"}, {"id": True},
    {"id": 0, "timestamp": {"epochSecond": 1, "nano": 0}},
    {"id": 5, "timestamp": "2024-01-01T00:00:00Z"},
    {"id": 5, "timestamp": {"epochSecond": 1, "nano": 1_000_000_000}},
    {"id": 5, "timestamp": {"epochSecond": 1, "nano": 0}, "x": 2**70},
])
def test_a_line_that_is_not_an_exported_event_is_refused(line: Any) -> None:
    """Lines without an integer id and an {epochSecond, nano} time cannot be placed."""
    with pytest.raises(CanonicalError):
        canonical_from_line(line)


@settings(max_examples=2000, deadline=None)
@given(st.integers(-(10**13), MAX_MS), st.integers(0, 23), st.sampled_from(
    [chr(c) for c in range(32, 127)]))
def test_only_trailkeepers_spelling_of_a_time_is_canonical(ms: int, at: int, char: str) -> None:
    """A stored timestamp is canonical exactly when it is `format_iso` of its instant: the
    quick shape test never accepts what `format_iso` would not write."""
    written = format_iso(ms)
    for stamp in (written, written[:at] + char + written[at + 1:]):
        try:
            ts = _iso_ms(stamp)
        except CanonicalError:
            continue
        if _spelled_as_written(stamp, ts):
            assert format_iso(ts) == stamp
