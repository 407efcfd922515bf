"""Real receivers for the action tests: an SMTP server (aiosmtpd), a webhook receiver that
checks signatures (http.server), and a self-signed certificate to serve TLS with."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import orjson
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.conftest import free_port
from tests.tls import Certificate
from trailkeeper.alerts.actions.webhook import verify_signature
from trailkeeper.alerts.model import AlertRecord

SMTP_USER = "trailkeeper"
SMTP_PASSWORD = "s3cret-Sm7p-pässword"
WEBHOOK_SECRET = "whsec-test-0123456789"


def alert_record(alert_id: int = 7, *, rule_id: str = "trailkeeper-security-hook-skipped",
                 rule_title: str = "Security hook skipped", level: str | None = "high",
                 event_ids: tuple[int, ...] = (1, 2), group: dict[str, str] | None = None,
                 tags: tuple[str, ...] = ("trailkeeper.builtin",),
                 origin: str = "live") -> AlertRecord:
    return AlertRecord(
        id=alert_id, rule_id=rule_id, rule_title=rule_title, level=level, tags=tags,
        timestamp_ms=1_700_000_000_000, last_ms=1_700_000_000_000,
        created_ms=1_700_000_001_000, event_ids=event_ids, group=group or {}, count=1,
        status="open", origin=origin)  # type: ignore[arg-type]


# --- TLS ---------------------------------------------------------------------------------

# --- SMTP --------------------------------------------------------------------------------

class SmtpRecorder:
    """An aiosmtpd handler keeping what it received; refuses recipients on request."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.authenticated: list[str] = []
        self.refuse: dict[str, str] = {}  # recipient -> reply, e.g. "550 5.1.1 unknown"
        self.received = threading.Event()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        self.received.set()
        return "250 Message accepted"

    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(cast(bytes, e.content), policy=policy.default)
                for e in self.envelopes]

    def authenticator(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and auth_data.login.decode() == SMTP_USER \
                and auth_data.password.decode() == SMTP_PASSWORD:
            self.authenticated.append(SMTP_USER)
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


@contextmanager
def smtp_server(*, port: int | None = None, tls: Certificate | None = None,
                implicit: bool = False, auth: bool = False,
                recorder: SmtpRecorder | None = None) -> Iterator[tuple[SmtpRecorder, int]]:
    """A real SMTP server on loopback: plain; with STARTTLS required (``tls``); or TLS
    from the first byte (``implicit``); with ``auth``, AUTH required (over TLS only)."""
    recorder = recorder or SmtpRecorder()
    port = port or free_port()
    kwargs: dict[str, Any] = {}
    if tls is not None and not implicit:
        kwargs.update(tls_context=tls.server_context(), require_starttls=True)
    if tls is not None and implicit:
        kwargs.update(ssl_context=tls.server_context())
    if auth:
        kwargs.update(authenticator=recorder.authenticator, auth_required=True,
                      auth_require_tls=True)
    controller = Controller(recorder, hostname="127.0.0.1", port=port,
                            server_hostname="localhost", **kwargs)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


# --- webhooks ----------------------------------------------------------------------------

@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    valid: bool
    status: int

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class WebhookReceiver:
    """Records every request; answers with the scripted replies first (status, headers),
    then 204 to a valid signature and 401 to anything else."""

    secret: str = WEBHOOK_SECRET
    script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    requests: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Hold the request numbered hold_at (1-based) until `release` is set; `held` tells.
    hold_at: int | None = None
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def delivered(self) -> list[Delivery]:
        """The requests answered 2xx with a valid signature."""
        with self.lock:
            return [d for d in self.requests if d.valid and 200 <= d.status < 300]

    def reply(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        with self.lock:
            number = len(self.requests) + 1
        if number == self.hold_at:
            self.held.set()
            self.release.wait(30)
        valid = verify_signature(self.secret, headers.get("x-trailkeeper-timestamp", ""),
                                 body, headers.get("x-trailkeeper-signature", ""))
        with self.lock:
            status, extra = self.script.popleft() if self.script else \
                ((204, {}) if valid else (401, {}))
            self.requests.append(Delivery(headers, body, valid, status))
        return status, extra


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra = receiver.reply(headers, body)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def webhook_server(receiver: WebhookReceiver | None = None, *, port: int | None = None,
                   tls: Certificate | None = None) -> Iterator[tuple[WebhookReceiver, str]]:
    """A real HTTP(S) server on loopback; yields the receiver and its URL."""
    receiver = receiver or WebhookReceiver()
    httpd = ThreadingHTTPServer(("127.0.0.1", port or free_port()), _handler(receiver))
    httpd.daemon_threads = True
    scheme = "http"
    if tls is not None:
        httpd.socket = tls.server_context().wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver, f"{scheme}://127.0.0.1:{httpd.server_address[1]}/hooks/alerts?k=v"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
