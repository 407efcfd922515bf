"""The `trailkeeper` command: serve (bootstrap admin, demo data, shutdown) and search."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from trailkeeper.ingest.service import AuditService
from trailkeeper.integrity.record import ACTION as CHECKPOINT


class Served:
    def __init__(self, process: subprocess.Popen[bytes], port: int, home: Path) -> None:
        self.process, self.port, self.home = process, port, home
        self.url = f"http://127.0.0.1:{port}"


def start(home: Path, db_url: str, *extra: str, password: str | None = None) -> Served:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILKEEPER_")}
    if password:
        env["TRAILKEEPER_ADMIN_PASSWORD"] = password
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "trailkeeper", "serve", "--db", db_url, "--home", str(home),
         "--port", str(port), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            raise RuntimeError(err.decode())
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return Served(process, port, home)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    process.communicate()
    raise RuntimeError("server did not start")


def stop(served: Served) -> tuple[int, str]:
    served.process.send_signal(signal.SIGTERM)
    _, err = served.process.communicate(timeout=60)
    return served.process.returncode, err.decode()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_first_start_creates_admin_with_a_generated_password(home: Path, db_url: str) -> None:
    served = start(home, db_url)
    try:
        saved = home / "initial-admin-password"
        password = saved.read_text().strip()
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        with httpx.Client(base_url=served.url) as http:
            assert http.get("/rest/auditing/1.0/events", auth=("admin", password)).status_code \
                == 200
            assert http.get("/rest/auditing/1.0/events", auth=("admin", "admin")).status_code \
                == 401
    finally:
        code, stderr = stop(served)
    assert code == 0
    assert stderr.count(password) == 1  # printed once, on the terminal only
    log = (home / "log" / "trailkeeper.log").read_text()
    assert password not in log
    assert "listening on" in log


def test_admin_password_from_the_environment_is_not_written_anywhere(home: Path,
                                                                      db_url: str) -> None:
    served = start(home, db_url, password="from-the-environment")
    try:
        response = httpx.get(f"{served.url}/api/v1/events",
                             auth=("admin", "from-the-environment"))
        assert response.status_code == 200
        assert not (home / "initial-admin-password").exists()
    finally:
        code, stderr = stop(served)
    assert code == 0 and "from-the-environment" not in stderr


def test_demo_loads_a_realistic_data_set_once(home: Path, tmp_path: Path) -> None:
    db_url = f"sqlite://{tmp_path / 'demo.db'}"
    served = start(home, db_url, "--demo", password="pw")
    try:
        with httpx.Client(base_url=served.url, auth=("admin", "pw")) as http:
            body = http.get("/rest/auditing/1.0/events", params={"limit": 1}).json()
            assert body["entities"] and body["pagingInfo"]["lastPage"] is False
            hooks = http.get("/rest/auditing/1.0/events",
                             params={"actions": "Security hook skipped"}).json()["entities"]
            assert len(hooks) == 3
            failed = http.get("/rest/auditing/1.0/events",
                              params={"actions": "User login failed", "limit": 1000}).json()
            assert len(failed["entities"]) >= 25
            project = http.get("/rest/api/latest/projects/PLAT").json()
            assert project["key"] == "PLAT"
    finally:
        assert stop(served)[0] == 0
    with AuditService.open(db_url) as service:
        before = service.count()
    served = start(home, db_url, "--demo", password="pw")
    assert stop(served)[0] == 0
    with AuditService.open(db_url) as service:
        assert service.count() == before


def test_context_path_serves_under_the_prefix(home: Path, tmp_path: Path) -> None:
    served = start(home, f"sqlite://{tmp_path / 'c.db'}", "--context-path", "/bitbucket",
                   password="pw")
    try:
        response = httpx.get(f"{served.url}/bitbucket/rest/auditing/1.0/events",
                             auth=("admin", "pw"))
        assert response.status_code == 200
    finally:
        assert stop(served)[0] == 0


@pytest.fixture
def running(home: Path, tmp_path: Path) -> Iterator[Served]:
    served = start(home, f"sqlite://{tmp_path / 'r.db'}", password="pw")
    yield served
    if served.process.poll() is None:
        stop(served)


def test_sigterm_shuts_down_cleanly(running: Served) -> None:
    code, stderr = stop(running)
    assert code == 0
    assert "stopped" in stderr


def test_several_workers_share_the_store_and_the_metrics(home: Path, db_url: str) -> None:
    served = start(home, db_url, "--workers", "2", password="pw")
    try:
        with httpx.Client(base_url=served.url, auth=("admin", "pw")) as http:
            body = [{"type": {"category": "c", "action": f"a{i}"}, "uid": f"w-{i}"}
                    for i in range(40)]
            ids = []
            for item in body:  # spread over connections, hence over workers
                with httpx.Client(base_url=served.url, auth=("admin", "pw")) as fresh:
                    ids += fresh.post("/api/v1/events", json=item).json()["ids"]
            assert len(set(ids)) == 40 and ids == sorted(ids)
            # (The server also records its signed checkpoints: category Auditing.)
            assert http.get("/rest/auditing/1.0/events", params={
                "limit": 100, "categories": "c"}).json()["pagingInfo"]["size"] == 40
            metrics = http.get("/metrics").text
            assert 'trailkeeper_events_received_total{path="http"} 40.0' in metrics
    finally:
        code, stderr = stop(served)
    assert code == 0
    assert stderr.count("worker stopping: writing queued events") == 2


def _sink_lines(directory: Path) -> list[str]:
    return [line for f in sorted(directory.glob("*.audit.log"))
            for line in f.read_text().splitlines()]


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_writes_the_audit_log_files(home: Path, db_url: str, workers: int) -> None:
    """The file sink runs inside serve (one writer per node even with two workers), is
    woken by commits, and has every event in the files after a clean stop."""
    served = start(home, db_url, "--workers", str(workers), password="pw")
    try:
        with httpx.Client(base_url=served.url, auth=("admin", "pw")) as http:
            for n in range(20):
                answer = http.post("/api/v1/events", json=[
                    {"type": {"category": "Tests", "action": f"Action {n}-{i}"}}
                    for i in range(50)])
                assert answer.status_code == 201
        directory = home / "log" / "audit"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = [line for line in _sink_lines(directory) if '"category":"Tests"' in line]
            if len(lines) >= 1000:
                break
            time.sleep(0.1)
        assert len(lines) == 1000  # while serving, within a moment of the commits
    finally:
        code, _ = stop(served)
    assert code == 0
    files = sorted(directory.glob("*.audit.log"))
    assert len(files) == 1 and files[0].name.endswith(".00000.audit.log")
    actions = [line.split('"action":"', 1)[1].split('"', 1)[0]
               for line in files[0].read_text().splitlines()]
    # Every event once, in order, between the server's own checkpoint records.
    assert [a for a in actions if a != CHECKPOINT] == \
        [f"Action {n}-{i}" for n in range(20) for i in range(50)]
    assert actions[-1] == CHECKPOINT  # the last one, signed at shutdown
