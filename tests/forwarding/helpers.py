"""Real receivers for the forwarding tests (UDP, TCP, TLS syslog; a Splunk HEC on
loopback), a strict RFC 5424 parser, a CEF parser, and certificates made on the spot."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.conftest import free_port

# -- RFC 5424, strictly ----------------------------------------------------------------------

_HEADER = re.compile(
    rb"<(?P<pri>0|[1-9][0-9]{0,2})>1 "
    rb"(?P<ts>-|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)) "
    rb"(?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<proc>[!-~]{1,128}) "
    rb"(?P<msgid>[!-~]{1,32}) ")
_SD_NAME = re.compile(rb'[!-~]{1,32}')


@dataclass
class Syslog:
    facility: int
    severity: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    sd: list[tuple[str, dict[str, str]]]
    message: str | None
    bom: bool


def _sd_name(data: bytes, i: int) -> tuple[str, int]:
    m = _SD_NAME.match(data, i)
    assert m, f"no SD-NAME at {i}: {data[i:i + 40]!r}"
    name = m.group().split(b"=")[0].split(b"]")[0].split(b'"')[0]
    assert name, f"empty SD-NAME at {i}"
    return name.decode("ascii"), i + len(name)


def parse_rfc5424(frame: bytes) -> Syslog:
    """A message per RFC 5424 §6, or an AssertionError saying where it breaks the grammar."""
    m = _HEADER.match(frame)
    assert m, f"not an RFC 5424 header: {frame[:120]!r}"
    pri = int(m["pri"])
    assert pri <= 191
    i = m.end()
    sd: list[tuple[str, dict[str, str]]] = []
    if frame[i:i + 1] == b"-":
        i += 1
    else:
        assert frame[i:i + 1] == b"[", f"no STRUCTURED-DATA at {i}"
        while frame[i:i + 1] == b"[":
            sd_id, i = _sd_name(frame, i + 1)
            params: dict[str, str] = {}
            while frame[i:i + 1] == b" ":
                name, i = _sd_name(frame, i + 1)
                assert frame[i:i + 2] == b'="', f"no =\" after {name} at {i}"
                i += 2
                value = bytearray()
                while True:
                    c = frame[i:i + 1]
                    assert c, "unterminated PARAM-VALUE"
                    if c == b"\\" and frame[i + 1:i + 2] in (b'"', b"\\", b"]"):
                        value += frame[i + 1:i + 2]
                        i += 2
                    elif c == b'"':
                        i += 1
                        break
                    else:
                        assert c != b"]", "unescaped ] in PARAM-VALUE"
                        value += c
                        i += 1
                params[name] = value.decode("utf-8")
            assert frame[i:i + 1] == b"]", f"SD-ELEMENT not closed at {i}"
            i += 1
            sd.append((sd_id, params))
    message: str | None = None
    bom = False
    if i < len(frame):
        assert frame[i:i + 1] == b" ", f"no SP before MSG at {i}"
        body = frame[i + 1:]
        bom = body.startswith(b"\xef\xbb\xbf")
        message = body[3:].decode("utf-8") if bom else body.decode("utf-8")
    return Syslog(pri // 8, pri % 8, m["ts"].decode(), m["host"].decode(), m["app"].decode(),
                  m["proc"].decode(), m["msgid"].decode(), sd, message, bom)


# -- CEF -------------------------------------------------------------------------------------


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """(the 6 header fields after ``CEF:0``, the extensions), unescaped."""
    assert line.startswith("CEF:0|")
    assert "\n" not in line and "\r" not in line
    fields: list[str] = []
    current = []
    i = 6
    while len(fields) < 6:
        c = line[i]
        if c == "\\":
            assert line[i + 1] in "\\|", f"bad header escape at {i}"
            current.append(line[i + 1])
            i += 2
        elif c == "|":
            fields.append("".join(current))
            current = []
            i += 1
        else:
            current.append(c)
            i += 1
    ext = line[i:]
    extensions: dict[str, str] = {}
    # key=value pairs; a key is [A-Za-z0-9]+ preceded by a space (or the start) and
    # followed by an unescaped '='.
    keys = list(re.finditer(r"(?:^| )([A-Za-z0-9]+)=(?<!\\=)", ext))
    for n, k in enumerate(keys):
        end = keys[n + 1].start() if n + 1 < len(keys) else len(ext)
        raw = ext[k.end():end]
        out = []
        j = 0
        while j < len(raw):
            if raw[j] == "\\":
                nxt = raw[j + 1]
                assert nxt in "\\=nr", f"bad extension escape {raw[j:j + 2]!r}"
                out.append({"n": "\n", "r": "\r"}.get(nxt, nxt))
                j += 2
            else:
                assert raw[j] != "=", f"unescaped = in the value of {k.group(1)}"
                out.append(raw[j])
                j += 1
        extensions[k.group(1)] = "".join(out)
    return fields, extensions


# -- receivers -------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class UdpReceiver:
    """Records every datagram sent to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"udp://127.0.0.1:{self.port}"
        self.frames: list[bytes] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.sock.recv(70_000):
                self.frames.append(data)

    def close(self) -> None:
        self.sock.close()


