"""Forwarding the committed log over syslog to real UDP, TCP and TLS listeners."""

from __future__ import annotations

import ssl
from dataclasses import astuple
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.consumers.helpers import add_events, expected_lines
from tests.forwarding.helpers import (
    StreamReceiver,
    UdpReceiver,
    parse_cef,
    parse_rfc5424,
    receiving,
    wait_for,
)
from tests.tls import self_signed
from trailkeeper.forwarding.config import SyslogForwardConfig
from trailkeeper.forwarding.errors import SendError
from trailkeeper.forwarding.forwarder import Forwarder, ForwarderBusyError, SyslogSink
from trailkeeper.forwarding.syslog import SyslogSender
from trailkeeper.metrics import Metrics
from trailkeeper.storage.base import Storage


def forwarder(storage: Storage, url: str, metrics: Metrics | None = None, *,
              name: str = "siem", batch_size: int = 500, **config: Any) -> Forwarder:
    settings = SyslogForwardConfig(type="syslog", name=name, url=url, batch_size=batch_size,
                                   max_backoff_s=0.2, **config)
    built = settings.build(storage, metrics or Metrics(), node="node-1")
    built._poll_interval_s = 0.05  # what the tests wait on
    return built


def payloads(frames: list[bytes]) -> list[bytes]:
    """Each frame parsed strictly; its MSG (the file-shape JSON) with a line break."""
    out = []
    for frame in frames:
        message = parse_rfc5424(frame)
        assert message.message is not None and message.bom
        out.append(message.message.encode() + b"\n")
    return out


def ids(frames: list[bytes]) -> list[int]:
    return [orjson.loads(p)["id"] for p in payloads(frames)]


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_every_committed_event_goes_over_tcp_in_order_as_its_file_line(
        storage: Storage) -> None:
    """Octet-counted RFC 5424 frames whose MSG is the event's Atlassian file line."""
    add_events(storage, 1234)
    metrics = Metrics()
    with receiving(StreamReceiver()) as receiver:
        fwd = forwarder(storage, receiver.url, metrics)
        assert fwd.drain() == 1234
        fwd.stop()
        wait_for(lambda: len(receiver.frames) == 1234)
    assert payloads(receiver.frames) == expected_lines(storage)
    first = parse_rfc5424(receiver.frames[0])
    assert (first.facility, first.severity, first.hostname, first.app_name, first.msgid) == \
        (4, 5, "node-1", "trailkeeper", "audit")
    assert receiver.errors == []
    assert orjson.loads(storage.get_position("forward:siem") or "")["id"] == storage.max_id()
    assert sample(metrics, "trailkeeper_forwarded_events_total", forwarder="siem") == 1234
    assert sample(metrics, "trailkeeper_consumer_lag_events", consumer="forward:siem") == 0


def test_the_background_forwarder_sends_what_is_committed_after_a_notify(
        storage: Storage) -> None:
    with receiving(StreamReceiver()) as receiver:
        fwd = forwarder(storage, receiver.url)
        fwd.start()
        try:
            add_events(storage, 40)
            fwd.notify()
            wait_for(lambda: len(receiver.frames) == 40)
            add_events(storage, 60, first=40)
            fwd.notify()
            wait_for(lambda: len(receiver.frames) == 100)
        finally:
            fwd.stop()
    assert ids(receiver.frames) == list(range(1, 101))


def test_a_receiver_that_is_down_gets_everything_once_it_is_back(storage: Storage) -> None:
    """Failed sends are retried with back-off, the position stays, nothing is lost."""
    add_events(storage, 30)
    metrics = Metrics()
    receiver = StreamReceiver().start()
    fwd = forwarder(storage, receiver.url, metrics, batch_size=50)
    fwd.start()
    try:
        wait_for(lambda: len(receiver.frames) == 30)
        receiver.stop()
        add_events(storage, 120, first=30)
        fwd.notify()
        wait_for(lambda: fwd.failures >= 3)
        assert orjson.loads(storage.get_position("forward:siem") or "")["id"] == 30
        receiver.start()  # the same port
        wait_for(lambda: len(receiver.frames) == 150)
    finally:
        fwd.stop()
        receiver.stop()
    assert ids(receiver.frames) == list(range(1, 151))
    assert (sample(metrics, "trailkeeper_forward_failures_total", forwarder="siem") or 0) >= 3


