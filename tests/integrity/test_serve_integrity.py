"""End to end: ``trailkeeper serve`` hashes what it stores, signs checkpoints, writes them
into the audit log files, and everything it leaves behind verifies."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from tests.test_cli import start, stop
from trailkeeper.cli.main import cli

PASSWORD = "integrity test password"


def test_a_server_signs_checkpoints_that_its_files_and_store_verify_against(
        tmp_path: Path, db_url: str) -> None:
    """Events sent over HTTP are under a signed checkpoint within seconds; after SIGTERM the
    last checkpoint covers everything, its record is in the audit log files, and both the
    store and the files verify with the server's public key."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "trailkeeper.toml").write_text(
        '[integrity]\norigin = "audit.test/e2e"\ncheckpoint_events = 100\n'
        'checkpoint_interval = "1s"\n')
    served = start(home, db_url, password=PASSWORD)
    try:
        with httpx.Client(base_url=served.url, auth=("admin", PASSWORD), timeout=30) as client:
            for part in range(3):
                body = "\n".join(
                    f'{{"uid":"e2e-{part}-{n}","type":{{"category":"Repositories",'
                    f'"action":"Repository created"}},"source":"10.0.0.{n % 250}"}}'
                    for n in range(150))
                answer = client.post("/api/v1/events", content=body,
                                     headers={"Content-Type": "application/x-ndjson"})
                assert answer.status_code == 201, answer.text
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                latest = client.get("/api/v1/checkpoints/latest")
                if latest.status_code == 200 and latest.json()["size"] >= 450:
                    break
                time.sleep(0.2)
            assert latest.status_code == 200 and latest.json()["size"] >= 450
            assert latest.json()["origin"] == "audit.test/e2e"
    finally:
        code, err = stop(served)
    assert code == 0, err
    key = home / "integrity" / "checkpoint.key.pub"
    assert key.read_text().startswith("audit.test/e2e+")
    runner = CliRunner()
    files = runner.invoke(cli, ["verify", str(home / "log" / "audit"), "--key", str(key),
                                "--allow-uncovered"])
    assert files.exit_code == 0, files.output
    assert "OK:" in files.output
    store = runner.invoke(cli, ["verify", "--db", db_url, "--key", str(key), "--jobs", "1"])
    # The shutdown's last checkpoint covers everything but its own record.
    assert store.exit_code == 3, store.output
    assert "1 event(s)" in store.output and "not covered" in store.output
