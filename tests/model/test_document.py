"""The fast REST document and the store's encoding agree byte for byte with the reference
rendering, ``orjson.dumps(event.to_rest())``; the canonical bytes rendered with it are those
the Merkle tree's verifier derives from the stored document."""

from __future__ import annotations

import dataclasses
import hashlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.export.strategies import events
from trailkeeper.demo import demo_events
from trailkeeper.integrity.canonical import canonical_from_doc, digest_record, stored_record
from trailkeeper.model import document
from trailkeeper.model.document import rest_document, rest_document_and_digest
from trailkeeper.model.event import AuditAuthor, AuditEvent, AuditResource, AuditType
from trailkeeper.model.timestamps import MAX_MS, format_instant, format_iso, ms_to_datetime
from trailkeeper.storage.base import NewEvent
from trailkeeper.storage.rows import encode, search_text

DEFAULT_AUTHOR = AuditAuthor("7", "alice", "NORMAL", "http://host/users/alice")


def stamp(event: AuditEvent) -> str | None:
    return None if event.timestamp is None else format_instant(event.timestamp)


def reference_doc(event: AuditEvent) -> bytes:
    rest = event.to_rest()
    rest.pop("id", None)
    return orjson.dumps(rest)


def reference_encode(event: AuditEvent, received_ms: int, author: AuditAuthor) -> NewEvent:
    """What the store has always kept: the producer's document hashed, then the document
    with the time of receipt and the default author filled in."""
    fingerprint = (hashlib.sha256(reference_doc(event)).digest()
                   if event.uid is not None else None)
    stored = dataclasses.replace(
        event,
        timestamp=ms_to_datetime(received_ms) if event.timestamp is None else event.timestamp,
        author=author if event.author is None else event.author,
    )
    assert stored.timestamp_ms is not None and stored.author is not None
    return NewEvent(event, stored.timestamp_ms, stored.author, fingerprint,
                    reference_doc(stored), search_text(event, stored.author))


@settings(max_examples=500)
@given(events)
def test_the_document_is_the_reference_rendering(event: AuditEvent) -> None:
    assert rest_document(event, stamp(event), event.author) == reference_doc(event)
    # again, now from the caches of rendered parts
    assert rest_document(event, stamp(event), event.author) == reference_doc(event)


@settings(max_examples=500)
@given(events, st.integers(0, MAX_MS))
def test_encoding_stores_what_the_reference_stores(event: AuditEvent, received_ms: int) -> None:
    assert encode(event, received_ms, DEFAULT_AUTHOR) == reference_encode(
        event, received_ms, DEFAULT_AUTHOR)


@settings(max_examples=1000)
@given(events, st.integers(0, MAX_MS), st.integers(1, 2**63 - 1))
def test_the_canonical_bytes_rendered_with_the_document_are_the_documents(
        event: AuditEvent, received_ms: int, event_id: int) -> None:
    plain = encode(event, received_ms, DEFAULT_AUTHOR)
    doc, parts = rest_document_and_digest(event, format_iso(plain.timestamp_ms),
                                          plain.timestamp_ms, plain.author)
    assert doc == plain.doc
    assert parts.canonical(event_id) == canonical_from_doc(plain.doc, event_id)[1]
    new = encode(event, received_ms, DEFAULT_AUTHOR, canonical=True)
    assert new.doc == plain.doc and new.canonical is not None
    digest = new.canonical.digest(event_id)
    assert digest == new.canonical.digest(event_id)  # finished twice: the same
    assert digest_record(event_id, new.timestamp_ms, digest) == \
        stored_record(event_id, plain.timestamp_ms, plain.doc)


def test_demo_events_have_the_canonical_bytes_of_their_documents() -> None:
    for n, event in enumerate(demo_events(2000, end_ms=1_700_000_000_000), start=1):
        new = encode(event, 0, DEFAULT_AUTHOR, canonical=True)
        assert new.canonical is not None
        assert new.canonical.digest(n) == hashlib.sha256(
            canonical_from_doc(new.doc, n)[1]).digest()


def test_demo_events_render_as_the_reference_does() -> None:
    for event in demo_events(2000, end_ms=1_700_000_000_000):
        assert rest_document(event, stamp(event), event.author) == reference_doc(event)


def test_equal_parts_share_a_rendering_and_unequal_ones_do_not() -> None:
    kind = AuditType("Repositories", "Repository created")
    first = AuditEvent(type=kind, author=AuditAuthor("1", "admin"),
                       affected_objects=[AuditResource("REPOSITORY", "rep_1", id="1")])
    twin = AuditEvent(type=AuditType("Repositories", "Repository created"),
                      author=AuditAuthor("1", "admin"),
                      affected_objects=[AuditResource("REPOSITORY", "rep_1", id="1")])
    other = AuditEvent(type=AuditType("Repositories", "Repository deleted"),
                       author=AuditAuthor("1", "admin", uri="http://host/users/admin"),
                       affected_objects=[AuditResource("REPOSITORY", "rep_1", id="2")])
    for event in (first, twin, other, first):
        assert rest_document(event, None, event.author) == reference_doc(event)


def test_the_id_is_never_part_of_the_document() -> None:
    event = dataclasses.replace(next(iter(demo_events(1))), id=42)
    assert b'"id":42' not in rest_document(event, stamp(event), event.author)
    assert rest_document(event, stamp(event), event.author) == reference_doc(event)


def test_full_caches_start_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document, "_CACHE_LIMIT", 3)
    monkeypatch.setattr(document, "_objects", {})
    for event in demo_events(200, end_ms=1_700_000_000_000):
        assert rest_document(event, stamp(event), event.author) == reference_doc(event)
    assert len(document._objects) <= 3
