"""Shared fixtures: both real stores, a real HTTP server on loopback, and an admin client.

Every storage-touching test runs twice, on SQLite and on PostgreSQL. PostgreSQL comes from
``TRAILKEEPER_TEST_PG`` (an admin URL, default the local server); the session creates its own
database and drops it at the end, and each test starts from empty tables.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from trailkeeper.api.app import build_app
from trailkeeper.auth.passwords import hash_password
from trailkeeper.auth.principals import Role
from trailkeeper.config import Settings
from trailkeeper.governance.config import coverage_setting, dumps
from trailkeeper.ingest.service import AuditService
from trailkeeper.model.areas import CoverageArea
from trailkeeper.storage import open_storage
from trailkeeper.storage.base import Storage, UserRecord

PG_ADMIN_URL = os.environ.get("TRAILKEEPER_TEST_PG",
                              "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_PASSWORD = "correct horse battery staple"
BACKENDS = ["sqlite", "postgres"]


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    name = f"trailkeeper_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(PG_ADMIN_URL, name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty_postgres(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as con:
        tables = [r[0] for r in con.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'schema_migrations'")]
        if tables:
            names = ", ".join(f'"{t}"' for t in tables)
            con.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        for (sequence,) in con.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'").fetchall():
            con.execute(f'ALTER SEQUENCE "{sequence}" RESTART')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL of an empty store of the parametrised backend."""
    if backend == "sqlite":
        return f"sqlite://{tmp_path / 'audit.db'}"
    url: str = request.getfixturevalue("pg_url")
    # Tables exist after the first open; empty them so every test starts clean.
    open_storage(url).close()
    _empty_postgres(url)
    return url


@pytest.fixture
def storage(db_url: str) -> Iterator[Storage]:
    store = open_storage(db_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def service(db_url: str) -> Iterator[AuditService]:
    svc = AuditService.open(db_url)
    try:
        yield svc
    finally:
        svc.close()


def without_search_records(service: AuditService) -> AuditService:
    """Switch the AUDIT_LOG coverage off in the store, without recording the change, so the
    store holds only what a test put there and not Trailkeeper's records of the test's own
    searches (for tests of what searches return; tests/access/test_self_audit.py tests the
    records themselves). Applies to every service on the store."""
    service.governance.change({coverage_setting(CoverageArea.AUDIT_LOG): dumps("off")})
    return service


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The real app served by uvicorn on loopback, in a background thread."""

    def __init__(self, service: AuditService, settings: Settings) -> None:
        self.service = service
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}{settings.context_path}"
        config = uvicorn.Config(build_app(service, settings), host="127.0.0.1", port=self.port,
                                log_config=None, access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def client(self, auth: tuple[str, str] | None = ("admin", ADMIN_PASSWORD),
               **options: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, auth=auth, timeout=30, **options)


def add_user(storage: Storage, name: str, password: str, role: Role) -> None:
    storage.put_user(UserRecord(name, hash_password(password), role))


def start_server(service: AuditService, tmp_path: Path, **settings: Any) -> LiveServer:
    if service.storage.get_user("admin") is None:
        add_user(service.storage, "admin", ADMIN_PASSWORD, Role.SYSADMIN)
    return LiveServer(service, Settings(home=tmp_path, db_url="unused", **settings))


@pytest.fixture
def server(service: AuditService, tmp_path: Path) -> Iterator[LiveServer]:
    with start_server(service, tmp_path) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c
