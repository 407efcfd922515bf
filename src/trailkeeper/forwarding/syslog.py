"""Syslog (RFC 5424) messages and the UDP, TCP and TLS transports that carry them.

`format_rfc5424` is pure: it writes one message exactly by the RFC's grammar
(``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [BOM MSG]``), header fields cut to
printable US-ASCII without spaces and to their maximum lengths, SD-PARAM values escaped.

`SyslogSender` sends frames to ``udp://``, ``tcp://`` or ``tls://host:port``: one message
per datagram over UDP; over TCP and TLS octet-counting framing (RFC 6587 §3.4.1, RFC 5425
§4.3: ``LEN SP MSG``) or, with ``framing="lf"``, a newline after each message (any newline
inside a message is then written as the two characters ``\\n``). It connects lazily,
reconnects after any failure, and raises `SendError` (retryable) when a send fails.

TCP syslog has no acknowledgment: the sender checks the connection is still open before
each send (a receiver that closed it is noticed and the frames go to a new connection), but
frames written just before a receiver crashes can be lost. RELP or Splunk HEC do better.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from trailkeeper.forwarding.errors import SendError
from trailkeeper.model.timestamps import MAX_MS, MIN_MS, format_iso

log = logging.getLogger("trailkeeper.forwarding.syslog")

Framing = Literal["octet", "lf"]

FACILITIES: dict[str, int] = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13,
    "console": 14, "solaris-cron": 15, "local0": 16, "local1": 17, "local2": 18,
    "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}
SEVERITIES: dict[str, int] = {
    "emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6,
    "debug": 7,
}
DEFAULT_PORTS = {"udp": 514, "tcp": 514, "tls": 6514}
DEFAULT_MAX_DATAGRAM = 8192
# The SD-ID of our own structured data; 32473 is the private enterprise number that RFC 5612
# reserves for documentation and examples (we have none of our own).
SD_ID = "trailkeeper@32473"

NILVALUE = "-"
BOM = b"\xef\xbb\xbf"
_HOSTNAME_MAX, _APP_NAME_MAX, _PROCID_MAX, _MSGID_MAX = 255, 48, 128, 32
_SD_NAME_MAX = 32
# PRINTUSASCII (%d33-126) for header fields.
_HEADER_TABLE = {c: "?" for c in range(128) if not 33 <= c <= 126}
_SD_NAME_FORBIDDEN = frozenset('= ]"')
_SD_VALUE_TABLE = str.maketrans({'"': '\\"', "\\": "\\\\", "]": "\\]"})


def facility_number(value: str | int) -> int:
    """A facility by name (``auth``, ``local0``, ...) or number (0-23)."""
    number = FACILITIES.get(value.lower()) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 23:
        raise ValueError(f"unknown syslog facility {value!r}: a name such as 'auth' or "
                         f"'local0', or a number from 0 to 23")
    return number


def _header_field(value: str | None, limit: int) -> str:
    if not value:
        return NILVALUE
    text = value.translate(_HEADER_TABLE)
    if not text.isascii():
        text = "".join(c if c.isascii() else "?" for c in text)
    return text[:limit]


def _sd_name(name: str) -> str:
    if not 1 <= len(name) <= _SD_NAME_MAX or not name.isascii() \
            or any(not 33 <= ord(c) <= 126 or c in _SD_NAME_FORBIDDEN for c in name):
        raise ValueError(f"{name!r} is not an RFC 5424 SD-NAME")
    return name


def _timestamp(ms: int) -> str:
    ms = min(max(ms, MIN_MS), MAX_MS)
    text = format_iso(ms)
    return text if ms % 1000 else f"{text[:-1]}.000Z"


def _structured_data(elements: Sequence[tuple[str, Mapping[str, str]]]) -> str:
    if not elements:
        return NILVALUE
    parts = []
    for sd_id, params in elements:
        parts.append("[" + _sd_name(sd_id))
        for name, value in params.items():
            parts.append(f' {_sd_name(name)}="{value.translate(_SD_VALUE_TABLE)}"')
        parts.append("]")
    return "".join(parts)


def format_rfc5424(*, pri_facility: int, severity: int, timestamp_ms: int, hostname: str,
                   app_name: str, procid: str | None, msgid: str | None,
                   structured_data: Sequence[tuple[str, Mapping[str, str]]] = (),
                   message: str, bom: bool = True, max_length: int | None = None) -> bytes:
    """One RFC 5424 message, UTF-8, without framing.

    ``bom``: start MSG with the UTF-8 byte order mark (MSG-UTF8); without it the message is
    MSG-ANY (what CEF receivers expect). ``max_length``: when the message would be longer,
    MSG is cut (at a character boundary) so that it fits, and the element
    ``[trailkeeper@32473 truncated="<MSG bytes before cutting>"]`` is added to SD; raises
    `ValueError` when not even the header fits.
    """
    if not 0 <= pri_facility <= 23 or not 0 <= severity <= 7:
        raise ValueError("facility must be 0-23 and severity 0-7")
    head = " ".join((f"<{pri_facility * 8 + severity}>1", _timestamp(timestamp_ms),
                     _header_field(hostname, _HOSTNAME_MAX),
                     _header_field(app_name, _APP_NAME_MAX),
                     _header_field(procid, _PROCID_MAX), _header_field(msgid, _MSGID_MAX),
                     ""))
    body = message.encode("utf-8", "replace")
    if not body:
        return (head + _structured_data(structured_data)).encode()
    frame = (head + _structured_data(structured_data) + " ").encode() \
        + (BOM if bom else b"") + body
    if max_length is None or len(frame) <= max_length:
        return frame
    marked = [*structured_data, (SD_ID, {"truncated": str(len(body))})]
    prefix = (head + _structured_data(marked) + " ").encode() + (BOM if bom else b"")
    room = max_length - len(prefix)
    if room < 0:
        raise ValueError(f"a syslog message cannot fit in {max_length} bytes")
    cut = body[:room]
    return prefix + cut.decode("utf-8", "ignore").encode()  # no half character at the end


def default_hostname() -> str:
    """This node's name: ``TRAILKEEPER_NODE``, or the host name."""
    return os.environ.get("TRAILKEEPER_NODE") or socket.gethostname()


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``udp|tcp|tls://host[:port]``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.username:
        raise ValueError(f"{url!r} is not a syslog address: use udp://, tcp:// or "
                         "tls://host[:port]")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ValueError(f"{url!r}: {exc}") from None
    return scheme, parts.hostname, port


