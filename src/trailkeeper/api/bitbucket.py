"""Bitbucket's per-project and per-repository audit views and the project-key lookup.

Bitbucket removed these in 8.0, but scripts (and seed 000's instructions) still call them.
Projects and repositories are found among the objects seen in events: a project by its key
(the PROJECT object's name), a repository by its slug within that project.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from trailkeeper.api.deps import PrincipalDep, ServiceDep, actor
from trailkeeper.auth.audit_events import SEARCHED, Results, covered, search_performed
from trailkeeper.auth.permissions import administers, scoped
from trailkeeper.auth.principals import Principal
from trailkeeper.errors import NotFoundError, PermissionDeniedError
from trailkeeper.ingest.service import AuditService
from trailkeeper.query.ast import HasObject
from trailkeeper.storage.base import CatalogueObject, StoredEvent

router = APIRouter(tags=["Bitbucket views"])

Start = Annotated[int, Query(ge=0, le=2**31 - 1, description="Index of the first event")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size")]


class _NoSuchObject(NotFoundError):
    """404 with Bitbucket's error body."""

    def __init__(self, message: str, exception: str) -> None:
        super().__init__(message)
        self.exception = f"com.atlassian.bitbucket.{exception}"

    def to_json(self) -> dict[str, Any]:
        return {"errors": [{"context": None, "message": self.message,
                            "exceptionName": self.exception}]}


def _project(service: AuditService, key: str) -> CatalogueObject | None:
    found = [o for o in service.storage.find_objects("PROJECT", name=key) if o.id]
    exact = [o for o in found if o.name == key]
    candidates = exact or found
    return candidates[0] if candidates else None


def _repository(service: AuditService, project: CatalogueObject,
                slug: str) -> CatalogueObject | None:
    assert project.id is not None
    for repo in service.storage.find_objects("REPOSITORY", name=slug):
        if repo.id and service.storage.objects_seen_together(
                "REPOSITORY", repo.id, "PROJECT", project.id):
            return repo
    return None


def _page(service: AuditService, principal: Principal, kind: str, object_id: str,
          start: int, limit: int) -> tuple[bytes, list[StoredEvent]]:
    where = scoped(principal, HasObject(kind, (object_id,)))
    page = service.storage.search(where, limit=limit, offset=start)
    body: dict[str, Any] = {"size": len(page.events), "limit": limit,
                            "isLastPage": page.last_page, "start": start}
    if not page.last_page:
        body["nextPageStart"] = start + len(page.events)
    values = b",".join(e.rest_json() for e in page.events)
    head = orjson.dumps(body)[:-1]
    return head + b',"values":[' + values + b"]}", page.events


def _searched(request: Request, service: AuditService, principal: Principal, query: str,
              rows: list[StoredEvent]) -> None:
    """Record the view as "Audit Log search performed", as the Atlassian API's searches."""
    if covered(service.governance.config, SEARCHED):
        service.audit(search_performed(actor(request, principal), query, Results.of(rows)))


def _check(principal: Principal) -> None:
    if not principal.sees_everything and not principal.administers:
        raise PermissionDeniedError("You are not permitted to view the audit log")


def _check_object(service: AuditService, principal: Principal, kind: str,
                  object_id: str) -> None:
    """A delegated admin sees the views of what they administer (PROJECT_ADMIN/REPO_ADMIN);
    the page is still scoped to their events."""
    if not principal.sees_everything and not administers(principal, kind, object_id,
                                                         service.storage):
        raise PermissionDeniedError("You are not permitted to view the audit log")


async def _known_project(version: str, key: str, service: AuditService,
                         principal: Principal) -> CatalogueObject:
    _check(principal)
    _version(version)
    project = await run_in_threadpool(_project, service, key)
    if project is None or project.id is None:
        raise _NoSuchObject(f"Project {key} does not exist.", "project.NoSuchProjectException")
    return project


async def _administered(service: AuditService, principal: Principal, kind: str,
                        object_id: str) -> None:
    await run_in_threadpool(_check_object, service, principal, kind, object_id)


@router.get("/rest/audit/{version}/projects/{project_key}/events",
            summary="Events about a project (Bitbucket paged format)")
async def project_events(version: str, project_key: str, request: Request,
                         service: ServiceDep, principal: PrincipalDep, start: Start = 0,
                         limit: Limit = 25) -> Response:
    project = await _known_project(version, project_key, service, principal)
    assert project.id is not None
    await _administered(service, principal, "PROJECT", project.id)
    body, rows = await run_in_threadpool(_page, service, principal, "PROJECT", project.id,
                                         start, limit)
    _searched(request, service, principal,
              f"project={project_key}&start={start}&limit={limit}", rows)
    return Response(body, media_type="application/json")


@router.get("/rest/audit/{version}/projects/{project_key}/repos/{slug}/events",
            summary="Events about a repository (Bitbucket paged format)")
async def repository_events(version: str, project_key: str, slug: str, request: Request,
                            service: ServiceDep, principal: PrincipalDep, start: Start = 0,
                            limit: Limit = 25) -> Response:
    project = await _known_project(version, project_key, service, principal)
    repo = await run_in_threadpool(_repository, service, project, slug)
    if repo is None or repo.id is None:
        raise _NoSuchObject(f"Repository {project_key}/{slug} does not exist.",
                            "repository.NoSuchRepositoryException")
    await _administered(service, principal, "REPOSITORY", repo.id)
    body, rows = await run_in_threadpool(_page, service, principal, "REPOSITORY", repo.id,
                                         start, limit)
    _searched(request, service, principal,
              f"project={project_key}&repository={slug}&start={start}&limit={limit}", rows)
    return Response(body, media_type="application/json")


@router.get("/rest/api/{version}/projects/{project_key}",
            summary="A project's id from its key (from objects seen in events)")
async def project(version: str, project_key: str, service: ServiceDep,
                  principal: PrincipalDep) -> Response:
    found = await _known_project(version, project_key, service, principal)
    assert found.id is not None
    await _administered(service, principal, "PROJECT", found.id)
    ident: int | str = int(found.id) if found.id.isdigit() else found.id
    body = {"key": found.name, "id": ident, "name": found.name}
    return Response(orjson.dumps(body), media_type="application/json")


def _version(version: str) -> None:
    if version not in ("1.0", "latest"):
        raise HTTPException(404, f"Unknown API version {version!r}; use 1.0 or latest")
