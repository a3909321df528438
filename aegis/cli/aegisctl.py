"""``aegisctl``: the operator CLI for the privileged half (sign, apply, resolve).

Subcommands are registered in :data:`aegis.cli.commands.AEGISCTL_COMMANDS` and
imported lazily.

Example:
    $ aegisctl sign --plan plans/p-1.json --key signer.key --signer ops1
    $ aegisctl apply --execution-plan execution-plans/x.json --public-key-hex K
"""

from __future__ import annotations

import click

from aegis.cli.commands import AEGISCTL_COMMANDS
from aegis.cli.exits import full_table
from aegis.cli.shell import LazyGroup, debug_option


@click.group(
    cls=LazyGroup,
    table=AEGISCTL_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
    prog="aegisctl",
    epilog=full_table(),
)
@debug_option
@click.version_option(package_name="aegis", message="aegisctl %(version)s")
def cli() -> None:
    """Operator commands: keys, approvals, signing, applying through aegisd, resolving.

    \b
    Example:
      aegisctl sign --plan plans/p-1.json --key signer.key --signer ops1
      aegisctl apply --execution-plan execution-plans/x.json --public-key-hex K
    """


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="aegisctl")