def tls_context(*, ca_file: Path | None = None, verify: bool = True,
                cert_file: Path | None = None, key_file: Path | None = None,
                key_password: str | None = None) -> ssl.SSLContext:
    """A client context: the server's certificate checked against ``ca_file`` (else the
    system's CAs) and its name, unless ``verify`` is off; a client certificate for mutual
    TLS when ``cert_file`` is given."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None,
                                key_password)
    return context


class SyslogSender:
    """Sends syslog frames to one receiver (see the module's docstring)."""

    def __init__(self, url: str, *, framing: Framing = "octet", timeout_s: float = 10.0,
                 ca_file: Path | None = None, verify: bool = True,
                 cert_file: Path | None = None, key_file: Path | None = None,
                 key_password: str | None = None, server_name: str | None = None,
                 max_datagram: int = DEFAULT_MAX_DATAGRAM) -> None:
        self.scheme, self.host, self.port = parse_url(url)
        self.url = url
        self.framing = framing
        self.max_datagram = max_datagram
        self._timeout_s = timeout_s
        self._server_name = server_name or self.host
        self._context = tls_context(
            ca_file=ca_file, verify=verify, cert_file=cert_file, key_file=key_file,
            key_password=key_password) if self.scheme == "tls" else None
        self._sock: socket.socket | None = None

    @property
    def datagrams(self) -> bool:
        return self.scheme == "udp"

    def send(self, frames: Sequence[bytes]) -> None:
        """Send the messages, in order; `SendError` (retryable) when the receiver cannot
        be reached or the connection fails (the next send connects anew)."""
        if not frames:
            return
        try:
            sock = self._connected()
            if self.datagrams:
                for frame in frames:
                    sock.send(frame[: self.max_datagram])
            else:
                sock.sendall(self._stream(frames))
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self.close()
            raise SendError(f"syslog {self.url}: {exc}") from exc

    def _stream(self, frames: Sequence[bytes]) -> bytes:
        if self.framing == "lf":
            return b"".join(f.replace(b"\n", b"\\n") + b"\n" for f in frames)
        return b"".join(b"%d %s" % (len(f), f) for f in frames)

    def _connected(self) -> socket.socket:
        if self._sock is not None and not self.datagrams and self._peer_closed(self._sock):
            log.info("syslog %s closed the connection; connecting again", self.url)
            self.close()
        if self._sock is None:
            self._sock = self._connect()
        return self._sock

    def _connect(self) -> socket.socket:
        if self.datagrams:
            info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(info[0], socket.SOCK_DGRAM)
            sock.connect(info[4])
            return sock
        sock = socket.create_connection((self.host, self.port), timeout=self._timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._context is None:
            return sock
        try:
            return self._context.wrap_socket(sock, server_hostname=self._server_name)
        except BaseException:
            sock.close()
            raise

    def _peer_closed(self, sock: socket.socket) -> bool:
        """Whether the receiver closed (or broke) the connection: syslog receivers send
        nothing, so a readable socket means end of stream (or a TLS record to discard)."""
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            sock.setblocking(False)
            try:
                return sock.recv(4096) == b""
            finally:
                sock.settimeout(self._timeout_s)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return False
        except OSError:
            return True

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
