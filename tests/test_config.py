"""Settings helpers: secrets never reach a log line."""

from __future__ import annotations

import pytest

from trailkeeper.config import normalise_context_path, redact_url


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://app:hunter2@db:5432/audit", "postgresql://app:***@db:5432/audit"),
    ("postgresql://db/audit?user=app&password=hunter2&sslmode=require",
     "postgresql://db/audit?user=app&password=***&sslmode=require"),
    ("postgresql://postgres@127.0.0.1/audit", "postgresql://postgres@127.0.0.1/audit"),
    ("sqlite:///var/lib/trailkeeper/audit.db", "sqlite:///var/lib/trailkeeper/audit.db"),
])
def test_redacted_urls_hide_passwords_wherever_they_are(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "hunter2" not in redact_url(url)


def test_context_paths_are_normalised() -> None:
    assert normalise_context_path("bitbucket/") == "/bitbucket"
    assert normalise_context_path("/") == ""
    assert normalise_context_path(None) == ""
