"""Grants: what a user may do, from their own role, their groups and their delegations.

A grant gives a role (``sysadmin``, ``admin``, ``auditor``) or one administered object
(``PROJECT,12``, ``REPOSITORY,7``) to a user or to a group (written ``@group``). A user's
effective role is the strongest of their own and every role granted to them or their groups;
their administered objects are all the objects granted to them or their groups. The password
login and API tokens both build their `Principal` with `principal_for`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trailkeeper.auth.principals import Principal, Role, Scope
from trailkeeper.errors import BadRequestError
from trailkeeper.storage.base import Grant, Storage, UserRecord

# Weakest first.
_STRENGTH = {Role.USER: 0, Role.AUDITOR: 1, Role.ADMIN: 2, Role.SYSADMIN: 3}
GRANTABLE_ROLES = (Role.SYSADMIN, Role.ADMIN, Role.AUDITOR)
_NAME = re.compile(r"^[A-Za-z0-9_.@+-][A-Za-z0-9_.@+ -]{0,127}$")
_OBJECT = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]{0,63})\s*,\s*([^\s,;][^,;]{0,199}?)\s*$")


def strongest(roles: list[Role]) -> Role:
    return max(roles, key=_STRENGTH.__getitem__, default=Role.USER)


@dataclass(frozen=True, slots=True)
class Access:
    """The effective role and administered (TYPE, id) objects of a user."""

    role: Role
    administers: frozenset[tuple[str, str]]


def access_of(user: UserRecord, grants: list[Grant]) -> Access:
    """Pure: the user's access from their own record and the grants `Storage.grants_for`
    returned (to them and their groups)."""
    roles = [Role(user.role)]
    objects: set[tuple[str, str]] = set()
    for grant in grants:
        if grant.role is not None:
            roles.append(Role(grant.role))
        else:
            objects.add((grant.target_type.upper(), grant.target_id))
    return Access(strongest(roles), frozenset(objects))


def principal_for(storage: Storage, user: UserRecord, *,
                  scopes: frozenset[Scope] | None = None,
                  token_id: str | None = None) -> Principal:
    """The principal of an authenticated user (password or token), grants resolved."""
    access = access_of(user, storage.grants_for(user.name))
    return Principal(user.name, access.role, access.administers, scopes, token_id)


def check_name(kind: str, name: str) -> str:
    """A user or group name: 1-128 letters, digits, ``_.@+-`` and inner spaces."""
    if not _NAME.match(name) or name != name.strip():
        raise BadRequestError(f"invalid {kind} name {name[:40]!r}: use 1-128 letters, digits"
                              " and _.@+- (spaces inside only)")
    return name


def parse_grantee(text: str) -> tuple[str, str]:
    """``alice`` → ("user", "alice"); ``@ops`` → ("group", "ops")."""
    if text.startswith("@"):
        return "group", check_name("group", text[1:])
    return "user", check_name("user", text)


def parse_target(text: str) -> tuple[str, str]:
    """``admin`` → ("", "admin"); ``project,12`` → ("PROJECT", "12")."""
    lowered = text.strip().lower()
    if "," not in text:
        if lowered in {r.value for r in GRANTABLE_ROLES}:
            return "", lowered
        raise BadRequestError(f"invalid grant {text[:40]!r}: give a role (sysadmin, admin,"
                              " auditor) or an object as TYPE,ID (e.g. PROJECT,12)")
    match = _OBJECT.match(text)
    if not match:
        raise BadRequestError(f"invalid object {text[:40]!r}: give TYPE,ID (e.g. REPOSITORY,7)")
    return match.group(1).upper(), match.group(2)


def make_grant(grantee: str, target: str) -> Grant:
    kind, name = parse_grantee(grantee)
    target_type, target_id = parse_target(target)
    return Grant(kind, name, target_type, target_id)


def describe(grant: Grant) -> tuple[str, str]:
    """(``alice`` or ``@ops``, ``admin`` or ``PROJECT,12``): the CLI's spelling."""
    who = f"@{grant.grantee}" if grant.grantee_kind == "group" else grant.grantee
    what = grant.target_id if grant.role is not None else f"{grant.target_type},{grant.target_id}"
    return who, what
