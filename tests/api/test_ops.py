"""Health, metrics, the OpenAPI document, and JSON errors everywhere."""

from __future__ import annotations

import httpx

from tests.api.test_ingest_http import EVENT
from tests.conftest import LiveServer


def test_healthz_needs_no_authentication(server: LiveServer) -> None:
    with server.client(auth=None) as anonymous:
        response = anonymous.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_metrics_count_events_and_requests(client: httpx.Client) -> None:
    client.post("/api/v1/events", json=[EVENT, EVENT])
    text = client.get("/metrics").text
    assert 'trailkeeper_events_received_total{path="http"} 2.0' in text
    assert "trailkeeper_events_stored_total 2.0" in text
    assert "trailkeeper_queue_depth" in text
    assert 'route="/api/v1/events",status="201"' in text
    assert "trailkeeper_events_dropped_total 0.0" in text


def test_openapi_describes_the_api(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    assert "/rest/auditing/1.0/events" in spec["paths"]
    assert "/api/v1/events" in spec["paths"]


def test_unknown_paths_and_methods_answer_json(client: httpx.Client) -> None:
    missing = client.get("/no/such/thing")
    assert missing.status_code == 404 and missing.json()["status"] == 404
    wrong = client.delete("/api/v1/events/1")
    assert wrong.status_code == 405 and wrong.json()["status"] == 405


def test_no_api_deletes_or_edits_events(client: httpx.Client) -> None:
    [event_id] = client.post("/api/v1/events", json=EVENT).json()["ids"]
    for method in ("DELETE", "PUT", "PATCH"):
        assert client.request(method, f"/api/v1/events/{event_id}").status_code == 405
    assert client.get(f"/api/v1/events/{event_id}").status_code == 200


def test_unknown_event_id_is_404_and_bad_id_is_400(client: httpx.Client) -> None:
    assert client.get("/api/v1/events/999999").status_code == 404
    response = client.get("/api/v1/events/abc")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == \
        "path.event_id"
