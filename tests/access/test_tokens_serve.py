"""The token CLI and a real ``trailkeeper serve --workers 2``: the rate limit holds across the
worker processes, revocation from the CLI takes effect at once, and the log file has the
seed-001 lines and no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.test_cli import start, stop
from trailkeeper.auth import tokens


def trailkeeper(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILKEEPER_")}
    return subprocess.run([sys.executable, "-m", "trailkeeper", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def _ring_holders(parent: int, token_id: str) -> int:
    """How many child processes of ``parent`` have the token's rate-limit file open."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    holders = 0
    for pid in children:
        try:
            targets = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        holders += any(t.endswith(f"{token_id}.ring") for t in targets)
    return holders


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_rate_limit_holds_across_two_workers_and_cli_revocation_is_immediate(
        tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    served = start(home, db_url, "--workers", "2", password="pw-admin")
    try:
        created = trailkeeper("token", "create", "--home", str(home), "--db", db_url,
                              "--user", "admin", "--scope", "read", "--rate", "6/1m",
                              "--allow-ip", "127.0.0.0/8", "--description", "two workers")
        assert created.returncode == 0, created.stderr
        text = created.stdout.strip()
        token_id, secret = tokens.parse(text)  # type: ignore[misc]
        assert "shown only now" in created.stderr and secret not in created.stderr
        statuses, retry = [], []
        for _ in range(30):  # a new connection each time, so both workers take requests
            response = httpx.get(f"{served.url}/api/v1/events",
                                 headers={"Authorization": f"Bearer {text}"}, timeout=30)
            statuses.append(response.status_code)
            if response.status_code == 429:
                retry.append(int(response.headers["Retry-After"]))
        assert statuses.count(200) == 6 and statuses.count(429) == 24, statuses
        assert all(1 <= r <= 60 for r in retry)
        assert _ring_holders(served.process.pid, token_id) == 2  # both workers counted

        listed = trailkeeper("token", "list", "--home", str(home), "--db", db_url)
        assert token_id in listed.stdout and secret not in listed.stdout
        other = trailkeeper("token", "create", "--home", str(home), "--db", db_url,
                            "--user", "admin", "--scope", "read").stdout.strip()
        auth = {"Authorization": f"Bearer {other}"}
        assert httpx.get(f"{served.url}/api/v1/events", headers=auth).status_code == 200
        other_id = tokens.parse(other)[0]  # type: ignore[index]
        revoked = trailkeeper("token", "revoke", other_id, "--home", str(home), "--db", db_url)
        assert revoked.returncode == 0, revoked.stderr
        for _ in range(4):  # whichever worker answers
            assert httpx.get(f"{served.url}/api/v1/events", headers=auth).status_code == 401
        assert trailkeeper("token", "revoke", "ffffffffffffffff", "--home", str(home),
                           "--db", db_url).returncode == 1
    finally:
        code, _ = stop(served)
    assert code == 0
    log = (home / "log" / "trailkeeper.log").read_text()
    assert 'Found a matching token "two workers" with Read Only scope and authenticated ' \
           "user admin." in log
    assert "User admin has been rate limited. The API token allows executing 6 requests " \
           "within 1 minutes." in log
    assert secret not in log and tokens.parse(other)[1] not in log  # type: ignore[index]
