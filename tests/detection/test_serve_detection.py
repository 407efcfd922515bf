"""`trailkeeper serve` with a trailkeeper.toml: the rules run live on what is ingested over
HTTP, alerts are listed by the API, delivered by e-mail (aiosmtpd) and signed webhook, and
every event is forwarded to a syslog receiver and a Splunk HEC; a restart neither loses nor
repeats an alert, a delivery or a forwarded event."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.alerts.servers import WEBHOOK_SECRET, WebhookReceiver, smtp_server, webhook_server
from tests.conftest import free_port
from tests.forwarding.helpers import Hec, StreamReceiver, parse_rfc5424, receiving
from trailkeeper.storage import open_storage

PASSWORD = "serve-detection-Pa55"
HEC_TOKEN = "hec-token-1b2c3d"
CUSTOM_RULE = """\
title: Repository Deleted
id: 5d0c3a52-3f0e-4a57-9d55-1e0b3f6c8a11
status: test
logsource:
    product: bitbucket
    service: audit
detection:
    selection:
        auditType.action: 'Repository deleted'
    condition: selection
level: medium
"""


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Served:
    def __init__(self, home: Path, db_url: str, rules: Path) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILKEEPER_")}
        env.update(TRAILKEEPER_ADMIN_PASSWORD=PASSWORD, TK_WEBHOOK_SECRET=WEBHOOK_SECRET,
                   TK_HEC_TOKEN=HEC_TOKEN)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trailkeeper", "serve", "--db", db_url, "--home", str(home),
             "--port", str(self.port), "--rules", str(rules)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}",
                                 auth=("admin", PASSWORD), timeout=30)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(self.process.communicate()[1].decode())
            try:
                if self.http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server did not start")
            time.sleep(0.1)

    def post(self, events: list[dict[str, Any]]) -> None:
        body = b"\n".join(orjson.dumps(e) for e in events)
        response = self.http.post("/api/v1/events", content=body,
                                  headers={"content-type": "application/x-ndjson"})
        assert response.status_code == 201, response.text

    def alerts(self) -> list[dict[str, Any]]:
        response = self.http.get("/api/v1/alerts", params={"limit": 1000})
        assert response.status_code == 200, response.text
        alerts: list[dict[str, Any]] = response.json()["alerts"]
        return alerts

    def stop(self) -> str:
        self.http.close()
        self.process.send_signal(signal.SIGTERM)
        _, err = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, err.decode()
        return err.decode()


# Event times a few minutes old, as live traffic has: the server also records events of its
# own stamped now (checkpoints), and detection replays the correlation windows back from the
# newest event time it saw.
BASE = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=12)


def event(action: str, category: str, author: str, minute: int, n: int,
          **extra: Any) -> dict[str, Any]:
    at = BASE + timedelta(minutes=minute, seconds=n % 60)
    return {"timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "type": {"category": category, "action": action, "area": "SECURITY",
                     "level": "BASE"},
            "author": {"id": author, "name": author, "type": "user"},
            "source": "203.0.113.9", "uid": f"e2e-{action}-{author}-{minute}-{n}", **extra}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "repository_deleted.yml").write_text(CUSTOM_RULE)
    return directory


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[dict[str, Any]]:
    hec = Hec(HEC_TOKEN)
    with smtp_server() as (mail, smtp_port), webhook_server(WebhookReceiver()) as (hook, url), \
            receiving(StreamReceiver()) as syslog:
        try:
            yield {"mail": mail, "smtp_port": smtp_port, "hook": hook, "hook_url": url,
                   "syslog": syslog, "hec": hec}
        finally:
            hec.close()


def write_config(home: Path, r: dict[str, Any]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "trailkeeper.toml").write_text(f"""
public_url = "https://audit.example.com"

[detection]
throttle = "10m"

[[action]]
name = "security-team"
type = "email"
rules = ["trailkeeper_security_hook_skipped"]  # by its Sigma name
to = ["security@example.com"]
from = "trailkeeper@example.com"
host = "127.0.0.1"
port = {r["smtp_port"]}
tls = "none"

[[action]]
name = "soc-webhook"
type = "webhook"
url = "{r["hook_url"]}"
secret_env = "TK_WEBHOOK_SECRET"

[[forward]]
name = "siem"
type = "syslog"
url = "{r["syslog"].url}"
format = "json"

[[forward]]
name = "splunk"
type = "splunk"
url = "{r["hec"].url}"
token_env = "TK_HEC_TOKEN"
""")


def test_serve_detects_alerts_and_forwards_across_a_restart(
        tmp_path: Path, db_url: str, rules: Path, receivers: dict[str, Any]) -> None:
    home = tmp_path / "home"
    write_config(home, receivers)
    hook: WebhookReceiver = receivers["hook"]
    syslog: StreamReceiver = receivers["syslog"]
    hec: Hec = receivers["hec"]

    served = Served(home, db_url, rules)
    try:
        served.post([event("Repository created", "Repositories", "alice", 1, 0),
                     event("Security hook skipped", "Soteri Security for Bitbucket", "mallory",
                           2, 0),
                     event("Repository deleted", "Repositories", "mallory", 3, 0)])
        # Six failed logins before the restart, six after: the tenth makes the alert.
        served.post([event("User login failed", "Authentication", "bob", 10, n)
                     for n in range(6)])
        wait_for(lambda: {"Security Hook Skipped", "Repository Deleted"}
                 <= {a["rule_title"] for a in served.alerts()}, "the first alerts")
        wait_for(lambda: len(hook.delivered) >= 2, "the first webhooks")
    finally:
        served.stop()

    served = Served(home, db_url, rules)
    try:
        served.post([event("User login failed", "Authentication", "bob", 10, n)
                     for n in range(6, 12)])
        wait_for(lambda: "Many Failed Logins For One User"
                 in {a["rule_title"] for a in served.alerts()}, "the correlation alert")
        alerts = served.alerts()
        wait_for(lambda: len(hook.delivered) >= len(alerts), "every alert as a webhook")
        wait_for(lambda: len(receivers["mail"].messages()) >= 1, "the e-mail")
    finally:
        log = served.stop()
    assert "Traceback" not in log

    titles = Counter(a["rule_title"] for a in alerts)
    assert titles["Security Hook Skipped"] == 1
    assert titles["Repository Deleted"] == 1
    assert titles["Many Failed Logins For One User"] == 1
    [many] = [a for a in alerts if a["rule_title"] == "Many Failed Logins For One User"]
    assert many["group"] == {"author.name": "bob"}
    assert many["count"] == 3  # the 10th, 11th and 12th failure, merged by the throttle
    # Each alert was delivered once, signed; the e-mail only for the routed rule.
    delivered = Counter(d.json()["id"] for d in hook.delivered)
    assert sorted(delivered) == sorted(a["id"] for a in alerts)
    assert set(delivered.values()) == {1}
    [mail] = receivers["mail"].messages()
    assert "Security Hook Skipped" in str(mail["Subject"])
    assert "mallory" in mail.get_content()
    # Every stored event reached both SIEMs, once each, in id order.
    storage = open_storage(db_url)
    try:
        stored = [e.id for e in storage.events_after(0, 100_000)]
    finally:
        storage.close()
    wait_for(lambda: len(syslog.frames) >= len(stored), "every syslog frame")
    forwarded = [orjson.loads(parse_rfc5424(f).message)["id"] for f in syslog.frames]
    assert forwarded == stored
    assert [e["event"]["id"] for e in hec.events] == stored
