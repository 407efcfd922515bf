"""Forwarding the committed log to a real HTTP Event Collector on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from tests.consumers.helpers import add_events, expected_lines
from tests.forwarding.helpers import Hec, wait_for
from trailkeeper.forwarding.config import SplunkForwardConfig
from trailkeeper.forwarding.errors import SendError
from trailkeeper.forwarding.forwarder import Forwarder
from trailkeeper.metrics import Metrics
from trailkeeper.storage.base import Storage

TOKEN = "0f8e3a4c-hec-token"


@pytest.fixture
def hec() -> Iterator[Hec]:
    server = Hec(TOKEN)
    try:
        yield server
    finally:
        server.close()


def forwarder(storage: Storage, hec: Hec, metrics: Metrics | None = None, *,
              token: str = TOKEN, **config: object) -> Forwarder:
    settings = SplunkForwardConfig.model_validate(
        {"type": "splunk", "name": "splunk", "url": hec.url, "token": token,
         "max_backoff_s": 0.2, **config})
    built = settings.build(storage, metrics or Metrics(), node="node-1")
    built._poll_interval_s = 0.05
    return built


def position(storage: Storage) -> int:
    text = storage.get_position("forward:splunk")
    return 0 if text is None else int(orjson.loads(text)["id"])


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_every_event_reaches_hec_as_its_file_shape_with_its_time(
        storage: Storage, hec: Hec) -> None:
    """Batched requests; each event object has time, host, source, sourcetype, index."""
    add_events(storage, 700)
    fwd = forwarder(storage, hec, index="audit", batch_size=300, max_batch_bytes=100_000)
    assert fwd.drain() == 700
    fwd.stop()
    assert [orjson.dumps(e["event"], option=orjson.OPT_SORT_KEYS) + b"\n"
            for e in hec.events] == expected_lines(storage)
    rows = storage.events_after(0, 1000)
    assert [e["time"] for e in hec.events] == [r.timestamp_ms / 1000 for r in rows]
    assert {(e["host"], e["source"], e["sourcetype"], e["index"]) for e in hec.events} == \
        {("node-1", "trailkeeper", "atlassian:audit", "audit")}
    assert hec.requests > 3  # split by bytes as well as by batch


def test_a_busy_collector_gets_each_event_once_after_it_recovers(
        storage: Storage, hec: Hec) -> None:
    """503 and 429 are retried (Retry-After honoured), then 200: delivered once."""
    add_events(storage, 120)
    hec.responses = [503, 429, 500]
    metrics = Metrics()
    fwd = forwarder(storage, hec, metrics)
    fwd.start()
    try:
        wait_for(lambda: len(hec.events) == 120 and position(storage) == 120)
    finally:
        fwd.stop()
    assert [e["event"]["id"] for e in hec.events] == list(range(1, 121))
    assert sample(metrics, "trailkeeper_forward_failures_total", forwarder="splunk") == 3
    assert sample(metrics, "trailkeeper_forwarded_events_total", forwarder="splunk") == 120


def test_a_wrong_token_keeps_the_events_and_keeps_trying(
        storage: Storage, hec: Hec, caplog: pytest.LogCaptureFixture) -> None:
    """403 is a configuration problem: logged as an error at every attempt, nothing is
    skipped, and the position does not move."""
    add_events(storage, 10)
    fwd = forwarder(storage, hec, token="wrong")
    fwd.start()
    try:
        wait_for(lambda: fwd.failures >= 3)
        assert position(storage) == 0
    finally:
        fwd.stop()
    assert hec.events == []
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "token" in r.message]
    assert len(errors) >= 3
    assert "wrong" not in caplog.text  # the token is never logged
    fixed = forwarder(storage, hec)
    assert fixed.drain() == 10
    fixed.stop()
    assert [e["event"]["id"] for e in hec.events] == list(range(1, 11))


def test_the_lag_metric_counts_what_is_not_delivered(storage: Storage, hec: Hec) -> None:
    """Two batches accepted, then the collector is busy: lag 400 of 1000, position 600."""
    add_events(storage, 1000)
    hec.accept_requests = 2
    metrics = Metrics()
    fwd = forwarder(storage, hec, metrics, batch_size=300)
    with pytest.raises(SendError, match="503"):
        fwd.drain()
    assert position(storage) == 600
    assert sample(metrics, "trailkeeper_consumer_lag_events", consumer="forward:splunk") == 400
    hec.accept_requests = None
    assert fwd.drain() == 400
    assert sample(metrics, "trailkeeper_consumer_lag_events", consumer="forward:splunk") == 0
    fwd.stop()
    assert [e["event"]["id"] for e in hec.events] == list(range(1, 1001))


def test_the_token_comes_from_one_of_three_spellings(tmp_path: Path, hec: Hec,
                                                     storage: Storage) -> None:
    base = {"type": "splunk", "name": "s", "url": hec.url}
    with pytest.raises(ValidationError, match="token"):
        SplunkForwardConfig.model_validate(base)
    with pytest.raises(ValidationError, match="only one"):
        SplunkForwardConfig.model_validate({**base, "token": "a", "token_env": "B"})
    with pytest.raises(ValidationError, match="extra"):
        SplunkForwardConfig.model_validate({**base, "token": "a", "tokne": "b"})
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    config = SplunkForwardConfig.model_validate({**base, "token_file": str(secret)})
    add_events(storage, 2)
    fwd = config.build(storage, Metrics(), node="n")
    assert fwd.drain() == 2
    fwd.stop()
    assert TOKEN not in repr(SplunkForwardConfig.model_validate({**base, "token": TOKEN}))
