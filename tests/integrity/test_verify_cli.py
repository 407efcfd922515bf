"""``trailkeeper verify`` and ``trailkeeper integrity`` as an auditor runs them: on a store,
on a server, on exported files; exit 0 only when the log verifies."""

from __future__ import annotations

import socket
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from tests.conftest import ADMIN_PASSWORD, LiveServer
from tests.factories import rich_event
from tests.integrity.helpers import run_sql
from trailkeeper.api.integrity import checkpoint_json
from trailkeeper.cli.main import cli
from trailkeeper.errors import UnavailableError
from trailkeeper.ingest.service import AuditService
from trailkeeper.integrity.keys import generate_signer


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def hashed(service: AuditService, db_url: str, home: Path) -> Path:
    """A store of 300 events with a checkpoint over all of them; the public key's file."""
    service.submit([rich_event(minutes=n, uid=f"u{n}") for n in range(300)], screen=False)
    signed = run("integrity", "checkpoint", "--db", db_url, "--home", str(home))
    assert signed.exit_code == 0, signed.output
    assert "Checkpoint of 300 events signed" in signed.output
    return home / "integrity" / "checkpoint.key.pub"


def test_an_untouched_store_verifies(hashed: Path, db_url: str) -> None:
    """Exit 0 with --allow-uncovered (the checkpoint's own record comes after it); exit 3
    without, naming the event not yet under a checkpoint."""
    result = run("verify", "--db", db_url, "--key", str(hashed), "--jobs", "1")
    assert result.exit_code == 3, result.output
    assert "not covered by a checkpoint yet" in result.output
    result = run("verify", "--db", db_url, "--key", str(hashed), "--allow-uncovered")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: 300 events verified against 1 signed checkpoint")


def test_an_edited_event_fails_verification_and_is_named(hashed: Path, db_url: str,
                                                         backend: str) -> None:
    """Exit 1; the report names the event and what happened to it."""
    run_sql(db_url, backend, "UPDATE events SET doc = convert_to(replace(convert_from(doc, "
         "'UTF8'), 'new text', 'new texT'), 'UTF8') WHERE id = 77" if backend == "postgres" else
         "UPDATE events SET doc = CAST(replace(CAST(doc AS TEXT), 'new text', 'new texT')"
         " AS BLOB) WHERE id = 77")
    result = run("verify", "--db", db_url, "--key", str(hashed), "--json")
    assert result.exit_code == 1, result.output
    report = orjson.loads(result.output)
    assert report["problems"][0]["kind"] == "edited"
    assert report["problems"][0]["event_id"] == 77


def test_without_a_key_the_store_s_own_list_is_trusted_and_said_so(
        hashed: Path, db_url: str, tmp_path: Path) -> None:
    """No --key and no key in --home: the keys the store lists, with a note saying that is
    weaker than a key the auditor holds."""
    result = run("verify", "--db", db_url, "--home", str(tmp_path / "elsewhere"),
                 "--allow-uncovered")
    assert result.exit_code == 0, result.output
    assert "trusting the keys the log itself lists" in result.stderr


def test_a_key_that_did_not_sign_proves_nothing(hashed: Path, db_url: str,
                                                tmp_path: Path) -> None:
    """Checkpoints signed by another key do not verify: exit 1, saying which."""
    from trailkeeper.integrity.keys import generate_signer

    other = generate_signer("someone-else").verifier().key_string
    result = run("verify", "--db", db_url, "--key", other)
    assert result.exit_code == 1
    assert "does not verify with a trusted key" in result.output
    bad = run("verify", "--db", db_url, "--key", "not a key")
    assert bad.exit_code == 2 and "--key" in bad.output


def test_a_server_verifies_over_its_api(hashed: Path, server: LiveServer) -> None:
    """-H: the events, tiles and checkpoints come over HTTP and are checked the same way."""
    result = run("verify", "-H", server.base_url, "-u", "admin", "-p", ADMIN_PASSWORD,
                 "--key", str(hashed), "--allow-uncovered")
    assert result.exit_code == 0, result.output
    assert "OK: 300 events verified" in result.output


