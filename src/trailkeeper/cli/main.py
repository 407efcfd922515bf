"""The ``trailkeeper`` command."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from trailkeeper import __version__
from trailkeeper.errors import TrailkeeperError

# Each command's module is imported only when that command runs (or help lists them all):
# together they import nearly everything, about 0.6 s, which `verify` or `search` alone
# need not pay. Name -> "module:object".
COMMANDS = {
    "serve": "trailkeeper.cli.serve:serve",
    "search": "trailkeeper.cli.search:search",
    "import": "trailkeeper.cli.transfer:import_",
    "tail": "trailkeeper.cli.transfer:tail",
    "token": "trailkeeper.cli.tokens:token",  # API tokens
    "retention": "trailkeeper.cli.retention:retention",  # database retention
    "config": "trailkeeper.cli.config:config",  # coverage, policy, denylist, redaction…
    "rules": "trailkeeper.cli.rules:rules",  # Sigma detection rules: list, lint, test
    "alerts": "trailkeeper.cli.alerts:alerts",  # alerts raised by detection rules
    "verify": "trailkeeper.cli.verify:verify",  # prove the log unaltered
    "integrity": "trailkeeper.cli.integrity:integrity",  # signing key, tree, checkpoint
    # Users, groups and grants (access control).
    "user": "trailkeeper.cli.users:user",
    "group": "trailkeeper.cli.users:group",
    "grant": "trailkeeper.cli.users:grant",
    "revoke": "trailkeeper.cli.users:revoke",
    "grants": "trailkeeper.cli.users:grants",
}


class LazyGroup(click.Group):
    """A group whose commands are imported by name when needed (click's documented pattern
    for lazily loaded subcommands)."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module, name = self.lazy[cmd_name].split(":")
        command = getattr(importlib.import_module(module), name)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
        return command


@click.group(cls=LazyGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trailkeeper")
def cli() -> None:
    """Trailkeeper: keep, search, export, watch and prove an audit trail."""


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
