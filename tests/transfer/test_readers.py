"""Reading every input format into events, with the line of each record or why it is bad."""

from __future__ import annotations

import dataclasses
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from tests.transfer.helpers import log_lines, sample_events, write_log
from trailkeeper.export.csv import atlassian_csv
from trailkeeper.model.event import AuditAuthor, AuditEvent, AuditResource, AuditType
from trailkeeper.transfer.formats import Format, UnknownFormatError, detect
from trailkeeper.transfer.readers import Record, pieces, read_records

ATLASSIAN_LINE = (
    '{"affectedObjects":[{"id":"3","name":"AT","type":"PROJECT"}],"auditType":{"action":'
    '"Project deleted","actionI18nKey":"bitbucket.service.project.audit.action.projectdeleted",'
    '"area":"LOCAL_CONFIG_AND_ADMINISTRATION","category":"Projects","categoryI18nKey":'
    '"bitbucket.service.audit.category.projects","level":"BASE"},"author":{"id":"2","name":'
    '"admin","type":"NORMAL"},"changedValues":[],"extraAttributes":[{"name":"target",'
    '"nameI18nKey":"bitbucket.audit.attribute.legacy.target","value":"AT"}],"method":"Browser",'
    '"node":"8767044c-1b98-4d64-82db-ef29af8c3792","source":"10.100.100.2","system":'
    '"http://bitbucket.internal:7990","timestamp":{"epochSecond":1638036799,"nano":960000000},'
    '"version":"1.0"}'
)


def events_of(records: list[Record]) -> list[AuditEvent]:
    return [r.event for r in records if r.event is not None]


def problems_of(records: list[Record]) -> list[tuple[int, str]]:
    return [(r.line, r.error) for r in records if r.error is not None]


def test_an_atlassian_log_line_reads_as_the_event_it_records(tmp_path: Path) -> None:
    path = tmp_path / "20211127.00000.audit.log"
    path.write_text(ATLASSIAN_LINE + "\n")
    [record] = read_records(path)
    assert record.line == 1
    assert record.event is not None
    assert record.event.type.action == "Project deleted"
    assert record.event.timestamp == datetime(2021, 11, 27, 18, 13, 19, 960000, tzinfo=UTC)
    assert record.event.file_line() == ATLASSIAN_LINE


def test_log_lines_keep_their_line_numbers_and_blank_lines_are_not_records(
        tmp_path: Path) -> None:
    events = sample_events(3)
    path = tmp_path / "20240601.00000.audit.log"
    path.write_bytes(log_lines(events[:2]) + b"\n   \n" + log_lines(events[2:]))
    records = list(read_records(path))
    assert [r.line for r in records] == [1, 2, 5]
    assert events_of(records) == events


def test_windows_line_ends_and_a_byte_order_mark_are_accepted(tmp_path: Path) -> None:
    events = sample_events(2)
    path = tmp_path / "export.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + log_lines(events).replace(b"\n", b"\r\n"))
    assert events_of(list(read_records(path))) == events


def test_rest_shaped_lines_read_as_ndjson(tmp_path: Path) -> None:
    events = sample_events(3)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e.to_rest()) + b"\n" for e in events))
    assert detect(path).format is Format.LINES
    assert events_of(list(read_records(path))) == events


def test_a_rest_response_reads_its_entities_with_the_line_each_starts_on(
        tmp_path: Path) -> None:
    events = sample_events(3)
    page = {"entities": [e.to_rest() for e in events],
            "pagingInfo": {"blockSize": 3, "nextPageCursor": None}}
    path = tmp_path / "page.json"
    path.write_text(json.dumps(page, indent=2))
    records = list(read_records(path))
    assert events_of(records) == events
    text = path.read_text().splitlines()
    for record, event in zip(records, events, strict=True):
        # Each entity starts with "{" on its line; its first key follows on the next.
        assert text[record.line - 1].strip() == "{"
        assert event.timestamp is not None
        assert text[record.line].strip().startswith('"timestamp"')


@pytest.mark.parametrize("shape", ["array", "values", "events", "single", "one-line page"])
def test_json_documents_in_every_shape_read_as_their_events(tmp_path: Path,
                                                            shape: str) -> None:
    events = sample_events(2)
    rest = [e.to_rest() for e in events]
    body: object = {"array": rest, "values": {"values": rest, "isLastPage": True},
                    "events": {"events": rest, "next_cursor": None}, "single": rest[0],
                    "one-line page": {"entities": rest}}[shape]
    path = tmp_path / "download"  # no telling suffix: the content decides
    path.write_bytes(orjson.dumps(body) if shape == "one-line page"
                     else json.dumps(body, indent=1).encode())
    assert detect(path).format is Format.DOCUMENT
    expected = events[:1] if shape == "single" else events
    assert events_of(list(read_records(path))) == expected


