"""The SQLite rows hold exactly the event's values, whatever form they were bound in."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.factories import batch, event, new, rich_event
from trailkeeper.storage import open_storage


def test_missing_values_are_null_empty_ones_empty_and_the_document_a_blob(
        tmp_path: Path) -> None:
    """Missing optional fields are stored as NULL, empty and "0" strings as themselves,
    areas and levels as plain text, documents and fingerprints as BLOBs."""
    storage = open_storage(f"sqlite://{tmp_path / 'audit.db'}")
    bare = event(minutes=1, source=None, method=None, node=None, system=None, uid=None)
    empty = event(minutes=2, source="", method="0", node="", system="", uid="")
    full = rich_event(uid="u-1")
    try:
        storage.append([batch(storage, bare, empty, full)])
    finally:
        storage.close()
    with sqlite3.connect(tmp_path / "audit.db") as con:
        rows = con.execute(
            "SELECT source, method, node, system, uid, typeof(area), area, typeof(level),"
            " level, typeof(doc), doc FROM events ORDER BY id").fetchall()
        uids = con.execute("SELECT uid, typeof(fingerprint), length(fingerprint)"
                           " FROM event_uids ORDER BY uid").fetchall()
    assert [row[:5] for row in rows] == [
        (None, None, None, None, None),
        ("", "0", "", "", ""),
        (full.source, full.method, full.node, full.system, "u-1"),
    ]
    for row, e in zip(rows, (bare, empty, full), strict=True):
        assert row[5:9] == ("text", e.type.area.value, "text", e.type.level.value)
        assert row[9] == "blob"
    assert [row[10] for row in rows] == [new(e).doc for e in (bare, empty, full)]
    assert uids == [("", "blob", 32), ("u-1", "blob", 32)]
