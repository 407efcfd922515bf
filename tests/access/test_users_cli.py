"""``trailkeeper user|group|grant|revoke|grants`` manage principals in the store."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result

from trailkeeper.auth.grants import principal_for
from trailkeeper.auth.passwords import verify_password
from trailkeeper.auth.principals import Role
from trailkeeper.cli.main import cli
from trailkeeper.storage import open_storage


def run(db_url: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, [*args, "--db", db_url], input=stdin)


def test_users_groups_and_grants_make_a_delegated_admin(db_url: str) -> None:
    """A user in a group granted PROJECT,12 administers it; revoking takes it back."""
    assert run(db_url, "user", "add", "alice", "--password-stdin", stdin="s3cret-pass\n"
               ).exit_code == 0
    assert run(db_url, "group", "create", "ops").exit_code == 0
    assert run(db_url, "group", "add", "ops", "alice").exit_code == 0
    assert run(db_url, "grant", "@ops", "project,12").exit_code == 0
    assert run(db_url, "grant", "alice", "auditor").exit_code == 0
    listed = json.loads(run(db_url, "grants", "--json").output)
    assert {"grantee": "@ops", "grant": "PROJECT,12"} in listed
    storage = open_storage(db_url)
    try:
        user = storage.get_user("alice")
        assert user is not None and verify_password(user.password_hash, "s3cret-pass")
        principal = principal_for(storage, user)
        assert principal.role is Role.AUDITOR
        assert principal.administers == frozenset({("PROJECT", "12")})
    finally:
        storage.close()
    assert run(db_url, "revoke", "@ops", "PROJECT,12").exit_code == 0
    assert run(db_url, "group", "delete", "ops").exit_code == 0
    assert json.loads(run(db_url, "group", "list", "--json").output) == []


def test_passwd_disable_and_list(db_url: str) -> None:
    """Passwords come from stdin or a prompt, never argv; disabled users are listed so."""
    run(db_url, "user", "add", "bob", "--role", "admin", "--password-stdin", stdin="first-pass\n")
    assert run(db_url, "user", "passwd", "bob", stdin="second-pass\nsecond-pass\n"
               ).exit_code == 0
    assert run(db_url, "user", "disable", "bob").exit_code == 0
    users = json.loads(run(db_url, "user", "list", "--json").output)
    assert users == [{"name": "bob", "role": "admin", "disabled": True}]
    storage = open_storage(db_url)
    try:
        user = storage.get_user("bob")
        assert user is not None and verify_password(user.password_hash, "second-pass")
    finally:
        storage.close()


def test_mistakes_are_refused_with_a_message(db_url: str) -> None:
    """Unknown users, duplicate names, short passwords and bad targets fail cleanly."""
    assert run(db_url, "user", "add", "carl", "--password-stdin", stdin="short\n"
               ).exit_code != 0
    run(db_url, "user", "add", "carl", "--password-stdin", stdin="long-enough\n")
    dup = run(db_url, "user", "add", "carl", "--password-stdin", stdin="long-enough\n")
    assert dup.exit_code != 0 and "exists already" in str(dup.exception or dup.output)
    assert run(db_url, "grant", "nobody", "admin").exit_code != 0
    assert run(db_url, "grant", "carl", "superuser").exit_code != 0
    assert run(db_url, "grant", "@nogroup", "PROJECT,1").exit_code != 0
