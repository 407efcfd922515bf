"""`trailkeeper.client.Client` over real HTTP on loopback.

Two kinds of server: the real one (both stores, through the `server` fixture), and `FakeIngest`,
a small http.server speaking our ingest protocol that can be told to fail in the ways a real
deployment fails (503/429 with Retry-After, 5xx, a connection dropped after the batch was
stored, 400 naming a bad event, 413 for a large batch).
"""

from __future__ import annotations

import collections
import dataclasses
import email.utils
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import ADMIN_PASSWORD, LiveServer, free_port
from tests.factories import event
from trailkeeper.client import Client, EventError
from trailkeeper.model.event import AuditAttribute, ChangedValue
from trailkeeper.query.ast import MatchAll

ADMIN = ("admin", ADMIN_PASSWORD)

# A client that never finishes is the failure to catch; no test here needs more than seconds.
pytestmark = pytest.mark.timeout(60)


# -- helpers --------------------------------------------------------------------------------------


def stored_uids(server: LiveServer) -> collections.Counter[str]:
    """How many rows the real store holds for each uid."""
    return collections.Counter(orjson.loads(row.doc)["uid"]
                               for row in server.service.storage.stream(MatchAll()))


class CountingTransport(httpx.HTTPTransport):
    """A real HTTP transport that notes how many NDJSON lines each request carried."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_sizes: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.batch_sizes.append(request.read().count(b"\n"))
        return super().handle_request(request)


@dataclass
class Fault:
    """One scripted answer: a status with headers, or (status 0) store and then hang up."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    arrived: float
    path: str
    authorization: str | None
    uids: list[str]
    answered: float = 0.0
    status: int = 0  # 0: the connection was dropped


