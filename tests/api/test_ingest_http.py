"""POST /api/v1/events: durable, idempotent, and precise about bad input."""

from __future__ import annotations

import json
import threading

import httpx

from tests.conftest import LiveServer
from trailkeeper.query.ast import MatchAll

EVENT = {"type": {"category": "Repositories", "action": "Repository created",
                  "area": "LOCAL_CONFIG_AND_ADMINISTRATION"},
         "timestamp": "2024-03-01T12:00:00.000Z",
         "author": {"id": "11", "name": "alice", "type": "NORMAL"},
         "affectedObjects": [{"type": "REPOSITORY", "id": "7", "name": "rep_1"}]}


def ndjson(*events: dict) -> bytes:  # type: ignore[type-arg]
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def stored(server: LiveServer) -> int:
    return server.service.storage.count(MatchAll())


def test_one_object_is_stored_and_its_id_returned(client: httpx.Client,
                                                  server: LiveServer) -> None:
    response = client.post("/api/v1/events", json=EVENT)
    assert response.status_code == 201
    [event_id] = response.json()["ids"]
    assert client.get(f"/api/v1/events/{event_id}").json()["type"]["action"] == \
        "Repository created"
    assert stored(server) == 1


def test_an_array_and_ndjson_are_accepted(client: httpx.Client, server: LiveServer) -> None:
    assert len(client.post("/api/v1/events", json=[EVENT, EVENT]).json()["ids"]) == 2
    response = client.post("/api/v1/events", content=ndjson(EVENT, EVENT, EVENT),
                           headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 201 and len(response.json()["ids"]) == 3
    assert stored(server) == 5


def test_the_file_shape_is_accepted_too(client: httpx.Client, server: LiveServer) -> None:
    line = {"auditType": {"action": "Project deleted", "area": "LOCAL_CONFIG_AND_ADMINISTRATION",
                          "category": "Projects", "level": "BASE"},
            "author": {"id": "2", "name": "admin", "type": "NORMAL"}, "changedValues": [],
            "affectedObjects": [], "extraAttributes": [],
            "timestamp": {"epochSecond": 1638036799, "nano": 960000000}, "version": "1.0"}
    response = client.post("/api/v1/events", content=ndjson(line),
                           headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 201
    event_id = response.json()["ids"][0]
    assert client.get(f"/api/v1/events/{event_id}").json()["timestamp"] == \
        "2021-11-27T18:13:19.960Z"


def test_author_defaults_to_the_authenticated_user(client: httpx.Client) -> None:
    body = {k: v for k, v in EVENT.items() if k != "author"}
    [event_id] = client.post("/api/v1/events", json=body).json()["ids"]
    assert client.get(f"/api/v1/events/{event_id}").json()["author"]["name"] == "admin"


def test_a_retry_with_the_same_uid_returns_the_same_id(client: httpx.Client,
                                                       server: LiveServer) -> None:
    body = {**EVENT, "uid": "order-42"}
    first = client.post("/api/v1/events", json=body)
    again = client.post("/api/v1/events", json=body)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json() == again.json()
    assert stored(server) == 1


def test_a_retry_without_timestamp_still_matches(client: httpx.Client, server: LiveServer) -> None:
    """The receive time is a default, not part of what the producer sent."""
    body = {k: v for k, v in EVENT.items() if k != "timestamp"} | {"uid": "no-time"}
    assert client.post("/api/v1/events", json=body).status_code == 201
    assert client.post("/api/v1/events", json=body).status_code == 200
    assert stored(server) == 1


def test_a_uid_reused_for_other_content_is_a_conflict(client: httpx.Client,
                                                      server: LiveServer) -> None:
    client.post("/api/v1/events", json={**EVENT, "uid": "x"})
    changed = {**EVENT, "uid": "x", "source": "10.9.9.9"}
    response = client.post("/api/v1/events", json=[EVENT, changed])
    assert response.status_code == 409
    assert response.json()["errors"][0]["index"] == 1
    assert response.json()["errors"][0]["field"] == "uid"
    assert stored(server) == 1  # the batch's other event was not stored either


def test_a_bad_batch_names_every_problem_and_stores_nothing(client: httpx.Client,
                                                            server: LiveServer) -> None:
    bad = [
        EVENT,
        {"type": {"category": "c"}},  # missing action
        {"type": {"category": "c", "action": "a", "area": "MARS"}},
        {"type": {"category": "c", "action": "a"}, "timestamp": "2024-01-01T10:00:00+01:00"},
        {"type": {"category": "c", "action": "a"}, "timestamp": "soon"},
        {"type": {"category": "c", "action": "line\nbreak"}},
        {"type": {"category": "c", "action": "a"}, "source": "nul\u0000"},
        {"type": {"category": "c", "action": "a", "level": "EXTREME"}},
    ]
    response = client.post("/api/v1/events", json=bad)
    assert response.status_code == 400
    problems = {(e["index"], e["field"]) for e in response.json()["errors"]}
    assert problems == {(1, "type.action"), (2, "type.area"), (3, "timestamp"),
                        (4, "timestamp"), (5, "type.action"), (6, "source"), (7, "type.level")}
    assert all(e["message"] for e in response.json()["errors"])
    assert stored(server) == 0


def test_malformed_json_is_a_400_naming_the_position(client: httpx.Client) -> None:
    response = client.post("/api/v1/events", content=b'{"type": {',
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    [problem] = response.json()["errors"]
    assert problem["message"].startswith("malformed JSON")
    assert "column" in problem["message"]
    array = client.post("/api/v1/events", content=b'[{"type": {}}, {"type": ',
                        headers={"content-type": "application/json"})
    assert array.status_code == 400
    assert array.json()["message"].startswith("Malformed JSON")
    assert "column" in array.json()["message"]


def test_malformed_ndjson_names_the_line(client: httpx.Client, server: LiveServer) -> None:
    body = ndjson(EVENT) + b"{not json}\n" + ndjson(EVENT)
    response = client.post("/api/v1/events", content=body,
                           headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 400
    [problem] = response.json()["errors"]
    assert problem["index"] == 1 and "malformed JSON" in problem["message"]
    assert stored(server) == 0


def test_empty_bodies_and_wrong_content_types_are_refused(client: httpx.Client) -> None:
    assert client.post("/api/v1/events", content=b"").status_code == 400
    assert client.post("/api/v1/events", content=b"[]",
                       headers={"content-type": "application/json"}).status_code == 400
    response = client.post("/api/v1/events", content=b"<xml/>",
                           headers={"content-type": "application/xml"})
    assert response.status_code == 400 and "content type" in response.json()["message"]


def test_a_10_mb_body_is_413(client: httpx.Client, server: LiveServer) -> None:
    filler = "x" * (10 * 1024 * 1024)
    body = json.dumps({**EVENT, "extraAttributes": [{"name": "blob", "value": filler}]})
    response = client.post("/api/v1/events", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "limit" in response.json()["message"]
    assert stored(server) == 0


def test_a_10_mb_chunked_body_without_length_is_413(client: httpx.Client) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b" " * (1024 * 1024)

    response = client.post("/api/v1/events", content=chunks(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_a_100000_event_batch_is_413_and_stores_nothing(client: httpx.Client,
                                                        server: LiveServer) -> None:
    small = {"type": {"category": "c", "action": "a"}}
    body = ndjson(*([small] * 100_000))
    response = client.post("/api/v1/events", content=body,
                           headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 413
    assert "10000" in response.json()["message"]
    assert stored(server) == 0


def test_concurrent_requests_are_all_committed(client: httpx.Client, server: LiveServer) -> None:
    """Concurrent batches share commits (group commit) and every one is acknowledged."""
    results: list[int] = []

    def send(n: int) -> None:
        with server.client() as own:
            batch = [{**EVENT, "uid": f"c{n}-{i}"} for i in range(50)]
            response = own.post("/api/v1/events", content=ndjson(*batch),
                                headers={"content-type": "application/x-ndjson"})
            results.append(response.status_code)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [201] * 8
    assert stored(server) == 400


def test_every_endpoint_but_healthz_needs_authentication(server: LiveServer) -> None:
    with server.client(auth=None) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        for method, path in [("POST", "/api/v1/events"), ("GET", "/api/v1/events"),
                             ("GET", "/rest/auditing/1.0/events"), ("GET", "/metrics"),
                             ("GET", "/rest/api/latest/projects/PRJ")]:
            response = anonymous.request(method, path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Basic")
    with server.client(auth=("admin", "wrong")) as wrong:
        assert wrong.get("/api/v1/events").status_code == 401