def test_a_graceful_restart_in_the_middle_of_a_stream_loses_and_repeats_nothing(
        storage: Storage) -> None:
    """Stopped between batches, a new forwarder on the same store goes on where it was."""
    add_events(storage, 2000)
    with receiving(StreamReceiver()) as receiver:
        first = forwarder(storage, receiver.url, batch_size=50)
        first.start()
        wait_for(lambda: len(receiver.frames) >= 200)
        first.stop(timeout=0)
        stopped_at = first.last_id
        assert 200 <= stopped_at < 2000
        wait_for(lambda: len(receiver.frames) == stopped_at)
        second = forwarder(storage, receiver.url, batch_size=50)
        assert second.drain() == 2000 - stopped_at
        second.stop()
        wait_for(lambda: len(receiver.frames) == 2000)
    assert ids(receiver.frames) == list(range(1, 2001))


def test_start_at_end_skips_what_was_committed_before_the_first_start(
        storage: Storage) -> None:
    add_events(storage, 25)
    with receiving(StreamReceiver()) as receiver:
        fwd = forwarder(storage, receiver.url, start_at="end")
        assert fwd.drain() == 0
        add_events(storage, 5, first=25)
        assert fwd.drain() == 5
        fwd.stop()
        wait_for(lambda: len(receiver.frames) == 5)
    assert ids(receiver.frames) == [26, 27, 28, 29, 30]


def test_one_process_forwards_while_another_holds_the_lease(storage: Storage) -> None:
    add_events(storage, 3)
    with receiving(StreamReceiver()) as receiver:
        holder = forwarder(storage, receiver.url)
        holder.drain()
        other = forwarder(storage, receiver.url)
        other._lease._clock = lambda: 1  # type: ignore[union-attr]
        other._lease.owner = "elsewhere:1"  # type: ignore[union-attr]
        with pytest.raises(ForwarderBusyError):
            other.drain()
        holder.stop()


def test_newline_framing_over_tcp(storage: Storage) -> None:
    add_events(storage, 20)
    with receiving(StreamReceiver(framing="lf")) as receiver:
        fwd = forwarder(storage, receiver.url, framing="lf")
        fwd.drain()
        fwd.stop()
        wait_for(lambda: len(receiver.frames) == 20)
    assert payloads(receiver.frames) == expected_lines(storage)


def test_cef_payloads_over_tcp(storage: Storage) -> None:
    add_events(storage, 10)
    with receiving(StreamReceiver()) as receiver:
        fwd = forwarder(storage, receiver.url, format="cef", facility="local3")
        fwd.drain()
        fwd.stop()
        wait_for(lambda: len(receiver.frames) == 10)
    for n, frame in enumerate(receiver.frames, start=1):
        message = parse_rfc5424(frame)
        assert message.facility == 19 and not message.bom and message.message is not None
        _, ext = parse_cef(message.message)
        assert ext["externalId"] == str(n)