def test_the_csv_export_reads_back_as_the_events_it_was_made_from(tmp_path: Path) -> None:
    events = sample_events(60)
    path = tmp_path / "Auditing Export 2024-06-01T10_00_00Z.csv"
    path.write_bytes(b"".join(atlassian_csv(events)))
    assert detect(path).format is Format.CSV
    back = events_of(list(read_records(path)))
    assert len(back) == len(events)
    for original, read in zip(events, back, strict=True):
        # The CSV has no area, level, i18n keys, author type or URIs.
        assert read.timestamp == original.timestamp
        assert read.author is not None and original.author is not None
        assert (read.author.id, read.author.name) == (original.author.id, original.author.name)
        assert (read.type.category, read.type.action) == (original.type.category,
                                                          original.type.action)
        assert [(o.type, o.name, o.id) for o in read.affected_objects] == \
            [(o.type, o.name, o.id) for o in original.affected_objects]
        assert [(c.key, c.from_value, c.to_value) for c in read.changed_values] == \
            [(c.key, c.from_value, c.to_value) for c in original.changed_values]
        assert sorted((a.name, a.value) for a in read.extra_attributes) == \
            sorted((a.name, a.value) for a in original.extra_attributes)
        assert (read.source, read.method, read.node, read.system) == \
            (original.source, original.method, original.node, original.system)


def test_csv_timestamps_in_any_zone_and_guarded_cells_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "Timestamp,Author,Author ID,Category,Summary,System,Affected objects,Changed values,"
        "Source,Method,Node,Attributes\r\n"
        "2021-11-27T18:38:58.087+01:00[Europe/Paris],System,-1,Auditing,'=HYPERLINK(1),,"
        '"rep_1 (REPOSITORY, id 7), PRJ (PROJECT)",,10.0.0.1,Browser,,"a: 1, b: x: y"\r\n'
        "# 1 matching entry\r\n")
    [record] = read_records(path)
    event = record.event
    assert event is not None
    assert event.timestamp == datetime(2021, 11, 27, 17, 38, 58, 87000, tzinfo=UTC)
    assert event.author == AuditAuthor.SYSTEM
    assert event.type.action == "=HYPERLINK(1)"
    assert [(o.name, o.type, o.id) for o in event.affected_objects] == [
        ("rep_1", "REPOSITORY", "7"), ("PRJ", "PROJECT", None)]
    assert [(a.name, a.value) for a in event.extra_attributes] == [("a", "1"), ("b", "x: y")]
    assert record.line == 2


def test_csv_rows_that_are_not_events_are_reported_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "Timestamp,Author,Author ID,Category,Summary,System,Affected objects,Changed values,"
        "Source,Method,Node,Attributes\n"
        "yesterday,alice,11,Repositories,Repository created,,,,,,,\n"
        "2024-01-01T00:00:00Z[UTC],alice,11,Repositories,Repository created,,,,,,,\n"
        "2024-01-01T00:00:00Z[UTC],alice,11\n"
        '2024-01-01T00:00:00Z[UTC],alice,11,Repositories,"Repository created\n')
    records = list(read_records(path))
    assert len(events_of(records)) == 1
    problems = problems_of(records)
    assert [line for line, _ in problems] == [2, 4, 5]
    assert "Timestamp" in problems[0][1]
    assert "3 columns" in problems[1][1]
    assert "malformed CSV" in problems[2][1]


def test_a_gzipped_file_is_read_whatever_its_name(tmp_path: Path) -> None:
    events = sample_events(5)
    path = tmp_path / "20240601.00000.audit.log.gz"
    path.write_bytes(gzip.compress(log_lines(events)))
    renamed = tmp_path / "archive"
    renamed.write_bytes(path.read_bytes())
    for candidate in (path, renamed):
        source = detect(candidate)
        assert source.compressed
        assert source.length == len(log_lines(events))
        assert events_of(list(read_records(candidate))) == events


def test_a_bad_line_is_reported_with_its_line_and_what_is_wrong(tmp_path: Path) -> None:
    events = sample_events(3)
    broken = orjson.loads(events[1].file_line())
    broken["auditType"]["area"] = "NOWHERE"
    path = tmp_path / "20240601.00000.audit.log"
    path.write_bytes(log_lines(events[:1]) + orjson.dumps(broken) + b"\n{not json\n"
                     + log_lines(events[2:]))
    records = list(read_records(path))
    assert events_of(records) == [events[0], events[2]]
    (line_2, area), (line_3, malformed) = problems_of(records)
    assert (line_2, line_3) == (2, 3)
    assert area.startswith("auditType.area: 'NOWHERE' is not one of")
    assert malformed.startswith("malformed JSON")


