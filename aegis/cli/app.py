"""The click group of ``aegis``: the CLI people and agents use to plan, review and inspect.

:mod:`aegis.cli.aegis` is the entry point; it serves ``aegis guard hook`` without
loading this module (a runtime calls the hook before every command).

Subcommands are registered in :data:`aegis.cli.commands.AEGIS_COMMANDS` and
imported lazily. Aegis never mutates the system directly: every change is
planned (``--plan``), reviewed, decided, signed and executed by aegisd.

Example:
    $ aegis apt install nginx --plan
    $ aegis requests --stuck --json
"""

from __future__ import annotations

import click

from aegis.cli.commands import AEGIS_COMMANDS
from aegis.cli.exits import full_table
from aegis.cli.shell import LazyGroup, debug_option

MUTATION_TOOLS = frozenset(
    {"apt", "apt-get", "dpkg", "npm", "pip", "pip3", "docker", "podman", "go", "cargo", "snap"}
)
"""Package tools: without a registered planning command, ``aegis <tool> ...`` is refused."""


@click.group(
    cls=LazyGroup,
    table=AEGIS_COMMANDS,
    refuse_tools=MUTATION_TOOLS,
    context_settings={"help_option_names": ["-h", "--help"]},
    prog="aegis",
    epilog=full_table(),
)
@debug_option
@click.version_option(package_name="aegis", message="aegis %(version)s")
def cli() -> None:
    """Plan, review and inspect package changes; Aegis never mutates directly.

    Every change walks one chain: intent -> analyzer -> local model review ->
    deterministic policy -> signed execution plan -> aegisd -> audit log.

    \b
    Example:
      aegis apt install nginx --plan
      aegis requests --stuck
    """
