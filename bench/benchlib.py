"""What every benchmark shares: options, machine facts, stores, a server subprocess, statistics.

Benchmarks print one JSON object on stdout and their progress on stderr, so
``python bench/x.py > x.json`` keeps a clean result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / ".data"
PG_ADMIN_URL = os.environ.get("TRAILKEEPER_BENCH_PG",
                              "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_USER = "admin"
ADMIN_PASSWORD = "bench-admin-password"
BACKENDS = ("sqlite", "postgres")


def log(message: str) -> None:
    """Progress on stderr (stdout is reserved for the JSON result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--backend", choices=BACKENDS, default="sqlite")
    p.add_argument("--pg-url", default=PG_ADMIN_URL,
                   help="PostgreSQL admin URL; benchmark databases are created beside it "
                        "[env TRAILKEEPER_BENCH_PG]")
    p.add_argument("--keep", action="store_true",
                   help="keep the fresh stores of this run instead of deleting them")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="server worker processes (default: one per core)")
    return p


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2))


# -- statistics ----------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between closest ranks."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_ms(samples_s: Sequence[float], quantiles: Sequence[int] = (50, 90, 99)) -> dict[
        str, float]:
    """Quantiles and extremes of durations in seconds, as milliseconds."""
    out = {f"p{q}_ms": round(percentile(samples_s, q / 100) * 1000, 3) for q in quantiles}
    out["min_ms"] = round(min(samples_s) * 1000, 3)
    out["max_ms"] = round(max(samples_s) * 1000, 3)
    return out


def target(name: str, value: float, limit: float, *, at_least: bool) -> dict[str, Any]:
    """One of the issue's targets and whether this run met it."""
    met = value >= limit if at_least else value <= limit
    return {"figure": name, "value": value, "target": f"{'>=' if at_least else '<='} {limit}",
            "met": met}


def metric_values(metrics_text: str, prefix: str) -> dict[str, float]:
    """The unlabelled samples of Prometheus text whose names start with ``prefix``."""
    values: dict[str, float] = {}
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name.startswith(prefix) and not name.endswith("_created"):
            values[name] = float(value)
    return values


def commit_stats(metrics_text: str) -> dict[str, Any]:
    """Group-commit figures from Prometheus text: how many, how big, how long in total."""
    values = metric_values(metrics_text, "trailkeeper_commit_")
    commits = values.get("trailkeeper_commit_seconds_count", 0.0)
    return {
        "commits": int(commits),
        "commit_s_total": round(values.get("trailkeeper_commit_seconds_sum", 0.0), 3),
        "events_per_commit_mean": round(values.get("trailkeeper_commit_events_sum", 0.0)
                                        / commits, 1) if commits else None,
    }


# -- machine -------------------------------------------------------------------------------


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO_DIR,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def _postgres_facts(admin_url: str) -> dict[str, Any]:
    with psycopg.connect(admin_url, autocommit=True) as con:
        facts = {name: con.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                 for name in ("server_version", "fsync", "synchronous_commit",
                              "shared_buffers")}
    return {"postgres_" + name: value for name, value in facts.items()}


def machine(backend: str, pg_url: str) -> dict[str, Any]:
    """Facts a reader needs to compare two results: cores, versions, load, durability."""
    facts: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "git_commit": _git_commit(),
    }
    if backend == "postgres":
        facts.update(_postgres_facts(pg_url))
    return facts


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live children so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        with contextlib.suppress(FileNotFoundError):  # it ended meanwhile
            total += cpu_seconds(int(child))
    return total


# -- stores --------------------------------------------------------------------------------


def pg_url_for(admin_url: str, database: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{database}"


def pg_database_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(admin_url, autocommit=True) as con:
        return con.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                           (name,)).fetchone() is not None


def pg_create_database(admin_url: str, name: str, template: str | None = None) -> None:
    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        copying = f' TEMPLATE "{template}"' if template else ""
        con.execute(f'CREATE DATABASE "{name}"{copying}')


def pg_drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def scratch_dir(label: str) -> Path:
    """A new directory under bench/.data (on the real disk: /tmp may be memory)."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=DATA_DIR))


def record_everything(db_url: str) -> None:
    """Give a store the DETAILED audit policy (every area at FULL, changed values kept).

    The demo events span every level; under the default coverage (BASE) most would be left
    out, and a benchmark would measure how fast events are *not* stored. With DETAILED every
    event goes the whole way, through the policy included.
    """
    from trailkeeper.governance.manage import preset_values
    from trailkeeper.governance.policy import Preset
    from trailkeeper.storage import open_storage

    storage = open_storage(db_url)
    try:
        storage.put_settings(preset_values(Preset.DETAILED))
    finally:
        storage.close()


@contextlib.contextmanager
def fresh_store(backend: str, pg_url: str, label: str, *, keep: bool = False,
                copy_of: str | None = None) -> Iterator[str]:
    """The URL of a new store (recording everything: `record_everything`), empty or a copy
    of the store ``copy_of``; deleted afterwards unless ``keep``."""
    if backend == "sqlite":
        folder = scratch_dir(label)
        try:
            if copy_of is not None:
                shutil.copyfile(copy_of.removeprefix("sqlite://"), folder / "audit.db")
                os.sync()  # let the copy reach the disk now, not during the measurement
            url = f"sqlite://{folder / 'audit.db'}"
            record_everything(url)
            yield url
        finally:
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)
        return
    name = f"trailkeeper_bench_{label}_{os.getpid()}"
    pg_create_database(pg_url, name,
                       template=copy_of.rpartition("/")[2] if copy_of is not None else None)
    try:
        url = pg_url_for(pg_url, name)
        record_everything(url)
        yield url
    finally:
        if not keep:
            pg_drop_database(pg_url, name)


# -- the server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """``trailkeeper serve`` as a subprocess, on loopback, with a known admin password."""

    db_url: str
    home: Path
    workers: int = 1
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()  # more `serve` options, e.g. ("--rules", DIR)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> None:
        self.port = self.port or free_port()
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TRAILKEEPER_ADMIN_PASSWORD": ADMIN_PASSWORD,
               "TRAILKEEPER_LOG_LEVEL": "WARNING"}
        output = (self.home / "server.out").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trailkeeper", "serve", "--db", self.db_url,
             "--home", str(self.home), "--port", str(self.port),
             "--workers", str(self.workers), *self.extra_args],
            stdout=output, stderr=subprocess.STDOUT, env=env, cwd=REPO_DIR)
        output.close()
        self._wait_healthy(timeout_s)

    def _wait_healthy(self, timeout_s: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{self.output_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not become healthy:\n{self.output_tail()}")

    def client(self, timeout_s: float = 120) -> httpx.Client:
        """A keep-alive client that authenticates as the admin."""
        return httpx.Client(base_url=self.base_url, auth=(ADMIN_USER, ADMIN_PASSWORD),
                            timeout=timeout_s)

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return cpu_seconds(self.process.pid)

    def stop(self, timeout_s: float = 120) -> None:
        """Ask for a graceful shutdown (the server drains its queue), then wait."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log("the server did not stop in time; killing it")
            self.process.kill()
            self.process.wait()

    def output_tail(self, lines: int = 30) -> str:
        path = self.home / "server.out"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def prime_auth(client: httpx.Client) -> None:
    """One authenticated request, so the slow password check is not inside any figure."""
    response = client.get("/rest/auditing/1.0/events", params={"limit": 1})
    response.raise_for_status()
