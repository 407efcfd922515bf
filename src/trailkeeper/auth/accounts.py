"""Changes to users, groups and grants, shared by the CLI and the admin API.

Every change goes through one of these functions, which validate names and references and
raise the errors of `trailkeeper.errors`. They are the single place where the later
self-audit step will record each change as an event ("User created", "Group deleted", ...).
"""

from __future__ import annotations

from dataclasses import replace

from trailkeeper.auth.grants import check_name, make_grant
from trailkeeper.auth.passwords import hash_password
from trailkeeper.auth.principals import Role
from trailkeeper.errors import AlreadyExistsError, BadRequestError, NotFoundError
from trailkeeper.storage.base import Grant, Storage, UserRecord

MIN_PASSWORD = 8


def _role(text: str) -> Role:
    try:
        return Role(text.lower())
    except ValueError:
        raise BadRequestError(f"unknown role {text[:20]!r}: use sysadmin, admin, auditor or"
                              " user") from None


def _password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise BadRequestError(f"the password must have at least {MIN_PASSWORD} characters")
    return hash_password(password)


def _user(storage: Storage, name: str) -> UserRecord:
    user = storage.get_user(name)
    if user is None:
        raise NotFoundError(f"no user {name!r}")
    return user


def add_user(storage: Storage, name: str, password: str, role: str = "user") -> UserRecord:
    check_name("user", name)
    if storage.get_user(name) is not None:
        raise AlreadyExistsError(f"user {name!r} exists already")
    user = UserRecord(name, _password(password), _role(role).value)
    storage.put_user(user)
    return user


def set_password(storage: Storage, name: str, password: str) -> None:
    storage.put_user(replace(_user(storage, name), password_hash=_password(password)))


def set_role(storage: Storage, name: str, role: str) -> None:
    storage.put_user(replace(_user(storage, name), role=_role(role).value))


def set_disabled(storage: Storage, name: str, disabled: bool = True) -> None:
    storage.put_user(replace(_user(storage, name), disabled=disabled))


def create_group(storage: Storage, name: str) -> None:
    if not storage.create_group(check_name("group", name)):
        raise AlreadyExistsError(f"group {name!r} exists already")


def delete_group(storage: Storage, name: str) -> None:
    if not storage.delete_group(name):
        raise NotFoundError(f"no group {name!r}")


def _group_exists(storage: Storage, name: str) -> None:
    if all(g.name != name for g in storage.list_groups()):
        raise NotFoundError(f"no group {name!r}")


def add_member(storage: Storage, group: str, user: str) -> bool:
    _group_exists(storage, group)
    _user(storage, user)
    return storage.add_member(group, user)


def remove_member(storage: Storage, group: str, user: str) -> bool:
    _group_exists(storage, group)
    return storage.remove_member(group, user)


def grant(storage: Storage, grantee: str, target: str) -> Grant:
    """Give ``target`` (a role or TYPE,ID) to ``grantee`` (a user or ``@group``)."""
    made = make_grant(grantee, target)
    if made.grantee_kind == "user":
        _user(storage, made.grantee)
    else:
        _group_exists(storage, made.grantee)
    storage.add_grant(made)
    return made


def revoke(storage: Storage, grantee: str, target: str) -> Grant:
    made = make_grant(grantee, target)
    if not storage.remove_grant(made):
        raise NotFoundError(f"no such grant: {grantee} {target}")
    return made
