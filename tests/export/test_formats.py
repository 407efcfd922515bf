"""The export entry point, and the exact output of every format for one small event."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from trailkeeper.export.formats import (
    CHUNK_ROWS,
    EXTENSIONS,
    FORMATS,
    MEDIA_TYPES,
    ExportOptions,
    export,
    format_named,
)
from trailkeeper.model.areas import CoverageArea, CoverageLevel
from trailkeeper.model.event import (
    AuditAttribute,
    AuditAuthor,
    AuditEvent,
    AuditResource,
    AuditType,
    ChangedValue,
)
from trailkeeper.query.fields import Field, resolve
from trailkeeper.storage.base import StoredEvent

from .strategies import row_of

EVENT = AuditEvent(
    type=AuditType("Users and groups", "Username changed", CoverageArea.USER_MANAGEMENT,
                   CoverageLevel.BASE, "bb.cat.users", "bb.user.renamed"),
    author=AuditAuthor("2", "admin", "NORMAL", "http://bb/users/admin"),
    timestamp=datetime(2021, 11, 27, 17, 38, 53, 360000, tzinfo=UTC),
    affected_objects=[AuditResource("USER", "test.user", id="3")],
    changed_values=[ChangedValue("Username", "test", "test.user", "bb.attr.user.name")],
    extra_attributes=[AuditAttribute("target", "test.user", "bb.attr.target")],
    source="10.50.73.5", system="http://bb", node="n1", method="Browser", uid="u-1",
)
ROW = row_of(EVENT, 42)
REST = (
    '{"id":42,"uid":"u-1","timestamp":"2021-11-27T17:38:53.360Z",'
    '"author":{"name":"admin","type":"NORMAL","id":"2","uri":"http://bb/users/admin",'
    '"avatarUri":""},'
    '"type":{"categoryI18nKey":"bb.cat.users","category":"Users and groups",'
    '"actionI18nKey":"bb.user.renamed","action":"Username changed","area":"USER_MANAGEMENT",'
    '"level":"BASE"},'
    '"affectedObjects":[{"name":"test.user","type":"USER","id":"3"}],'
    '"changedValues":[{"key":"Username","i18nKey":"bb.attr.user.name","from":"test",'
    '"to":"test.user"}],'
    '"source":"10.50.73.5","system":"http://bb","node":"n1","method":"Browser",'
    '"extraAttributes":[{"nameI18nKey":"bb.attr.target","name":"target","value":"test.user"}]}'
)
FILE_LINE = (
    '{"affectedObjects":[{"id":"3","name":"test.user","type":"USER"}],'
    '"auditType":{"action":"Username changed","actionI18nKey":"bb.user.renamed",'
    '"area":"USER_MANAGEMENT","category":"Users and groups","categoryI18nKey":"bb.cat.users",'
    '"level":"BASE"},'
    '"author":{"id":"2","name":"admin","type":"NORMAL","uri":"http://bb/users/admin"},'
    '"changedValues":[{"from":"test","i18nKey":"bb.attr.user.name","key":"Username",'
    '"to":"test.user"}],'
    '"extraAttributes":[{"name":"target","nameI18nKey":"bb.attr.target","value":"test.user"}],'
    '"id":42,"method":"Browser","node":"n1","source":"10.50.73.5","system":"http://bb",'
    '"timestamp":{"epochSecond":1638034733,"nano":360000000},"uid":"u-1","version":"1.0"}\n'
)
CSV_ROW = ("2021-11-27T17:38:53.360Z[UTC],admin,2,Users and groups,Username changed,http://bb,"
           '"test.user (USER, id 3)",Username: test -> test.user,10.50.73.5,Browser,n1,'
           "target: test.user\r\n")
CSV_HEADER = ("Timestamp,Author,Author ID,Category,Summary,System,Affected objects,"
              "Changed values,Source,Method,Node,Attributes\r\n")
XML_EVENT = """\
  <event id="42" uid="u-1">
    <timestamp>2021-11-27T17:38:53.360Z</timestamp>
    <author id="2" name="admin" type="NORMAL" uri="http://bb/users/admin"/>
    <type category="Users and groups" categoryI18nKey="bb.cat.users" \
