"""trailkeeper.toml: defaults, validation errors that name file and key, and `serve`
refusing to start on a broken file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trailkeeper.errors import ConfigurationError
from trailkeeper.settingsfile import FileSettings, duration_ms, load_file_settings


def write(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "trailkeeper.toml"
    path.write_text(text)
    return path


def test_without_a_file_the_defaults_apply(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAILKEEPER_CONFIG", raising=False)
    settings = load_file_settings(tmp_path)
    assert settings == FileSettings()
    assert settings.detection.enabled and settings.detection.builtin
    assert settings.detection.throttle_ms == 600_000
    assert settings.action == () and settings.forward == ()


def test_a_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_file_settings(tmp_path, tmp_path / "nowhere.toml")


def test_a_full_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    monkeypatch.setenv("HEC_TOKEN", "t0ken")
    write(tmp_path, """
public_url = "https://audit.example.com"
[detection]
rules = ["/etc/trailkeeper/rules"]
disabled = ["trailkeeper_audit_config_changed"]
throttle = "90s"
[[action]]
name = "mail"
type = "email"
to = ["sec@example.com"]
from = "tk@example.com"
host = "smtp.example.com"
min_level = "high"
[[action]]
name = "hook"
type = "webhook"
url = "https://soar.example.com/hook"
secret_env = "HOOK_SECRET"
tags = ["attack.*"]
[[action]]
name = "syslog-alerts"
type = "syslog"
url = "udp://127.0.0.1:514"
[[forward]]
name = "siem"
type = "syslog"
url = "tls://siem.example.com:6514"
format = "cef"
[[forward]]
name = "splunk"
type = "splunk"
url = "https://splunk.example.com:8088"
token_env = "HEC_TOKEN"
""")
    settings = load_file_settings(tmp_path)
    assert settings.detection.throttle_ms == 90_000
    assert [a.type for a in settings.action] == ["email", "webhook", "syslog"]
    assert [f.type for f in settings.forward] == ["syslog", "splunk"]


@pytest.mark.parametrize(("text", "message"), [
    ("[detection\n", "not valid TOML"),
    ("[detection]\nthrottle = \"ten minutes\"\n", "detection.throttle"),
    ("[detection]\nenabled = \"yes please\"\n", "detection.enabled"),
    ("colour = \"blue\"\n", "colour"),
    ("[[action]]\nname = \"x\"\ntype = \"pager\"\n", "action[0]"),
    ("[[action]]\nname = \"m\"\ntype = \"email\"\nto = [\"a@example.com\"]\n"
     "from = \"b@example.com\"\nhost = \"h\"\nbogus = 1\n", "action[0].bogus"),
    ("[[forward]]\nname = \"a\"\ntype = \"syslog\"\nurl = \"udp://h:514\"\n"
     "[[forward]]\nname = \"a\"\ntype = \"syslog\"\nurl = \"udp://h:515\"\n",
     "two [[forward]] tables are named 'a'"),
    ("public_url = \"ftp://x\"\n", "public_url"),
])
def test_mistakes_are_named_with_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as caught:
        load_file_settings(tmp_path)
    assert str(path) in caught.value.message
    assert message in caught.value.message


def test_a_secret_is_not_repeated_in_an_error(tmp_path: Path) -> None:
    write(tmp_path, """
[[action]]
name = "hook"
type = "webhook"
url = "not a url"
secret = "hunter2-very-secret"
""")
    with pytest.raises(ConfigurationError) as caught:
        load_file_settings(tmp_path)
    assert "action[0].url" in caught.value.message
    assert "hunter2" not in caught.value.message


@pytest.mark.parametrize(("text", "ms"), [("0", 0), ("250ms", 250), ("30s", 30_000),
                                          ("10m", 600_000), ("2h", 7_200_000),
                                          ("1d", 86_400_000)])
def test_durations(text: str, ms: int) -> None:
    assert duration_ms(text) == ms


def test_serve_refuses_to_start_on_a_broken_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write(home, "[[action]]\nname = \"m\"\ntype = \"email\"\n")
    result = subprocess.run(
        [sys.executable, "-m", "trailkeeper", "serve", "--home", str(home), "--port", "0"],
        capture_output=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 2
    assert b"action[0].to" in result.stderr