class FakeIngest:
    """Our ingest protocol (POST {prefix}/api/v1/events, NDJSON, idempotent by uid) on loopback.

    Like the real server a batch is atomic, a repeated uid with the same bytes is acknowledged
    again, and one with other bytes is a 409. Events whose action is ``reject`` are invalid.
    """

    def __init__(self, *, max_events: int = 10_000, prefix: str = "") -> None:
        self.max_events = max_events
        self.path = prefix + "/api/v1/events"
        self.stored: dict[str, bytes] = {}
        self.requests: list[Seen] = []
        self.script: collections.deque[Fault] = collections.deque()
        self.closed = threading.Event()  # while set, answer 503 with a short Retry-After
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                fake.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{prefix}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeIngest:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("content-length", 0)))
        lines = [line for line in body.split(b"\n") if line.strip()]
        items = [orjson.loads(line) for line in lines]
        seen = Seen(time.monotonic(), h.path, h.headers.get("authorization"),
                    [item["uid"] for item in items])
        with self.lock:
            self.requests.append(seen)
            fault = self.script.popleft() if self.script else None
            if h.path != self.path:
                return self.answer(h, seen, 404, {"message": "Not found", "errors": []})
            if self.closed.is_set():
                return self.answer(h, seen, 503, {"message": "closed", "errors": []},
                                   {"Retry-After": "0.2"})
            if fault is not None and fault.status:
                return self.answer(h, seen, fault.status, {"message": "scripted", "errors": []},
                                   fault.headers)
            if len(items) > self.max_events:
                return self.answer(h, seen, 413, {"message": "Batch too large", "errors": []})
            bad = [{"index": i, "field": "type.action", "message": "is not allowed"}
                   for i, item in enumerate(items) if item["type"]["action"] == "reject"]
            if bad:
                return self.answer(h, seen, 400, {"message": "Invalid events", "errors": bad})
            for i, (item, line) in enumerate(zip(items, lines, strict=True)):
                if self.stored.get(item["uid"], line) != line:
                    problem = {"index": i, "field": "uid", "message": "uid reused"}
                    return self.answer(h, seen, 409, {"message": "Conflict",
                                                      "errors": [problem]})
            created = 0
            for item, line in zip(items, lines, strict=True):
                created += item["uid"] not in self.stored
                self.stored[item["uid"]] = line
            if fault is not None:  # status 0: stored, but the client never hears of it
                h.close_connection = True
                seen.answered = time.monotonic()
                return None
            ids = [list(self.stored).index(item["uid"]) + 1 for item in items]
            return self.answer(h, seen, 201 if created else 200, {"ids": ids})

    @staticmethod
    def answer(h: BaseHTTPRequestHandler, seen: Seen, status: int, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        seen.answered = time.monotonic()
        seen.status = status

    def delivered(self, uid: str) -> int:
        """How many requests carried this uid (retries included)."""
        return sum(r.uids.count(uid) for r in self.requests)


@pytest.fixture
def fake() -> Iterator[FakeIngest]:
    with FakeIngest() as server:
        yield server


# -- against the real server ----------------------------------------------------------------------


def test_close_delivers_every_event_in_batches_of_at_most_batch_size(
        server: LiveServer) -> None:
    """close() sends everything still buffered, in batches no larger than batch_size."""
    transport = CountingTransport()
    trail = Client(server.base_url, auth=ADMIN, batch_size=100, flush_interval=60,
                   transport=transport)
    uids = [trail.audit(event(minutes=i)) for i in range(1234)]
    assert trail.close(timeout=60)
    assert trail.errors == []
    assert stored_uids(server) == collections.Counter(uids)
    assert max(transport.batch_sizes) == 100
    assert sum(transport.batch_sizes) == 1234  # nothing was sent twice
    assert len(transport.batch_sizes) == 13


def test_audit_returns_a_fresh_uuid7_and_keeps_a_given_uid(server: LiveServer) -> None:
    """Events without a uid get a time-ordered UUID (version 7); an event's own uid is kept."""
    with Client(server.base_url, auth=ADMIN) as trail:
        assigned = trail.audit(event())
        kept = trail.audit(event(uid="order-4711"))
    assert uuid.UUID(assigned).version == 7
    assert kept == "order-4711"
    assert set(stored_uids(server)) == {assigned, "order-4711"}


def test_events_without_timestamp_are_stamped_at_audit_time(server: LiveServer) -> None:
    """The client fixes the timestamp when audit() is called, not when the batch is sent."""
    with Client(server.base_url, auth=ADMIN, flush_interval=0.5) as trail:
        before = datetime.now(UTC) - timedelta(milliseconds=1)
        uid = trail.audit(dataclasses.replace(event(), timestamp=None))
        after = datetime.now(UTC)
    [row] = server.service.storage.stream(MatchAll())
    assert orjson.loads(row.doc)["uid"] == uid
    assert before.timestamp() * 1000 <= row.timestamp_ms <= after.timestamp() * 1000


def test_flushed_events_are_searchable_through_the_api(server: LiveServer) -> None:
    """After flush() returns True the events can be read back over the REST API."""
    with Client(server.base_url, auth=ADMIN) as trail:
        uids = {trail.audit(event("Branch deleted", minutes=i)) for i in range(7)}
        assert trail.flush(timeout=30)
        with server.client() as http:
            found = http.get("/api/v1/events", params={"action": "Branch deleted"}).json()
    assert {e["uid"] for e in found["events"]} == uids


def test_a_partial_batch_is_sent_after_flush_interval(server: LiveServer) -> None:
    """Fewer events than batch_size still arrive, flush_interval after the first of them."""
    with Client(server.base_url, auth=ADMIN, batch_size=500, flush_interval=0.2) as trail:
        for i in range(3):
            trail.audit(event(minutes=i))
        deadline = time.monotonic() + 10
        while sum(stored_uids(server).values()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(stored_uids(server).values()) == 3  # without flush() or close()


def test_audit_from_many_threads_stores_each_event_once(server: LiveServer) -> None:
    """Concurrent audit() calls lose nothing and duplicate nothing."""
    uids: list[str] = []
    with Client(server.base_url, auth=ADMIN, batch_size=64, flush_interval=0.05) as trail:

        def produce() -> None:
            mine = [trail.audit(event(minutes=i)) for i in range(250)]
            uids.extend(mine)

        threads = [threading.Thread(target=produce) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(set(uids)) == 2000
    assert stored_uids(server) == collections.Counter(uids)


def test_auditing_the_same_uid_twice_stores_one_event(server: LiveServer) -> None:
    """Sending one event (same uid, same content) twice leaves one row."""
    twice = event(uid="deploy-42")
    with Client(server.base_url, auth=ADMIN, flush_interval=0.05) as trail:
        trail.audit(twice)
        assert trail.flush(timeout=30)
        trail.audit(twice)
    assert trail.errors == []
    assert stored_uids(server) == {"deploy-42": 1}


def test_uid_reused_for_other_content_is_reported_and_the_rest_of_the_batch_stored(
        server: LiveServer) -> None:
    """A 409 costs only the conflicting event; its batch-mates are resent and stored."""
    with Client(server.base_url, auth=ADMIN, flush_interval=60) as trail:
        trail.audit(event("Repository created", uid="clash"))
        assert trail.flush(timeout=30)
        before = trail.audit(event(minutes=1))
        trail.audit(event("Repository deleted", uid="clash"))
        after = trail.audit(event(minutes=2))
    assert [(e.uid, e.status) for e in trail.errors] == [("clash", 409)]
    assert stored_uids(server) == {"clash": 1, before: 1, after: 1}


def test_an_event_over_the_body_limit_is_reported_and_its_batch_mates_stored(
        server: LiveServer) -> None:
    """The real server's 413 makes the client halve the batch until the 9 MB event is alone."""
    huge = event(changed_values=tuple(ChangedValue(f"k{i}", "x" * 100_000) for i in range(90)))
    with Client(server.base_url, auth=ADMIN, flush_interval=60) as trail:
        small = [trail.audit(event(minutes=1)), trail.audit(event(minutes=2))]
        too_large = trail.audit(huge)
        small.append(trail.audit(event(minutes=3)))
    assert [(e.uid, e.status) for e in trail.errors] == [(too_large, 413)]
    assert stored_uids(server) == collections.Counter(small)


def test_refused_credentials_are_reported_for_every_event(server: LiveServer) -> None:
    """A 401 cannot be cured by retrying: each event of the batch is reported."""
    with Client(server.base_url, auth=("admin", "wrong")) as trail:
        uids = [trail.audit(event(minutes=i)) for i in range(3)]
    assert sorted((e.uid, e.status) for e in trail.errors) == sorted((u, 401) for u in uids)
    assert stored_uids(server) == {}


# -- against the fake server: faults --------------------------------------------------------------


def test_503_retry_after_seconds_is_honoured_before_resending(fake: FakeIngest) -> None:
    """After a 503 with Retry-After: 1 the batch is resent no sooner than a second later."""
    fake.script.append(Fault(503, {"Retry-After": "1"}))
    with Client(fake.url, flush_interval=0.01) as trail:
        uids = [trail.audit(event(minutes=i)) for i in range(5)]
    first, second = fake.requests[0], fake.requests[1]
    assert first.status == 503
    assert second.arrived - first.answered >= 0.9
    assert second.uids == uids
    assert set(fake.stored) == set(uids)
    assert trail.errors == []


def test_429_retry_after_http_date_is_honoured(fake: FakeIngest) -> None:
    """Retry-After may be an HTTP-date; the client waits until then (second resolution)."""
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    fake.script.append(Fault(429, {"Retry-After": when}))
    with Client(fake.url, flush_interval=0.01) as trail:
        uid = trail.audit(event())
    first, second = fake.requests[0], fake.requests[1]
    assert first.status == 429
    assert second.arrived - first.answered >= 1.5  # 3 s less the truncated fraction
    assert list(fake.stored) == [uid]


def test_server_errors_and_dropped_connections_are_retried_without_duplicates(
        fake: FakeIngest) -> None:
    """A 500, a 502 and a connection dropped after storing: each event is stored once."""
    fake.script.extend([Fault(500), Fault(), Fault(502), Fault()])
    with Client(fake.url, batch_size=10, flush_interval=0.01) as trail:
        uids = [trail.audit(event(minutes=i)) for i in range(40)]
    assert trail.errors == []
    assert sorted(fake.stored) == sorted(uids)
    resent = [u for u in uids if fake.delivered(u) > 1]
    assert resent  # the client did resend batches the server had already stored...
    assert any(r.status == 0 for r in fake.requests)
    # ...and every resend carried the very same bytes, or the fake would have answered 409.
    assert all(r.status != 409 for r in fake.requests)


def test_a_400_drops_only_the_named_event_and_stores_the_rest(
        fake: FakeIngest, caplog: pytest.LogCaptureFixture) -> None:
    """The event named by index is reported and logged without its contents; the rest stored."""
    reported: list[EventError] = []
    caplog.set_level(logging.ERROR, logger="trailkeeper.client")
    secret = AuditAttribute("token", "s3cr3t-value")
    with Client(fake.url, flush_interval=60, on_error=reported.append) as trail:
        good = [trail.audit(event(minutes=i)) for i in range(3)]
        bad = trail.audit(event("reject", extra_attributes=(secret,)))
        good += [trail.audit(event(minutes=i)) for i in range(3, 6)]
    assert [(e.uid, e.status) for e in trail.errors] == [(bad, 400)]
    assert reported == trail.errors
    assert "is not allowed" in trail.errors[0].message
    assert sorted(fake.stored) == sorted(good)
    assert bad in caplog.text
    assert "s3cr3t-value" not in caplog.text


def test_413_splits_the_batch_until_the_parts_fit(fake: FakeIngest) -> None:
    """A batch over the server's limit is halved and resent, and everything is stored."""
    fake.max_events = 40
    with Client(fake.url, batch_size=300, flush_interval=60) as trail:
        uids = [trail.audit(event(minutes=i)) for i in range(300)]
    assert trail.errors == []
    assert sorted(fake.stored) == sorted(uids)
    assert [r.status for r in fake.requests[:3]] == [413, 413, 413]
    assert all(len(r.uids) <= 40 for r in fake.requests if r.status == 201)


def test_audit_blocks_while_the_buffer_is_full_and_loses_nothing(fake: FakeIngest) -> None:
    """With the server refusing, audit() waits for room instead of dropping events."""
    fake.closed.set()
    trail = Client(fake.url, max_buffer=10, flush_interval=0.01)
    uids = [trail.audit(event(minutes=i)) for i in range(10)]
    returned = threading.Event()

    def one_more() -> None:
        uids.append(trail.audit(event(minutes=10)))
        returned.set()

    producer = threading.Thread(target=one_more)
    producer.start()
    assert not returned.wait(1.0)  # still blocked: the buffer is full
    fake.closed.clear()
    assert returned.wait(10)
    producer.join()
    assert trail.close(timeout=30)
    assert sorted(fake.stored) == sorted(uids)


def test_close_with_timeout_reports_what_could_not_be_delivered() -> None:
    """When nothing listens, close(timeout) gives up and reports every event with status 0."""
    trail = Client(f"http://127.0.0.1:{free_port()}", flush_interval=0.01, timeout=1)
    uids = [trail.audit(event(minutes=i)) for i in range(4)]
    started = time.monotonic()
    assert trail.close(timeout=0.5) is False
    assert time.monotonic() - started < 5
    assert sorted(e.uid for e in trail.errors) == sorted(uids)
    assert {e.status for e in trail.errors} == {0}
    with pytest.raises(RuntimeError):
        trail.audit(event())


def test_token_is_sent_as_bearer_and_context_path_is_kept() -> None:
    """A token becomes `Authorization: Bearer`, and a base URL's path prefixes the endpoint."""
    with FakeIngest(prefix="/bitbucket") as fake:
        with Client(fake.url + "/", token="tk_abc") as trail:
            trail.audit(event())
        with Client(fake.url, auth=("svc", "pw")) as trail:
            trail.audit(event())
    assert [r.path for r in fake.requests] == ["/bitbucket/api/v1/events"] * 2
    assert fake.requests[0].authorization == "Bearer tk_abc"
    assert (fake.requests[1].authorization or "").startswith("Basic ")
    assert len(fake.stored) == 2


def test_generated_uids_are_time_ordered_uuid7() -> None:
    """Time-ordered uids keep the store's uid index appending, as version 4 would not."""

    from trailkeeper.client import time_ordered_uid

    first = time_ordered_uid()
    time.sleep(0.002)
    later = [time_ordered_uid() for _ in range(100)]
    assert all(uuid.UUID(u).version == 7 for u in [first, *later])
    assert all(first < u for u in later)
    assert len(set(later)) == 100