action="Username changed" actionI18nKey="bb.user.renamed" area="USER_MANAGEMENT" level="BASE"/>
    <affectedObjects>
      <object type="USER" id="3" name="test.user"/>
    </affectedObjects>
    <changedValues>
      <change key="Username" i18nKey="bb.attr.user.name"><from>test</from><to>test.user</to>\
</change>
    </changedValues>
    <source>10.50.73.5</source>
    <system>http://bb</system>
    <node>n1</node>
    <method>Browser</method>
    <extraAttributes>
      <attribute name="target" nameI18nKey="bb.attr.target">test.user</attribute>
    </extraAttributes>
  </event>
"""
TEXT_HEADER = (
    "timestamp                 author  category          action            object"
    "              source    \n"
    "------------------------  ------  ----------------  ----------------  ------------------"
    "  ----------\n")
TEXT_ROW = ("2021-11-27T17:38:53.360Z  admin   Users and groups  Username changed"
            "  test.user (USER 3)  10.50.73.5\n")


def fields(*names: str) -> tuple[Field, ...]:
    found = [resolve(name) for name in names]
    return tuple(f for f in found if f is not None)


def output(fmt: str, rows: list[StoredEvent] | None = None, **options: object) -> str:
    chunks = export(rows if rows is not None else [ROW], format_named(fmt),
                    ExportOptions(**options))  # type: ignore[arg-type]
    return b"".join(chunks).decode()


def test_format_tables_agree() -> None:
    """Every format has a media type and a file extension, and nothing else does."""
    assert FORMATS == ("json", "ndjson", "csv", "xml", "text")
    assert set(MEDIA_TYPES) == set(EXTENSIONS) == set(FORMATS)
    assert MEDIA_TYPES["ndjson"] == "application/x-ndjson"
    assert MEDIA_TYPES["csv"] == "text/csv; charset=utf-8"


def test_format_names_are_case_insensitive_and_unknown_ones_are_refused() -> None:
    """bfauditlog spells formats in capitals; a wrong name fails before anything is read."""
    assert format_named("CSV") == "csv"
    assert output("TEXT") == output("text")
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        export(iter([]), "yaml")  # type: ignore[arg-type]


def test_export_reads_rows_only_as_chunks_are_consumed() -> None:
    """Nothing is read from the rows until the first chunk is asked for."""
    def rows() -> Iterator[StoredEvent]:
        raise AssertionError("read too early")
        yield ROW  # pragma: no cover

    for fmt in FORMATS:
        export(rows(), format_named(fmt))


@pytest.mark.parametrize("fmt", FORMATS)
def test_chunks_hold_a_few_hundred_rows_at_most(fmt: str) -> None:
    """A chunk never holds more than CHUNK_ROWS rows, so memory does not grow with rows."""
    rows = [row_of(EVENT, n) for n in range(1, 2 * CHUNK_ROWS + 10)]
    chunks = list(export(rows, format_named(fmt), ExportOptions(total=len(rows))))
    assert len(chunks) >= 3
    assert max(chunk.count(b"test.user") for chunk in chunks) <= 3 * CHUNK_ROWS


def test_json_exact() -> None:
    """JSON: total, events with the id first, and the next cursor."""
    assert output("json") == '{"events":[' + REST + "]}\n"
    assert output("json", [ROW, ROW], total=9, next_cursor="5,6") == (
        '{"total":9,"events":[' + REST + "," + REST + '],"next_cursor":"5,6"}\n')
    assert output("json", bare=True, total=9, next_cursor="5,6") == "[" + REST + "]\n"
    assert output("json", [], total=0) == '{"total":0,"events":[]}\n'
    assert output("json", [], bare=True) == "[]\n"


def test_json_exact_with_fields() -> None:
    """JSON with fields: one object of text values per event, keyed by field name."""
    chosen = fields("id", "audit.user", "sxTarget", "old.Username")
    assert output("json", fields=chosen, bare=True) == (
        '[{"id":"42","audit.user":"admin","sxTarget":"test.user","old.Username":"test"}]\n')


def test_ndjson_exact() -> None:
    """NDJSON: the Atlassian file shape plus the id, one line each; bare changes nothing."""
    assert output("ndjson", [ROW, ROW], total=2) == FILE_LINE * 2
    assert output("ndjson", [ROW, ROW], bare=True) == FILE_LINE * 2
    assert output("ndjson", fields=fields("audit.type", "object")) == (
        '{"audit.type":"Username changed","object":"test.user (USER 3)"}\n')
    assert output("ndjson", []) == ""


def test_csv_exact() -> None:
    """CSV: Atlassian's header and columns, the count line only when the total is given."""
    assert output("csv") == CSV_HEADER + CSV_ROW
    assert output("csv", [ROW, ROW], total=2) == CSV_HEADER + CSV_ROW * 2 + (
        "# 2 matching entries\r\n")
    assert output("csv", total=1) == CSV_HEADER + CSV_ROW + "# 1 matching entry\r\n"
    assert output("csv", total=200, offset=100) == CSV_HEADER + CSV_ROW + (
        "# entries 101-101 of 200\r\n")
    assert output("csv", bare=True, total=5) == CSV_ROW
    assert output("csv", [], total=0) == CSV_HEADER + "# 0 matching entries\r\n"


