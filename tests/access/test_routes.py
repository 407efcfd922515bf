"""Every route of the app, enumerated from the app itself (new routes are covered without
editing this file): anonymous callers get 401, an ``ingest`` token 403 on reads, a ``read``
token 403 on writes, and no route deletes or edits events."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from tests.access.test_tokens import make_token
from tests.conftest import LiveServer
from trailkeeper.api.app import build_app
from trailkeeper.auth.principals import Scope
from trailkeeper.auth.tokenauth import INGEST_ROUTES, SAFE_METHODS, required_scope
from trailkeeper.ingest.service import AuditService

# Anonymous on purpose: liveness for load balancers, the API's own documentation, and
# Atlassian's @AnonymousAllowed database usage (a ratio, no event data).
PUBLIC = {"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",
          "/rest/auditing/1.0/statistics/database/usage"}
_SAMPLE = {"event_id": "1", "version": "latest", "project_key": "PRJ", "slug": "repo",
           "resource_type": "PROJECT", "token_id": "0123456789abcdef", "name": "x",
           "user": "x"}


def routes(service: AuditService) -> list[tuple[str, str, bool]]:
    """(method, path template, is an API route) of every route, HEAD aside."""
    found = []
    for context in iter_route_contexts(build_app(service).routes):
        route = context.original_route
        path = getattr(route, "path", None)
        assert isinstance(path, str), route
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                found.append((method, path, isinstance(route, APIRoute)))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: _SAMPLE.get(m.group(1), "x"), path)


def call(client: httpx.Client, method: str, path: str, **options: object) -> httpx.Response:
    body = {} if method not in SAFE_METHODS else None
    return client.request(method, concrete(path), json=body, **options)  # type: ignore[arg-type]


def test_only_the_documented_routes_are_public(service: AuditService) -> None:
    public = {path for _, path, api in routes(service) if not api}
    assert public <= PUBLIC


def test_every_route_refuses_anonymous_callers(server: LiveServer) -> None:
    with server.client(auth=None) as c:
        for method, path, _ in routes(server.service):
            if path in PUBLIC:
                continue
            response = call(c, method, path)
            assert response.status_code == 401, (method, path, response.text)


def test_an_ingest_token_is_refused_on_every_read_route(server: LiveServer) -> None:
    ingest = make_token(server.service.storage, scopes="ingest")
    with server.client(auth=None) as c:
        for method, path, _ in routes(server.service):
            if path in PUBLIC or method not in SAFE_METHODS:
                continue
            response = call(c, method, path, headers={"Authorization": f"Bearer {ingest}"})
            assert response.status_code == 403, (method, path, response.text)


def test_a_read_token_is_refused_on_every_write_route(server: LiveServer) -> None:
    read = make_token(server.service.storage, scopes="read")
    with server.client(auth=None) as c:
        for method, path, _ in routes(server.service):
            if method in SAFE_METHODS:
                continue
            response = call(c, method, path, headers={"Authorization": f"Bearer {read}"})
            assert response.status_code == 403, (method, path, response.text)


def test_ingest_and_read_tokens_are_refused_on_administration(server: LiveServer) -> None:
    both = make_token(server.service.storage, scopes="read,ingest")
    with server.client(auth=None) as c:
        for method, path, _ in routes(server.service):
            if path.startswith("/api/v1/admin"):
                response = call(c, method, path, headers={"Authorization": f"Bearer {both}"})
                assert response.status_code == 403, (method, path, response.text)


def test_no_route_deletes_or_edits_events(service: AuditService) -> None:
    """Events are only ever added (POST /api/v1/events); DELETE, PUT and PATCH exist only
    under /api/v1/admin and Atlassian's configuration, which have no event routes."""
    for method, path, _ in routes(service):
        if "event" in path:
            assert method in SAFE_METHODS or (method, path) in INGEST_ROUTES, (method, path)
        if method in {"DELETE", "PUT", "PATCH"}:
            assert path.startswith(("/api/v1/admin/", "/rest/auditing/1.0/configuration/"))
            assert "event" not in path, (method, path)


@pytest.mark.parametrize(("method", "path", "scope"), [
    ("GET", "/api/v1/events", Scope.READ), ("POST", "/api/v1/events", Scope.INGEST),
    ("GET", "/api/v1/admin/tokens", Scope.ADMIN), ("DELETE", "/api/v1/admin/x", Scope.ADMIN),
    ("POST", "/api/v1/some-new-write", Scope.ADMIN), ("GET", "/metrics", Scope.READ),
])
def test_required_scopes(method: str, path: str, scope: Scope) -> None:
    """An unknown write needs admin, so a new write route is never open to weaker tokens."""
    assert required_scope(method, path) is scope