def test_udp_sends_one_datagram_per_event_and_truncates_the_oversized(
        storage: Storage, tmp_path: Path) -> None:
    """Events longer than max_datagram arrive cut, marked in SD, and counted."""
    add_events(storage, 20)
    receiver = UdpReceiver()
    metrics = Metrics()
    try:
        fwd = forwarder(storage, receiver.url, metrics)
        fwd.drain()
        wait_for(lambda: len(receiver.frames) == 20)
        assert payloads(receiver.frames) == expected_lines(storage)
        small = forwarder(storage, receiver.url, metrics, name="small", max_datagram=600)
        small.drain()
        wait_for(lambda: len(receiver.frames) == 40)
        fwd.stop()
        small.stop()
    finally:
        receiver.close()
    for frame, line in zip(receiver.frames[20:], expected_lines(storage), strict=True):
        message = parse_rfc5424(frame)
        assert len(frame) <= 600
        assert message.sd == [("trailkeeper@32473", {"truncated": str(len(line) - 1)})]
        assert message.message is not None and line.decode().startswith(message.message)
    assert sample(metrics, "trailkeeper_forward_truncated_total", forwarder="small") == 20


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    server_cert, server_key = astuple(self_signed(tmp_path, "server"))
    client_cert, client_key = astuple(self_signed(tmp_path, "client"))
    return {"server_cert": server_cert, "server_key": server_key,
            "client_cert": client_cert, "client_key": client_key}


def tls_server(certs: dict[str, Path], *, client_ca: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs["server_cert"], certs["server_key"])
    if client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(certs["client_cert"])
    return context


def test_tls_delivers_to_a_receiver_trusted_through_ca_file(
        storage: Storage, certs: dict[str, Path]) -> None:
    add_events(storage, 50)
    with receiving(StreamReceiver(tls=tls_server(certs))) as receiver:
        fwd = forwarder(storage, receiver.url, ca_file=certs["server_cert"])
        fwd.drain()
        fwd.stop()
        wait_for(lambda: len(receiver.frames) == 50)
    assert payloads(receiver.frames) == expected_lines(storage)


def test_tls_refuses_a_receiver_whose_certificate_is_not_trusted(
        certs: dict[str, Path], tmp_path: Path) -> None:
    other_ca = self_signed(tmp_path, "other").cert_file
    with receiving(StreamReceiver(tls=tls_server(certs))) as receiver:
        for ca in (None, other_ca):
            sender = SyslogSender(receiver.url, ca_file=ca)
            with pytest.raises(SendError, match="CERTIFICATE_VERIFY_FAILED"):
                sender.send([b"<13>1 - - - - - -"])
        wrong_name = SyslogSender(receiver.url, ca_file=certs["server_cert"],
                                  server_name="siem.example.com")
        with pytest.raises(SendError):
            wrong_name.send([b"<13>1 - - - - - -"])
    assert receiver.frames == []


def test_mutual_tls_presents_the_client_certificate(
        storage: Storage, certs: dict[str, Path]) -> None:
    add_events(storage, 5)
    with receiving(StreamReceiver(tls=tls_server(certs, client_ca=True))) as receiver:
        anonymous = SyslogSender(receiver.url, ca_file=certs["server_cert"])

        def refused() -> bool:
            # With TLS 1.3 the server's refusal arrives after the handshake: a later send
            # notices it.
            try:
                anonymous.send([b"<13>1 - - - - - -"])
            except SendError:
                return True
            return False

        wait_for(refused)
        anonymous.close()
        fwd = forwarder(storage, receiver.url, ca_file=certs["server_cert"],
                        cert_file=certs["client_cert"], key_file=certs["client_key"])
        fwd.drain()
        fwd.stop()
        wait_for(lambda: len(receiver.frames) == 5)
    assert any(peer and dict(x[0] for x in peer["subject"])["commonName"] == "client"
               for peer in receiver.peers)


def test_the_sink_renders_without_a_network(storage: Storage) -> None:
    """SyslogSink.frame is the per-event rendering, usable on its own."""
    add_events(storage, 1)
    sink = SyslogSink(SyslogSender("udp://127.0.0.1:9"), facility=16, hostname="h",
                      app_name="a")
    message = parse_rfc5424(sink.frame(storage.events_after(0, 1)[0]) or b"")
    assert (message.facility, message.hostname, message.app_name) == (16, "h", "a")
