"""Admin API for principals: ``/api/v1/admin/users``, ``/groups`` and ``/grants``.

Admins and sysadmins may list; only sysadmins change (an API token needs the ``admin``
scope for either). Every change goes through `trailkeeper.auth.accounts`, as the CLI's do,
is recorded as an event authored by the caller (stored before the answer), and clears this
node's memory of authenticated principals so new grants apply at once (other nodes within a
minute).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from trailkeeper.api.deps import PrincipalDep, ServiceDep, trail
from trailkeeper.auth import accounts
from trailkeeper.auth.authenticate import Authenticator
from trailkeeper.auth.grants import describe
from trailkeeper.auth.principals import Principal, Role, Scope
from trailkeeper.errors import PermissionDeniedError
from trailkeeper.storage.base import Storage

router = APIRouter(prefix="/api/v1/admin", tags=["Administration"])


class NewUser(BaseModel):
    name: str
    password: str = Field(repr=False)
    role: str = "user"


class UserChange(BaseModel):
    password: str | None = Field(default=None, repr=False)
    role: str | None = None
    disabled: bool | None = None


class NewGroup(BaseModel):
    name: str


class NewGrant(BaseModel):
    grantee: str = Field(description="user name, or @group")
    grant: str = Field(description="sysadmin, admin, auditor, or TYPE,ID such as PROJECT,12")


def _may_view(principal: Principal) -> None:
    if principal.role not in (Role.SYSADMIN, Role.ADMIN) or not principal.allows(Scope.ADMIN):
        raise PermissionDeniedError("Administrators only")


def _may_change(principal: Principal) -> None:
    if principal.role is not Role.SYSADMIN or not principal.allows(Scope.ADMIN):
        raise PermissionDeniedError("System administrators only")


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _changed(request: Request) -> None:
    authenticator: Authenticator = request.app.state.authenticator
    authenticator.forget()


def _users(storage: Storage) -> list[dict[str, Any]]:
    return [{"name": u.name, "role": u.role, "disabled": u.disabled}
            for u in storage.list_users()]


def _groups(storage: Storage) -> list[dict[str, Any]]:
    return [{"name": g.name, "members": list(g.members)} for g in storage.list_groups()]


def _grants(storage: Storage) -> list[dict[str, str]]:
    return [dict(zip(("grantee", "grant"), describe(g), strict=True))
            for g in storage.list_grants()]


@router.get("/users", summary="Users and their own roles")
async def list_users(service: ServiceDep, principal: PrincipalDep) -> Response:
    _may_view(principal)
    return _json({"users": await run_in_threadpool(_users, service.storage)})


@router.post("/users", status_code=201, summary="Create a user")
async def create_user(body: NewUser, request: Request, service: ServiceDep,
                      principal: PrincipalDep) -> Response:
    _may_change(principal)
    user = await run_in_threadpool(accounts.add_user, service.storage, body.name,
                                   body.password, body.role, trail=trail(request, principal))
    _changed(request)
    return _json({"name": user.name, "role": user.role, "disabled": user.disabled}, 201)


@router.patch("/users/{name}", summary="Change a user's password, role or disabled flag")
async def change_user(name: str, body: UserChange, request: Request, service: ServiceDep,
                      principal: PrincipalDep) -> Response:
    _may_change(principal)
    storage = service.storage
    recorded = trail(request, principal)

    def apply() -> None:
        if body.password is not None:
            accounts.set_password(storage, name, body.password, trail=recorded)
        if body.role is not None:
            accounts.set_role(storage, name, body.role, trail=recorded)
        if body.disabled is not None:
            accounts.set_disabled(storage, name, body.disabled, trail=recorded)

    await run_in_threadpool(apply)
    _changed(request)
    return Response(status_code=204)


@router.get("/groups", summary="Groups and their members")
async def list_groups(service: ServiceDep, principal: PrincipalDep) -> Response:
    _may_view(principal)
    return _json({"groups": await run_in_threadpool(_groups, service.storage)})


@router.post("/groups", status_code=201, summary="Create a group")
async def create_group(body: NewGroup, request: Request, service: ServiceDep,
                       principal: PrincipalDep) -> Response:
    _may_change(principal)
    await run_in_threadpool(accounts.create_group, service.storage, body.name,
                            trail=trail(request, principal))
    _changed(request)
    return _json({"name": body.name, "members": []}, 201)


@router.delete("/groups/{name}", status_code=204, summary="Delete a group and its grants")
async def delete_group(name: str, request: Request, service: ServiceDep,
                       principal: PrincipalDep) -> Response:
    _may_change(principal)
    await run_in_threadpool(accounts.delete_group, service.storage, name,
                            trail=trail(request, principal))
    _changed(request)
    return Response(status_code=204)


@router.put("/groups/{name}/members/{user}", status_code=204, summary="Add a member")
async def add_member(name: str, user: str, request: Request, service: ServiceDep,
                     principal: PrincipalDep) -> Response:
    _may_change(principal)
    await run_in_threadpool(accounts.add_member, service.storage, name, user,
                            trail=trail(request, principal))
    _changed(request)
    return Response(status_code=204)


@router.delete("/groups/{name}/members/{user}", status_code=204, summary="Remove a member")
async def remove_member(name: str, user: str, request: Request, service: ServiceDep,
                        principal: PrincipalDep) -> Response:
    _may_change(principal)
    await run_in_threadpool(accounts.remove_member, service.storage, name, user,
                            trail=trail(request, principal))
    _changed(request)
    return Response(status_code=204)


@router.get("/grants", summary="Every grant")
async def list_grants(service: ServiceDep, principal: PrincipalDep) -> Response:
    _may_view(principal)
    return _json({"grants": await run_in_threadpool(_grants, service.storage)})


@router.post("/grants", status_code=201, summary="Grant a role or an object's administration")
async def create_grant(body: NewGrant, request: Request, service: ServiceDep,
                       principal: PrincipalDep) -> Response:
    _may_change(principal)
    made = await run_in_threadpool(accounts.grant, service.storage, body.grantee, body.grant,
                                   trail=trail(request, principal))
    _changed(request)
    who, what = describe(made)
    return _json({"grantee": who, "grant": what}, 201)


@router.delete("/grants", status_code=204, summary="Revoke a grant")
async def delete_grant(request: Request, service: ServiceDep, principal: PrincipalDep,
                       grantee: Annotated[str, Query(description="user or @group")],
                       grant: Annotated[str, Query(description="role or TYPE,ID")]) -> Response:
    _may_change(principal)
    await run_in_threadpool(accounts.revoke, service.storage, grantee, grant,
                            trail=trail(request, principal))
    _changed(request)
    return Response(status_code=204)
