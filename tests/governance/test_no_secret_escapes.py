"""No raw secret reaches the store, the audit log files, an export or the application log.

Secrets arrive by every way in (HTTP ingest, the in-process queue, `trailkeeper import`) in
every place the redaction covers: changed values and attributes under sensitive keys,
objects of a sensitive type, and a value over the max length. Then every table of the store
is read back as text (on SQLite also the raw database and WAL files), every audit log file
the file sink wrote, every export format of both APIs, and everything logged.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest
from click.testing import CliRunner

from tests.conftest import LiveServer
from tests.factories import event
from trailkeeper.cli.main import cli
from trailkeeper.consumers.filesink import FileSink
from trailkeeper.governance.redaction import digest
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.event import AuditAttribute, AuditResource, ChangedValue
from trailkeeper.storage.sqlite import sqlite_path


def _secret(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(12)}"


@pytest.fixture
def captured_log() -> Iterator[list[str]]:
    """Every line any Trailkeeper or uvicorn logger emits, at every level."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("trailkeeper", "uvicorn", "")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield lines
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)


def _store_text(db_url: str) -> str:
    """Every row of every table, as text; on SQLite also the raw files."""
    parts: list[str] = []
    if db_url.startswith("sqlite"):
        path = sqlite_path(db_url)
        with sqlite3.connect(path) as con:
            # Virtual tables cannot be scanned; their shadow tables (the FTS index) can.
            tables = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND sql NOT LIKE 'CREATE VIRTUAL%'")]
            for table in tables:
                for row in con.execute(f'SELECT * FROM "{table}"'):
                    parts.append(repr(row))
        for file in path.parent.glob(path.name + "*"):
            parts.append(file.read_bytes().decode("utf-8", "replace"))
    else:
        with psycopg.connect(db_url) as con:
            tables = [r[0] for r in con.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            for table in tables:
                for row in con.execute(f'SELECT t::text FROM "{table}" t'):
                    text = row[0]
                    # bytea columns print as hex: decode them so JSON documents are searched
                    parts.append(text)
                    for chunk in text.split("\\x")[1:]:
                        hex_part = chunk.split(",")[0].split(")")[0]
                        with contextlib.suppress(ValueError):
                            parts.append(bytes.fromhex(hex_part).decode("utf-8", "replace"))
    return "\n".join(parts)


def test_no_raw_secret_escapes(service: AuditService, server: LiveServer, db_url: str,
                               tmp_path: Path, captured_log: list[str]) -> None:
    plain = {name: _secret(name) for name in (
        "http-password", "http-token", "http-object", "queue-secret", "queue-key",
        "import-credential", "bad-request-password")}
    long_value = "L" + secrets.token_hex(700)  # 1,401 characters: over the 1,024 limit
    raw = [*plain.values(), long_value]

    with server.client() as client:
        # 1. HTTP ingest.
        body = {"type": {"category": "Users", "action": "Password changed"},
                "changedValues": [{"key": "password", "from": plain["http-password"],
                                   "to": "x-" + plain["http-password"]}],
                "extraAttributes": [{"name": "apiToken", "value": plain["http-token"]},
                                    {"name": "Body", "value": long_value}],
                "affectedObjects": [{"type": "SECRET", "name": plain["http-object"],
                                     "id": "s1"}]}
        assert client.post("/api/v1/events", json=body).status_code == 201
        # A refused request carrying a secret: its error must not echo the value either.
        refused = client.post("/api/v1/events", json={
            "type": {"category": "Users", "action": "x", "level": "LOUD"},
            "changedValues": [{"key": "password", "from": plain["bad-request-password"]}]})
        assert refused.status_code == 400
        assert plain["bad-request-password"] not in refused.text

        # 2. The in-process queue.
        service.audit(event("Secret rotated", changed_values=(
            ChangedValue("client secret", plain["queue-secret"], None),),
            extra_attributes=(AuditAttribute("Private key", plain["queue-key"]),)))
        service.flush()

        # 3. An import straight into the store.
        dump = tmp_path / "import.ndjson"
        dump.write_bytes(orjson.dumps({
            "timestamp": "2024-03-01T12:00:00.000Z",
            "type": {"category": "Users", "action": "Credentials imported"},
            "author": {"id": "1", "name": "ops", "type": "user"},
            "extraAttributes": [{"name": "credentials", "value": plain["import-credential"]}],
            "affectedObjects": [{"type": "USER", "name": "ops", "id": "1"}]}) + b"\n")
        imported = CliRunner().invoke(cli, ["import", str(dump), "--db", db_url,
                                            "--workers", "0", "--no-progress"])
        assert imported.exit_code == 0, imported.output

        # The audit log files.
        sink = FileSink(service.storage, tmp_path / "log" / "audit", "node-1")
        try:
            assert sink.drain() >= 3
        finally:
            sink.close()
        files = "\n".join(p.read_text("utf-8") for p in (tmp_path / "log" / "audit").iterdir()
                          if p.is_file())

        # Every export format of both APIs (and the JSON pages).
        exports = [client.get("/api/v1/events", params={"format": fmt, "limit": 1000}).text
                   for fmt in ("json", "ndjson", "csv", "xml", "text")]
        exports.append(client.get("/rest/auditing/1.0/events",
                                  params={"outputFormat": "csv"}).text)
        exports.append(client.get("/rest/auditing/1.0/events").text)

    # The digests are there, so the events were stored, redacted, not dropped.
    assert digest(plain["http-password"]) in files
    assert digest(long_value) in files
    assert digest(plain["import-credential"]) in "".join(exports)
    store = _store_text(db_url)
    everything = {"store": store, "files": files, "exports": "\n".join(exports),
                  "log": "\n".join(captured_log)}
    for where, text in everything.items():
        for value in raw:
            assert value not in text, f"a raw secret reached the {where}"
        assert long_value[:200] not in text, f"the long value reached the {where}"


def test_object_names_of_sensitive_types_are_hashed_but_ids_kept(service: AuditService) -> None:
    service.submit([event("Secret created",
                          objects=(AuditResource("SECRET", "prod-db-password", "42"),))])
    stored = service.search_rows(limit=5).events[0].to_event()
    assert stored.affected_objects[0].name == digest("prod-db-password")
    assert stored.affected_objects[0].id == "42"