@dataclass
class StreamReceiver:
    """A TCP (or, with ``tls``, TLS) syslog receiver: octet-counted or newline frames."""

    framing: str = "octet"
    tls: ssl.SSLContext | None = None
    port: int = 0
    frames: list[bytes] = field(default_factory=list)
    peers: list[Any] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'tcp'}://127.0.0.1:{self.port}"

    def start(self) -> StreamReceiver:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
                self.peers.append(conn.getpeercert())
            self._conns.append(conn)
            reader = conn.makefile("rb")
            while True:
                if self.framing == "lf":
                    line = reader.readline()
                    if not line:
                        return
                    assert line.endswith(b"\n")
                    self.frames.append(line[:-1])
                    continue
                digits = b""
                while (c := reader.read(1)) != b" ":
                    if not c:
                        assert not digits, "a frame length without its frame"
                        return
                    assert c.isdigit(), f"bad octet count {digits + c!r}"
                    digits += c
                assert digits[:1] != b"0"
                frame = reader.read(int(digits))
                assert len(frame) == int(digits), "a frame shorter than its count"
                self.frames.append(frame)
        except (OSError, AssertionError) as exc:
            self.errors.append(exc)
        finally:
            conn.close()

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._conns.clear()


class Hec:
    """A Splunk HTTP Event Collector on loopback: checks the token, records the events of
    requests it answers 200; ``responses`` lists statuses to answer first."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.events: list[dict[str, Any]] = []
        self.requests = 0
        self.responses: list[int] = []
        self.accept_requests: int | None = None  # then 503 for ever
        hec = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hec.requests += 1
                status, answer = hec.answer(self.path, self.headers.get("Authorization"), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                if status in (429, 503):
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, auth: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        if path != "/services/collector/event":
            return 404, {"text": "The requested URL was not found on this server.", "code": 404}
        if auth != f"Splunk {self.token}":
            return 403, {"text": "Invalid token", "code": 4}
        if self.responses:
            status = self.responses.pop(0)
            return status, {"text": "Server is busy", "code": 9}
        if self.accept_requests is not None:
            if self.accept_requests == 0:
                return 503, {"text": "Server is busy", "code": 9}
            self.accept_requests -= 1
        decoder = json.JSONDecoder()
        text, i, batch = body.decode(), 0, []
        while i < len(text):
            obj, i = decoder.raw_decode(text, i)
            assert set(obj) <= {"time", "host", "source", "sourcetype", "index", "event"}
            batch.append(obj)
        self.events += batch
        return 200, {"text": "Success", "code": 0}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def receiving(receiver: StreamReceiver) -> Iterator[StreamReceiver]:
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
