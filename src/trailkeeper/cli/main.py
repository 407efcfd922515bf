"""The ``trailkeeper`` command."""

from __future__ import annotations

import sys

import click

from trailkeeper import __version__
from trailkeeper.cli.alerts import alerts
from trailkeeper.cli.config import config
from trailkeeper.cli.integrity import integrity, verify
from trailkeeper.cli.retention import retention
from trailkeeper.cli.rules import rules
from trailkeeper.cli.search import search
from trailkeeper.cli.serve import serve
from trailkeeper.cli.tokens import token
from trailkeeper.cli.transfer import import_, tail
from trailkeeper.cli.users import COMMANDS as USER_COMMANDS
from trailkeeper.errors import TrailkeeperError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trailkeeper")
def cli() -> None:
    """Trailkeeper: keep, search, export, watch and prove an audit trail."""


cli.add_command(serve)
cli.add_command(search)
cli.add_command(import_)
cli.add_command(tail)
cli.add_command(token)  # API tokens
cli.add_command(retention)  # database retention
cli.add_command(config)  # coverage, policy, denylist, redaction, retention settings
cli.add_command(rules)  # Sigma detection rules: list, lint, test
cli.add_command(alerts)  # alerts raised by detection rules
cli.add_command(verify)  # prove the log unaltered (Merkle tree, signed checkpoints)
cli.add_command(integrity)  # signing key, tree state, a checkpoint now

# Users, groups and grants (access control).
for _command in USER_COMMANDS:
    cli.add_command(_command)


def main() -> None:
    """Entry point: Trailkeeper errors become a message and their exit code."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except TrailkeeperError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
