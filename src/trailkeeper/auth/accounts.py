"""Changes to users, groups and grants, shared by the CLI and the admin API.

Every change goes through one of these functions, which validate names and references and
raise the errors of `trailkeeper.errors`. They are the single place where each change is
recorded as an event ("User created", "User group deleted", ...; see
`trailkeeper.auth.audit_events`): given a `Trail`, a function that changed something hands
its record to it (the API and the CLI store it durably before answering). A change that
changes nothing (a member added twice) records nothing.
"""

from __future__ import annotations

from dataclasses import replace

from trailkeeper.auth import audit_events as events
from trailkeeper.auth.audit_events import Trail
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


def add_user(storage: Storage, name: str, password: str, role: str = "user", *,
             trail: Trail | None = None) -> UserRecord:
    check_name("user", name)
    if storage.get_user(name) is not None:
        raise AlreadyExistsError(f"user {name!r} exists already")
    user = UserRecord(name, _password(password), _role(role).value)
    storage.put_user(user)
    if trail is not None:
        trail.add(events.user_created(trail.actor, user.name, user.role))
    return user


def set_password(storage: Storage, name: str, password: str, *,
                 trail: Trail | None = None) -> None:
    storage.put_user(replace(_user(storage, name), password_hash=_password(password)))
    if trail is not None:
        trail.add(events.password_changed(trail.actor, name))


def set_role(storage: Storage, name: str, role: str, *, trail: Trail | None = None) -> None:
    user = _user(storage, name)
    new = _role(role).value
    storage.put_user(replace(user, role=new))
    if trail is not None and new != user.role:
        trail.add(events.role_changed(trail.actor, name, user.role, new))


def set_disabled(storage: Storage, name: str, disabled: bool = True, *,
                 trail: Trail | None = None) -> None:
    user = _user(storage, name)
    storage.put_user(replace(user, disabled=disabled))
    if trail is not None and disabled != user.disabled:
        trail.add(events.user_disabled(trail.actor, name, disabled))


def create_group(storage: Storage, name: str, *, trail: Trail | None = None) -> None:
    if not storage.create_group(check_name("group", name)):
        raise AlreadyExistsError(f"group {name!r} exists already")
    if trail is not None:
        trail.add(events.group_created(trail.actor, name))


def delete_group(storage: Storage, name: str, *, trail: Trail | None = None) -> None:
    if not storage.delete_group(name):
        raise NotFoundError(f"no group {name!r}")
    if trail is not None:
        trail.add(events.group_deleted(trail.actor, name))


def _group_exists(storage: Storage, name: str) -> None:
    if all(g.name != name for g in storage.list_groups()):
        raise NotFoundError(f"no group {name!r}")


def add_member(storage: Storage, group: str, user: str, *,
               trail: Trail | None = None) -> bool:
    _group_exists(storage, group)
    _user(storage, user)
    added = storage.add_member(group, user)
    if trail is not None and added:
        trail.add(events.member_added(trail.actor, group, user))
    return added


def remove_member(storage: Storage, group: str, user: str, *,
                  trail: Trail | None = None) -> bool:
    _group_exists(storage, group)
    removed = storage.remove_member(group, user)
    if trail is not None and removed:
        trail.add(events.member_removed(trail.actor, group, user))
    return removed


def grant(storage: Storage, grantee: str, target: str, *,
          trail: Trail | None = None) -> Grant:
    """Give ``target`` (a role or TYPE,ID) to ``grantee`` (a user or ``@group``)."""
    made = make_grant(grantee, target)
    if made.grantee_kind == "user":
        _user(storage, made.grantee)
    else:
        _group_exists(storage, made.grantee)
    if storage.add_grant(made) and trail is not None:
        trail.add(events.permission_granted(trail.actor, made))
    return made


def revoke(storage: Storage, grantee: str, target: str, *,
           trail: Trail | None = None) -> Grant:
    made = make_grant(grantee, target)
    if not storage.remove_grant(made):
        raise NotFoundError(f"no such grant: {grantee} {target}")
    if trail is not None:
        trail.add(events.permission_revoked(trail.actor, made))
    return made
