"""``trailkeeper token create|list|revoke``: API tokens in the store (``--db``/``--home``).

``create`` prints the token text alone on standard output, once (details go to standard
error), so ``TOKEN=$(trailkeeper token create ...)`` captures exactly the token; it is not
stored and cannot be shown again. The command has the store owner's authority but applies
the API's rule on scopes: ``admin`` only for a ``sysadmin``'s token. Creation and revocation
are recorded as events authored by the operating-system user who ran the command.
"""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from trailkeeper.api.admin_tokens import token_json
from trailkeeper.auth import tokens
from trailkeeper.cli.options import open_service, store_options, trail
from trailkeeper.model.timestamps import now_ms

_SCOPES = click.Choice(["ingest", "read", "admin"], case_sensitive=False)


@click.group()
def token() -> None:
    """Manage API tokens (shown once, stored hashed)."""


@token.command("create")
@click.option("--user", "user_name", required=True, help="The token's owner")
@click.option("--scope", "scopes", type=_SCOPES, multiple=True, required=True,
              help="ingest (send events), read (search, export) or admin; repeatable")
@click.option("--expires", default="never", show_default=True,
              help="Lifetime: 30d, 12h, 90m, 2w or never")
@click.option("--allow-ip", "allow_ips", multiple=True, metavar="CIDR",
              help="Accept only clients in this IPv4/IPv6 network; repeatable")
@click.option("--rate", metavar="N/MINUTESm", help="At most N requests within MINUTES, e.g. "
                                                    "100/5m (429 beyond)")
@click.option("--description", default="", help="What the token is for (shown in logs)")
@store_options
def token_create(user_name: str, scopes: tuple[str, ...], expires: str,
                 allow_ips: tuple[str, ...], rate: str | None, description: str,
                 home: Path | None, db_url: str | None) -> None:
    """Create a token and print it (once)."""
    spec = tokens.TokenSpec(
        user=user_name, scopes=tokens.parse_scopes(scopes),
        expires_in_s=tokens.parse_duration(expires),
        allow_ips=tokens.parse_networks(allow_ips),
        rate=tokens.parse_rate(rate) if rate else None, description=description)
    with open_service(home, db_url) as service:
        text, record = tokens.issue(service.storage, spec, created_by="(cli)",
                                    now_ms=now_ms(), trail=trail(service))
    shown = token_json(record, record.created_ms)
    click.echo(f"Created token {record.id} for {record.user} (scopes {' '.join(record.scopes)}"
               f", expires {shown['expires'] or 'never'}). It is shown only now:", err=True)
    click.echo(text)


@token.command("list")
@click.option("--user", "user_name", help="Only this user's tokens")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
@store_options
def token_list(user_name: str | None, as_json: bool, home: Path | None,
               db_url: str | None) -> None:
    """List tokens (never their text)."""
    with open_service(home, db_url) as service:
        found = service.storage.list_tokens(user_name)
    now = now_ms()
    rows = [token_json(r, now) for r in found]
    if as_json:
        click.echo(orjson.dumps({"tokens": rows}, option=orjson.OPT_INDENT_2).decode())
        return
    columns = ("id", "user", "scopes", "status", "expires", "last_used", "allow_ips", "rate",
               "description")
    table = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in table)]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for cells in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(cells, widths, strict=True)).rstrip())


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


@token.command("revoke")
@click.argument("token_id")
@store_options
def token_revoke(token_id: str, home: Path | None, db_url: str | None) -> None:
    """Revoke token TOKEN_ID (refused from the next request on; the record is kept)."""
    with open_service(home, db_url) as service:
        record, revoked = tokens.revoke(service.storage, token_id, now_ms=now_ms(),
                                        trail=trail(service))
    if not revoked:
        click.echo(f"Token {token_id} was already revoked", err=True)
        return
    click.echo(f"Revoked token {token_id} of {record.user}", err=True)
