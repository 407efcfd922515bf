"""``trailkeeper user|group|grant|revoke|grants``: principals in the store.

They work on the store directly (``--db``/``--home``), as an operator on the server would;
every node reads the same tables. Each change is recorded as an event authored by the
operating-system user who ran the command. Passwords never go on the command line:
``--password-stdin`` reads one line from standard input, otherwise the command prompts
(twice, hidden).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from trailkeeper.auth import accounts
from trailkeeper.auth.grants import describe
from trailkeeper.cli.options import open_service, store_options, trail

_ROLES = click.Choice(["sysadmin", "admin", "auditor", "user"], case_sensitive=False)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


def _json_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON")(func)


@click.group()
def user() -> None:
    """Manage users (passwords are hashed with Argon2id)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=_ROLES, default="user", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input")
@store_options
def user_add(name: str, role: str, password_stdin: bool, home: Path | None,
             db_url: str | None) -> None:
    """Create user NAME."""
    password = _read_password(password_stdin)
    with open_service(home, db_url, create=True) as service:
        accounts.add_user(service.storage, name, password, role, trail=trail(service))
    click.echo(f"created user {name} ({role.lower()})")


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input")
@store_options
def user_passwd(name: str, password_stdin: bool, home: Path | None, db_url: str | None) -> None:
    """Set the password of user NAME."""
    password = _read_password(password_stdin)
    with open_service(home, db_url) as service:
        accounts.set_password(service.storage, name, password, trail=trail(service))
    click.echo(f"password of {name} changed")


@user.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable the user again")
@store_options
def user_disable(name: str, enable: bool, home: Path | None, db_url: str | None) -> None:
    """Disable (or with --enable, re-enable) user NAME."""
    with open_service(home, db_url) as service:
        accounts.set_disabled(service.storage, name, not enable, trail=trail(service))
    click.echo(f"user {name} {'enabled' if enable else 'disabled'}")


@user.command("list")
@_json_option
@store_options
def user_list(as_json: bool, home: Path | None, db_url: str | None) -> None:
    """List users with their own role (see `grants` for roles from groups)."""
    with open_service(home, db_url) as service:
        users = service.storage.list_users()
    rows = [{"name": u.name, "role": u.role, "disabled": u.disabled} for u in users]
    if as_json:
        click.echo(orjson.dumps(rows).decode())
        return
    for row in rows:
        state = "\tdisabled" if row["disabled"] else ""
        click.echo(f"{row['name']}\t{row['role']}{state}")


@click.group()
def group() -> None:
    """Manage groups of users."""


@group.command("create")
@click.argument("name")
@store_options
def group_create(name: str, home: Path | None, db_url: str | None) -> None:
    """Create group NAME."""
    with open_service(home, db_url, create=True) as service:
        accounts.create_group(service.storage, name, trail=trail(service))
    click.echo(f"created group {name}")


@group.command("delete")
@click.argument("name")
@store_options
def group_delete(name: str, home: Path | None, db_url: str | None) -> None:
    """Delete group NAME with its memberships and grants."""
    with open_service(home, db_url) as service:
        accounts.delete_group(service.storage, name, trail=trail(service))
    click.echo(f"deleted group {name}")


@group.command("add")
@click.argument("name")
@click.argument("users", nargs=-1, required=True)
@store_options
def group_add(name: str, users: tuple[str, ...], home: Path | None, db_url: str | None) -> None:
    """Add USERS to group NAME."""
    with open_service(home, db_url) as service:
        for member in users:
            accounts.add_member(service.storage, name, member, trail=trail(service))
    click.echo(f"added {', '.join(users)} to {name}")


@group.command("remove")
@click.argument("name")
@click.argument("users", nargs=-1, required=True)
@store_options
def group_remove(name: str, users: tuple[str, ...], home: Path | None,
                 db_url: str | None) -> None:
    """Remove USERS from group NAME."""
    with open_service(home, db_url) as service:
        for member in users:
            accounts.remove_member(service.storage, name, member, trail=trail(service))
    click.echo(f"removed {', '.join(users)} from {name}")


@group.command("list")
@_json_option
@store_options
def group_list(as_json: bool, home: Path | None, db_url: str | None) -> None:
    """List groups and their members."""
    with open_service(home, db_url) as service:
        groups = service.storage.list_groups()
    if as_json:
        click.echo(orjson.dumps([{"name": g.name, "members": list(g.members)}
                                 for g in groups]).decode())
        return
    for g in groups:
        click.echo(f"{g.name}\t{' '.join(g.members)}")


@click.command("grant")
@click.argument("grantee", metavar="USER|@GROUP")
@click.argument("target", metavar="ROLE|TYPE,ID")
@store_options
def grant(grantee: str, target: str, home: Path | None, db_url: str | None) -> None:
    """Give a role (sysadmin, admin, auditor) or the administration of an object
    (PROJECT,12 or REPOSITORY,7) to a user or, as @NAME, a group."""
    with open_service(home, db_url) as service:
        who, what = describe(accounts.grant(service.storage, grantee, target,
                                            trail=trail(service)))
    click.echo(f"granted {what} to {who}")


@click.command("revoke")
@click.argument("grantee", metavar="USER|@GROUP")
@click.argument("target", metavar="ROLE|TYPE,ID")
@store_options
def revoke(grantee: str, target: str, home: Path | None, db_url: str | None) -> None:
    """Take back a grant."""
    with open_service(home, db_url) as service:
        who, what = describe(accounts.revoke(service.storage, grantee, target,
                                             trail=trail(service)))
    click.echo(f"revoked {what} from {who}")


@click.command("grants")
@_json_option
@store_options
def grants(as_json: bool, home: Path | None, db_url: str | None) -> None:
    """List every grant."""
    with open_service(home, db_url) as service:
        found = [describe(g) for g in service.storage.list_grants()]
    if as_json:
        click.echo(orjson.dumps([{"grantee": w, "grant": t} for w, t in found]).decode())
        return
    for who, what in found:
        click.echo(f"{who}\t{what}")


