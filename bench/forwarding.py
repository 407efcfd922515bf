"""SIEM forwarding: how fast the committed log drains to syslog over TCP and to Splunk HEC.

A copy of the cached read store (``--events``, 200,000) is forwarded by `Forwarder.drain()`
in this process, once over TCP syslog (octet counting, JSON payload), once as CEF, and once
to a local HTTP Event Collector (``http.server`` on loopback, counting the event objects it
receives); events/s, the process's CPU, and whether the receiver got every event.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from benchlib import emit, fresh_store, log, machine, parser
from read_store import read_store

from trailkeeper.forwarding.config import SplunkForwardConfig, SyslogForwardConfig
from trailkeeper.metrics import Metrics
from trailkeeper.storage import open_storage

TOKEN = "bench-token"


class TcpCounter:
    """A syslog receiver that counts octet-counted frames and their bytes."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frames = self.bytes = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._count, args=(conn,), daemon=True).start()

    def _count(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while chunk := conn.recv(1 << 20):
                buffer += chunk
                self.bytes += len(chunk)
                while True:
                    space = buffer.find(b" ", 0, 12)
                    if space < 0:
                        break
                    end = space + 1 + int(buffer[:space])
                    if end > len(buffer):
                        break
                    buffer = buffer[end:]
                    self.frames += 1

    def close(self) -> None:
        self.listener.close()


@contextmanager
def hec_counter() -> Iterator[dict[str, int]]:
    counts = {"events": 0, "requests": 0, "bytes": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ok = self.headers.get("Authorization") == f"Splunk {TOKEN}"
            if ok:
                counts["events"] += body.count(b'{"time":')
                counts["requests"] += 1
                counts["bytes"] += len(body)
            data = b'{"text":"Success","code":0}' if ok else b'{"text":"Invalid token"}'
            self.send_response(200 if ok else 403)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    counts["port"] = server.server_address[1]
    try:
        yield counts
    finally:
        server.shutdown()
        server.server_close()


def timed_drain(db_url: str, config: SyslogForwardConfig | SplunkForwardConfig,
                ) -> dict[str, Any]:
    storage = open_storage(db_url)
    try:
        forwarder = config.build(storage, Metrics(), node="bench")
        cpu = time.process_time()
        began = time.perf_counter()
        sent = forwarder.drain()
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu
        forwarder.stop()
    finally:
        storage.close()
    return {"events_sent": sent, "elapsed_s": round(elapsed, 2),
            "throughput_events_per_s": round(sent / elapsed), "cpu_s": round(cpu, 2)}


def syslog_run(args: Any, location: str, fmt: str) -> dict[str, Any]:
    with fresh_store(args.backend, args.pg_url, f"forward-{fmt}", keep=args.keep,
                     copy_of=location) as db_url:
        receiver = TcpCounter()
        try:
            config = SyslogForwardConfig(type="syslog", name="bench",
                                         url=f"tcp://127.0.0.1:{receiver.port}",
                                         format=fmt, batch_size=args.batch)
            result = timed_drain(db_url, config)
            deadline = time.monotonic() + 30
            while receiver.frames < result["events_sent"] and time.monotonic() < deadline:
                time.sleep(0.05)
            result["frames_received"] = receiver.frames
            result["mb_sent"] = round(receiver.bytes / 1e6, 1)
        finally:
            receiver.close()
    return result


def splunk_run(args: Any, location: str) -> dict[str, Any]:
    with fresh_store(args.backend, args.pg_url, "forward-hec", keep=args.keep,
                     copy_of=location) as db_url, hec_counter() as counts:
        config = SplunkForwardConfig(type="splunk", name="bench",
                                     url=f"http://127.0.0.1:{counts['port']}", token=TOKEN,
                                     batch_size=args.batch)
        result = timed_drain(db_url, config)
        result.update(events_received=counts["events"], requests=counts["requests"],
                      mb_sent=round(counts["bytes"] / 1e6, 1))
    return result


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=200_000, help="events in the store")
    p.add_argument("--batch", type=int, default=500, help="events per forwarded batch")
    args = p.parse_args()
    facts, _ = read_store(args.backend, args.events, args.pg_url, rebuild=False)
    result: dict[str, Any] = {"benchmark": "forwarding", "backend": args.backend,
                              "events": facts.events, "batch_events": args.batch}
    for fmt in ("json", "cef"):
        log(f"syslog over TCP ({fmt}): forwarding {facts.events:,} events")
        result[f"syslog_tcp_{fmt}"] = run = syslog_run(args, facts.location, fmt)
        run["all_received"] = run["frames_received"] == run["events_sent"] == facts.events
        log(f"  {run['throughput_events_per_s']:,} events/s")
    log(f"Splunk HEC: forwarding {facts.events:,} events")
    result["splunk_hec"] = run = splunk_run(args, facts.location)
    run["all_received"] = run["events_received"] == run["events_sent"] == facts.events
    log(f"  {run['throughput_events_per_s']:,} events/s")
    result["machine"] = machine(args.backend, args.pg_url)
    emit(result)


if __name__ == "__main__":
    main()
