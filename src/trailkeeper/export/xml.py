"""XML: a well-formed UTF-8 document, streamed.

Not bare::

    <?xml version="1.0" encoding="UTF-8"?>
    <auditLog total="N" offset="M">
      <event id="42" uid="...">
        <timestamp>2021-11-27T17:38:53.360Z</timestamp>
        <author id="2" name="admin" type="NORMAL" uri="..."/>
        <type category="Users and groups" categoryI18nKey="..." action="Username changed"
              actionI18nKey="..." area="USER_MANAGEMENT" level="BASE"/>
        <affectedObjects>
          <object type="USER" id="3" name="test.user" uri="..."/>
        </affectedObjects>
        <changedValues>
          <change key="Username" i18nKey="..."><from>test</from><to>test.user</to></change>
        </changedValues>
        <source>10.50.73.5</source>
        <system>http://bitbucket.internal:7990</system>
        <node>8767044c-...</node>
        <method>Browser</method>
        <extraAttributes>
          <attribute name="target" nameI18nKey="...">test.user</attribute>
        </extraAttributes>
      </event>
    </auditLog>

(``type`` is on one line in the output.) ``total`` is there when given, ``offset`` when
above 0; what an event lacks is left out (no empty lists, no empty elements for absent
values; an absent ``from`` and an empty one differ). With ``fields``, each event holds
``<field name="...">value</field>`` per chosen field. Bare: only the ``<event>`` elements.

Well formed for any input: markup characters are escaped (``xml.sax.saxutils``), CR in
text and tab/CR/LF in attributes as character references so they read back unchanged, and
the characters XML 1.0 forbids become U+FFFD (see `escaping`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from trailkeeper.export.documents import Doc, docs_of, values_of
from trailkeeper.export.escaping import xml_attr, xml_bytes, xml_text
from trailkeeper.export.options import CHUNK_ROWS, ExportOptions
from trailkeeper.query.fields import Field
from trailkeeper.storage.base import StoredEvent

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


def write_xml(rows: Iterable[StoredEvent], options: ExportOptions) -> Iterator[bytes]:
    parts: list[str] = []
    if not options.bare:
        total = "" if options.total is None else f' total="{options.total}"'
        offset = f' offset="{options.offset}"' if options.offset > 0 else ""
        parts.append(f"{DECLARATION}<auditLog{total}{offset}>\n")
    fields = options.fields
    events = (_fields_event(row, fields) for row in rows) if fields else map(
        _event, docs_of(rows))
    for event in events:
        parts.append(event)
        if len(parts) >= CHUNK_ROWS:
            yield _chunk(parts)
            parts.clear()
    if not options.bare:
        parts.append("</auditLog>\n")
    if parts:
        yield _chunk(parts)


def _chunk(parts: list[str]) -> bytes:
    return xml_bytes("".join(parts))


def _opt_attr(name: str, value: str | None) -> str:
    return "" if value is None else f" {name}={xml_attr(value)}"


def _event(doc: Doc) -> str:
    out = [f'  <event id="{doc.id}"{_opt_attr("uid", doc.uid)}>\n']
    if doc.timestamp is not None:
        out.append(f"    <timestamp>{xml_text(doc.timestamp)}</timestamp>\n")
    a = doc.author
    if a is not None:
        out.append(f"    <author id={xml_attr(a.id)} name={xml_attr(a.name)} "
                   f"type={xml_attr(a.type)}{_opt_attr('uri', a.uri)}/>\n")
    t = doc.type
    out.append(f"    <type category={xml_attr(t.category)}"
               f"{_opt_attr('categoryI18nKey', t.categoryI18nKey)} action={xml_attr(t.action)}"
               f"{_opt_attr('actionI18nKey', t.actionI18nKey)}{_opt_attr('area', t.area)}"
               f"{_opt_attr('level', t.level)}/>\n")
    if doc.affectedObjects:
        out.append("    <affectedObjects>\n")
        out.extend(f"      <object type={xml_attr(o.type)}{_opt_attr('id', o.id)} "
                   f"name={xml_attr(o.name)}{_opt_attr('uri', o.uri)}/>\n"
                   for o in doc.affectedObjects)
        out.append("    </affectedObjects>\n")
    if doc.changedValues:
        out.append("    <changedValues>\n")
        for c in doc.changedValues:
            old = "" if c.old is None else f"<from>{xml_text(c.old)}</from>"
            new = "" if c.new is None else f"<to>{xml_text(c.new)}</to>"
            out.append(f"      <change key={xml_attr(c.key)}"
                       f"{_opt_attr('i18nKey', c.i18nKey)}>{old}{new}</change>\n")
        out.append("    </changedValues>\n")
    for name, value in (("source", doc.source), ("system", doc.system), ("node", doc.node),
                        ("method", doc.method)):
        if value is not None:
            out.append(f"    <{name}>{xml_text(value)}</{name}>\n")
    if doc.extraAttributes:
        out.append("    <extraAttributes>\n")
        out.extend(f"      <attribute name={xml_attr(x.name)}"
                   f"{_opt_attr('nameI18nKey', x.nameI18nKey)}>{xml_text(x.value)}</attribute>\n"
                   for x in doc.extraAttributes)
        out.append("    </extraAttributes>\n")
    out.append("  </event>\n")
    return "".join(out)


def _fields_event(row: StoredEvent, fields: Sequence[Field]) -> str:
    cells = "".join(f"    <field name={xml_attr(f.name)}>{xml_text(value)}</field>\n"
                    for f, value in zip(fields, values_of(row, fields), strict=True))
    return f'  <event id="{row.id}">\n{cells}  </event>\n'