def test_exported_files_verify_and_an_edited_line_is_found(
        hashed: Path, service: AuditService, db_url: str, tmp_path: Path) -> None:
    """An NDJSON export in id order plus the checkpoint JSON: exit 0; one changed byte in
    one line: exit 1, naming the file and the stretch of events it is in."""
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    exported = run("search", "--db", db_url, "-t", "NDJSON", "-s", "id+", "-o",
                   str(evidence / "audit.ndjson"), "--no-progress")
    assert exported.exit_code == 0, exported.output
    latest = service.storage.checkpoint()
    assert latest is not None
    (evidence / "latest.json").write_bytes(orjson.dumps(checkpoint_json(latest)))
    result = run("verify", str(evidence), "--key", str(hashed), "--allow-uncovered")
    assert result.exit_code == 0, result.output
    lines = (evidence / "audit.ndjson").read_bytes().split(b"\n")
    lines[41] = lines[41].replace(b"old text", b"old texT")
    (evidence / "audit.ndjson").write_bytes(b"\n".join(lines))
    result = run("verify", str(evidence), "--key", str(hashed))
    assert result.exit_code == 1, result.output
    assert "EDITED: audit.ndjson:" in result.output and "one of them was changed" in result.output


def test_a_directory_needs_a_key(tmp_path: Path) -> None:
    """Files carry their own checkpoints; only a key from elsewhere makes them evidence."""
    (tmp_path / "a.ndjson").write_text("{}\n")
    result = run("verify", str(tmp_path), "--home", str(tmp_path / "nohome"))
    assert result.exit_code == 2 and "give --key" in result.output


def test_integrity_status_and_key(hashed: Path, db_url: str, home: Path) -> None:
    """Status shows the tree and its latest checkpoint; key prints the verifier key."""
    status = run("integrity", "status", "--db", db_url)
    assert status.exit_code == 0
    body = orjson.loads(status.output)
    assert body["tree_size"] == 300 and body["latest_checkpoint"]["size"] == 300
    key = run("integrity", "key", "--home", str(home))
    assert key.output.strip() == hashed.read_text().strip()
    assert run("integrity", "key", "--home", str(home / "x")).exit_code == 2


def test_a_store_without_events_has_nothing_to_sign(service: AuditService, db_url: str,
                                                    home: Path) -> None:
    """Signing an empty store says so; verifying it says nothing was proven (exit 3)."""
    assert "nothing to sign" in run("integrity", "checkpoint", "--db", db_url).output
    result = run("verify", "--db", db_url, "--home", str(home))
    assert result.exit_code == 3 and "NOT VERIFIED" in result.output



def test_an_export_that_starts_later_verifies_with_its_range(
        hashed: Path, service: AuditService, db_url: str, tmp_path: Path,
        server: LiveServer) -> None:
    """Events #151.. plus the range before #151 and the checkpoint: verified from there; the
    same export without the range cannot be placed (exit 3, nothing verified)."""
    evidence = tmp_path / "later"
    evidence.mkdir()
    exported = run("search", "--db", db_url, "-t", "NDJSON", "-s", "id+", "-o",
                   str(evidence / "audit.ndjson"), "--no-progress", "id:[151 TO *]")
    assert exported.exit_code == 0, exported.output
    with server.client() as client:
        (evidence / "latest.json").write_bytes(client.get("/api/v1/checkpoints/latest").content)
        rest = run("verify", str(evidence), "--key", str(hashed), "--allow-uncovered")
        assert rest.exit_code == 3, rest.output
        assert "could not be checked" in rest.output
        (evidence / "range.json").write_bytes(
            client.get("/api/v1/integrity/range", params={"before_id": 151}).content)
    result = run("verify", str(evidence), "--key", str(hashed), "--allow-uncovered")
    assert result.exit_code == 0, result.output
    assert "OK: 150 events verified" in result.output


def test_a_server_that_cannot_be_reached_is_named(tmp_path: Path) -> None:
    """Verifying a server that does not answer ends with "cannot reach" and its address
    (exit 4), whether the keys are given or would be asked of the server."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"http://127.0.0.1:{probe.getsockname()[1]}"
    key = generate_signer("audit.example.com/log").verifier().key_string
    for extra in (["--key", key], []):
        with pytest.raises(UnavailableError, match=f"cannot reach {address}") as raised:
            run("verify", "-H", address, "--home", str(tmp_path), *extra)
        assert raised.value.exit_code == 4
