"""Reading stored rows: strict when possible, lenient when not, never failing."""

from __future__ import annotations

import msgspec

from trailkeeper.export.documents import doc_of, rescue, values_of

from .strategies import raw_row
from .test_formats import fields


def test_a_wrong_shape_is_read_as_far_as_it_goes() -> None:
    """Numbers where text belongs become their JSON text; unusable parts are left out."""
    row = raw_row(b'{"author":{"id":5,"name":null,"type":true},"type":"x",'
                  b'"affectedObjects":[{"name":"n","type":"T","id":7},"junk"],'
                  b'"changedValues":{"k":1},"source":[1,2]}', 3)
    doc = doc_of(row)
    assert msgspec.to_builtins(doc) == {
        "id": 3, "timestamp": "2020-09-13T12:26:40.123Z",
        "author": {"id": "5", "name": "", "type": "true"},
        "type": {"action": "", "category": ""},
        "affectedObjects": [{"id": "7", "name": "n", "type": "T"}],
        "source": "[1,2]",  # empty lists are left out, as defaults
    }


def test_something_that_is_not_json_keeps_its_id_and_timestamp() -> None:
    """A row whose document cannot be read at all still exports as an (empty) event."""
    doc = doc_of(raw_row(b"\xff not json", 9))
    assert (doc.id, doc.timestamp, doc.author, doc.type.action) == (
        9, "2020-09-13T12:26:40.123Z", None, "")


def test_bytes_that_are_not_utf8_become_replacement_characters() -> None:
    """Invalid UTF-8 and lone surrogates are U+FFFD, the rest of the text is kept."""
    doc = rescue(b'{"type":{"category":"a\xffb","action":"\\udc00c"}}')
    assert (doc.type.category, doc.type.action) == ("a\ufffdb", "\ufffdc")


def test_field_values_survive_a_document_of_the_wrong_shape() -> None:
    """The field catalogue reads a repaired document when the stored one has odd parts."""
    row = raw_row(b'{"author":"someone","affectedObjects":["x"],"type":{"action":"A"}}', 4)
    assert values_of(row, fields("author", "object", "action", "id")) == ["", "", "A", "4"]
