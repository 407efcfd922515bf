"""RFC 5424 messages and CEF lines, with hostile values: pure functions, no I/O."""

from __future__ import annotations

import orjson
import pytest

from tests.consumers.helpers import add_events
from tests.forwarding.helpers import parse_cef, parse_rfc5424
from trailkeeper.forwarding.cef import cef_line, event_cef
from trailkeeper.forwarding.syslog import facility_number, format_rfc5424, parse_url
from trailkeeper.storage.base import Storage, StoredEvent

HOSTILE = 'a|b=c\\d\ne\rf]g"h ü 語 ' + "x" * 5000


def frame(**overrides: object) -> bytes:
    fields: dict[str, object] = dict(
        pri_facility=4, severity=5, timestamp_ms=1_709_294_400_123, hostname="node-1",
        app_name="trailkeeper", procid=None, msgid="audit", message="hello")
    fields.update(overrides)
    return format_rfc5424(**fields)  # type: ignore[arg-type]


def test_a_message_follows_the_rfc_5424_grammar() -> None:
    """PRI, version, RFC 3339 time in ms and Z, NILVALUE procid and SD, BOM before MSG."""
    data = frame()
    assert data == b"<37>1 2024-03-01T12:00:00.123Z node-1 trailkeeper - audit - " \
                   b"\xef\xbb\xbfhello"
    parsed = parse_rfc5424(data)
    assert (parsed.facility, parsed.severity, parsed.message) == (4, 5, "hello")
    assert frame(timestamp_ms=1_709_294_400_000).split(b" ")[1] == b"2024-03-01T12:00:00.000Z"


def test_header_fields_are_printable_ascii_cut_to_their_lengths() -> None:
    """Spaces, controls and non-ASCII become '?', and each field keeps its maximum length."""
    parsed = parse_rfc5424(frame(hostname="h ost\nü" + "h" * 300, app_name="a" * 60,
                                 procid="p" * 200, msgid="m i" * 20))
    assert parsed.hostname == ("h?ost??" + "h" * 300)[:255]
    assert parsed.app_name == "a" * 48
    assert parsed.procid == "p" * 128
    assert parsed.msgid == ("m?i" * 20)[:32]
    assert parse_rfc5424(frame(hostname="", msgid=None)).hostname == "-"


def test_structured_data_values_escape_quote_backslash_and_bracket() -> None:
    """A hostile PARAM-VALUE parses back to itself."""
    parsed = parse_rfc5424(frame(structured_data=[("meta", {"a": HOSTILE, "b": ""}),
                                                  ("x@32473", {"c": "]]"})]))
    assert parsed.sd == [("meta", {"a": HOSTILE, "b": ""}), ("x@32473", {"c": "]]"})]
    with pytest.raises(ValueError):
        frame(structured_data=[("bad id", {})])
    with pytest.raises(ValueError):
        frame(structured_data=[("ok", {"a=b": "v"})])


def test_an_over_long_message_is_cut_with_a_marker_at_a_character_boundary() -> None:
    """With max_length the frame fits, MSG is cut without half a character, SD says so."""
    message = "語" * 1000
    data = frame(message=message, max_length=600)
    assert len(data) <= 600
    parsed = parse_rfc5424(data)
    assert parsed.sd == [("trailkeeper@32473", {"truncated": str(len(message.encode()))})]
    assert parsed.message is not None and message.startswith(parsed.message)
    assert frame(message="short", max_length=600) == frame(message="short")


def test_facilities_and_urls_are_checked() -> None:
    assert facility_number("auth") == 4 and facility_number("LOCAL7") == 23
    assert facility_number(10) == 10
    for bad in ("nope", 24, -1):
        with pytest.raises(ValueError):
            facility_number(bad)
    assert parse_url("tls://siem.example.com") == ("tls", "siem.example.com", 6514)
    assert parse_url("udp://[::1]:1514") == ("udp", "::1", 1514)
    for bad in ("http://x", "tcp://", "tcp://x:99999", "tcp://x/path"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_cef_escapes_header_and_extension_values() -> None:
    """Pipes and backslashes in the header, = and line breaks in values: one line that
    parses back to the values."""
    line = cef_line(signature_id="sig|\\1", name="na|me\nx", severity=12,
                    extensions=[("act", "a=b\\c"), ("msg", HOSTILE), ("cs1", "")])
    header, ext = parse_cef(line)
    assert header == ["Trailkeeper", "Trailkeeper", header[2], "sig|\\1", "na|me x", "10"]
    assert ext["act"] == "a=b\\c"
    assert ext["msg"] == HOSTILE[:1023]
    assert "cs1" not in ext


def test_the_cef_line_of_a_stored_event(storage: Storage) -> None:
    """Action, category, author, IP, system host, id and objects, from the stored event."""
    add_events(storage, 3)
    row = storage.events_after(1, 1)[0]
    doc = orjson.loads(row.doc)
    header, ext = parse_cef(event_cef(row))
    assert header[3] == doc["type"].get("actionI18nKey", doc["type"]["action"])
    assert header[4] == doc["type"]["action"] == ext["act"]
    assert ext["rt"] == str(row.timestamp_ms)
    assert ext["externalId"] == str(row.id)
    assert ext["suser"] == doc["author"]["name"]
    assert ext["src"] == doc["source"]
    assert ext["dvchost"] == "bitbucket.internal"
    assert ext["cs1Label"] == "affectedObjects"
    assert ext["cs1"] == ";".join(f"{o['type']}:{o['name']}" for o in doc["affectedObjects"])
    assert "nëw-1" in ext["msg"]


def test_cef_of_hostile_event_values_stays_one_parsable_line() -> None:
    """Every document string hostile: the line still parses to the values."""
    doc = {"timestamp": "2024-03-01T12:00:00Z",
           "author": {"id": HOSTILE, "name": HOSTILE, "type": "NORMAL"},
           "type": {"category": HOSTILE, "action": HOSTILE, "area": "SECURITY",
                    "level": "BASE"},
           "affectedObjects": [{"type": "T|=", "name": "n\n]"}], "changedValues": [],
           "extraAttributes": [{"name": "k", "value": "v=\\"}], "source": "::1",
           "system": HOSTILE}
    row = StoredEvent(7, 1_709_294_400_000, orjson.dumps(doc))
    header, ext = parse_cef(event_cef(row))
    assert header[4] == HOSTILE.replace("\n", " ").replace("\r", " ")[:512]
    assert header[5] == "7"
    assert ext["act"] == HOSTILE[:63]
    assert ext["cs1"] == "T|=:n\n]"
    assert ext["cs2"] == "k:v=\\"
    assert ext["c6a2"] == "::1"
