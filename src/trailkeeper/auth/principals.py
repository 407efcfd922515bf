"""Principals (authenticated callers), roles, and the bootstrap administrator."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from trailkeeper.auth.passwords import generate_password, hash_password
from trailkeeper.model.event import AuditAuthor
from trailkeeper.storage.base import Storage, UserRecord

log = logging.getLogger("trailkeeper.auth")

BOOTSTRAP_ADMIN = "admin"
PASSWORD_FILE = "initial-admin-password"  # noqa: S105 (a file name)


class Role(StrEnum):
    SYSADMIN = "sysadmin"
    ADMIN = "admin"
    AUDITOR = "auditor"
    USER = "user"


class Scope(StrEnum):
    """What an API token may do (a password login may do all its role allows)."""

    INGEST = "ingest"  # write events only
    READ = "read"  # search and export
    ADMIN = "admin"  # manage users, groups, grants, tokens and configuration


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``role``: the strongest of the user's own role and those granted to their groups.
    ``administers``: (TYPE, id) objects whose events this caller may read as a delegated
    resource administrator (granted to them or to one of their groups).
    ``scopes``: the token's scopes when authenticated by an API token, None for a password.
    """

    name: str
    role: Role
    administers: frozenset[tuple[str, str]] = frozenset()
    scopes: frozenset[Scope] | None = None
    token_id: str | None = None

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.SYSADMIN, Role.ADMIN, Role.AUDITOR)

    def allows(self, scope: Scope) -> bool:
        """A password login allows every scope (its role still limits what it can do)."""
        return self.scopes is None or scope in self.scopes or Scope.ADMIN in self.scopes

    def as_author(self) -> AuditAuthor:
        """The author recorded for events this principal sends without one."""
        return AuditAuthor(id=self.name, name=self.name, type="user")


def ensure_bootstrap_admin(storage: Storage, home: Path) -> str | None:
    """Create user ``admin`` on an empty store; return the password when one was generated.

    The password comes from ``TRAILKEEPER_ADMIN_PASSWORD`` or is generated, printed once by
    the caller, and written to ``$TRAILKEEPER_HOME/initial-admin-password`` (mode 0600).
    """
    if storage.count_users() > 0:
        return None
    given = os.environ.get("TRAILKEEPER_ADMIN_PASSWORD")
    password = given or generate_password()
    storage.put_user(UserRecord(BOOTSTRAP_ADMIN, hash_password(password), Role.SYSADMIN))
    log.info("created the bootstrap user %r", BOOTSTRAP_ADMIN)
    if given:
        return None
    home.mkdir(parents=True, exist_ok=True)
    path = home / PASSWORD_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    os.chmod(path, 0o600)
    return password