def test_csv_exact_with_fields() -> None:
    """bfauditlog's example 2: chosen columns headed by the names as given; bare: no header
    and no count."""
    chosen = fields("audit.target", "sxTarget")
    assert output("csv", fields=chosen, total=1) == (
        "audit.target,sxTarget\r\ntest.user (USER 3),test.user\r\n# 1 matching entry\r\n")
    assert output("csv", fields=chosen, bare=True, total=1) == "test.user (USER 3),test.user\r\n"


def test_xml_exact() -> None:
    """XML: a declaration, auditLog with the total, one element per part of the event."""
    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    assert output("xml", total=3, offset=2) == (
        head + '<auditLog total="3" offset="2">\n' + XML_EVENT + "</auditLog>\n")
    assert output("xml") == head + "<auditLog>\n" + XML_EVENT + "</auditLog>\n"
    assert output("xml", [ROW, ROW], bare=True, total=3) == XML_EVENT * 2
    assert output("xml", [], total=0) == head + '<auditLog total="0">\n</auditLog>\n'


def test_xml_exact_with_fields() -> None:
    """XML with fields: a field element per chosen field, named by an attribute."""
    assert output("xml", fields=fields("author", "new.Username"), bare=True) == (
        '  <event id="42">\n'
        '    <field name="author">admin</field>\n'
        '    <field name="new.Username">test.user</field>\n'
        "  </event>\n")


def test_text_exact() -> None:
    """TEXT: header, separator, aligned rows, and the count."""
    assert output("text", total=1) == TEXT_HEADER + TEXT_ROW + "1 matching entry\n"
    assert output("text", total=500, offset=100) == (
        TEXT_HEADER + TEXT_ROW + "entries 101-101 of 500\n")
    assert output("text", [ROW, ROW], bare=True, total=9) == (
        "2021-11-27T17:38:53.360Z  admin  Users and groups  Username changed"
        "  test.user (USER 3)  10.50.73.5\n") * 2


def test_text_exact_with_fields() -> None:
    """TEXT with fields: headed by the names as given, columns as wide as the widest."""
    assert output("text", fields=fields("id", "audit.type"), total=1) == (
        "id  audit.type      \n"
        "--  ----------------\n"
        "42  Username changed\n"
        "1 matching entry\n")


def test_count_line_after_an_offset_past_the_end() -> None:
    """An offset beyond the last entry says so instead of an empty range."""
    assert output("text", [], total=5, offset=10).endswith(
        "no entries after the first 10 of 5\n")