def test_a_truncated_last_line_is_reported_not_skipped(tmp_path: Path) -> None:
    events = sample_events(3)
    data = log_lines(events)
    path = tmp_path / "20240601.00000.audit.log"
    path.write_bytes(data[:-40])  # a crash in the middle of writing the third line
    records = list(read_records(path))
    assert events_of(records) == events[:2]
    [(line, message)] = problems_of(records)
    assert line == 3
    assert message.startswith("truncated: the file ends inside this record")


def test_a_whole_last_line_without_a_line_break_is_read(tmp_path: Path) -> None:
    events = sample_events(2)
    path = tmp_path / "events.ndjson"
    path.write_bytes(log_lines(events).rstrip(b"\n"))
    assert events_of(list(read_records(path))) == events


def test_a_truncated_document_keeps_its_whole_events_and_says_where_it_breaks(
        tmp_path: Path) -> None:
    events = sample_events(3)
    text = json.dumps({"entities": [e.to_rest() for e in events]}, indent=2)
    path = tmp_path / "page.json"
    path.write_text(text[: text.rindex('"timestamp"') + 20])  # cut inside the third entity
    records = list(read_records(path))
    assert events_of(records) == events[:2]
    [(line, message)] = problems_of(records)
    assert message.startswith("the document breaks off inside this event")
    assert path.read_text().splitlines()[line - 1].strip() == "{"


def test_damaged_gzip_data_is_reported_after_the_last_whole_line(tmp_path: Path) -> None:
    events = sample_events(200)
    packed = gzip.compress(log_lines(events))
    path = tmp_path / "20240601.00000.audit.log.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    records = list(read_records(path))
    read = events_of(records)
    assert 0 < len(read) < len(events)
    assert read == events[: len(read)]
    assert any("the compressed data is cut short" in message
               for _, message in problems_of(records))


def test_a_gzip_file_of_several_members_is_read_to_its_end(tmp_path: Path) -> None:
    events = sample_events(30)
    path = tmp_path / "20240601.00000.audit.log.gz"
    path.write_bytes(b"".join(gzip.compress(log_lines(events[n:n + 10]))
                              for n in range(0, 30, 10)))
    assert events_of(list(read_records(path, chunk_bytes=64))) == events


def test_a_truncated_compressed_document_keeps_its_whole_events(tmp_path: Path) -> None:
    events = sample_events(100)
    packed = gzip.compress(json.dumps([e.to_rest() for e in events], indent=1).encode())
    path = tmp_path / "export.json.gz"
    path.write_bytes(packed[: len(packed) // 2])
    records = list(read_records(path))
    read = events_of(records)
    assert 0 < len(read) < 100
    assert read == events[: len(read)]
    assert [m for _, m in problems_of(records)][-1] == "the compressed data is cut short"


def test_pieces_are_cut_at_line_breaks_and_line_numbers_run_on_across_them(
        tmp_path: Path) -> None:
    events = sample_events(50)
    path = write_log(tmp_path / "20240601.00000.audit.log", events)
    source = detect(path)
    works = list(pieces(source, 0, chunk_bytes=3000))
    assert len(works) > 5
    data = path.read_bytes()
    assert all(data[w.end - 1:w.end] == b"\n" for w in works)
    assert [w.start for w in works[1:]] == [w.end for w in works[:-1]]
    records = list(read_records(path, chunk_bytes=3000))
    assert [r.line for r in records] == list(range(1, 51))
    assert events_of(records) == events


def test_files_that_hold_no_audit_events_are_refused_by_their_content(tmp_path: Path) -> None:
    path = tmp_path / "notes.audit.log"
    path.write_text("2024-01-01 12:00:00,000 INFO [main] something happened\n")
    with pytest.raises(UnknownFormatError):
        detect(path)


def test_a_pretty_printed_event_is_one_document_whatever_its_name(tmp_path: Path) -> None:
    event = AuditEvent(type=AuditType("Repositories", "Repository created"),
                       affected_objects=[AuditResource("REPOSITORY", "rep_1", "7")])
    path = tmp_path / "event.txt"
    path.write_text(json.dumps(dataclasses.replace(event).to_rest(), indent=4))
    assert events_of(list(read_records(path))) == [event]
