"""``aegis npm install PKG... --project DIR|--global --plan``: plan an npm change (read-only).

The plan is the change to the project's ``package.json`` and ``package-lock.json``, resolved
by ``npm install --package-lock-only --ignore-scripts`` in a scratch copy against one
registry (``--registry``, default npm's own), with every package's version, resolved URL,
integrity, install scripts and ``bin`` entries (docs/ecosystems.md). Bad targets (git,
tarball, ``file:``, URL specs, aliases, options) are refused (exit 3) before anything runs;
without ``--plan`` the command is refused like every mutation-shaped command.
``--global`` plans the same change to the Aegis-managed prefix (``/var/lib/aegis/managed/npm``).
"""

from __future__ import annotations

import click

from aegis.cli.planning_cli import target_command, verb_group

_VERBS = frozenset({"install"})


_NpmGroup = verb_group(_VERBS, "npm install", "npm install <package> --project DIR|--global")


_PkgCommand = target_command("aegis.ecosystems.npm.names:check_target")


@click.group(
    "npm",
    cls=_NpmGroup,
    help=(
        "Plan npm changes to a project or the managed prefix (read-only); nothing runs\n"
        "until the plan is reviewed, decided, signed and applied by aegisd.\n\n"
        "Example:\n\n"
        "  aegis npm install lodash@4.17.21 --project /srv/app --plan"
    ),
)
def npm_group() -> None:
    """Group the npm planning verbs; the help text is set on the decorator."""


@npm_group.command(
    "install",
    cls=_PkgCommand,
    help="Plan installing packages into a project, or into the Aegis-managed prefix\n"
    "(--global: /var/lib/aegis/managed/npm, commands in its bin/).\n\nExample:\n\n"
    "  aegis npm install lodash --project /srv/app --plan\n"
    "  aegis npm install typescript@5 --global --plan",
)
@click.argument("packages", nargs=-1, required=True)
@click.option("--project", "project", default=None, help="The project directory.")
@click.option("--global", "global_", is_flag=True, help="Into the Aegis-managed prefix instead.")
@click.option("--registry", "registry", default=None, help="The registry (default: npm's own).")
@click.option("--plan", "plan", is_flag=True, help="Required: only plan, never change.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and its path as JSON.")
def install_cmd(  # noqa: PLR0917 - one parameter per click option
    packages: tuple[str, ...],
    project: str | None,
    global_: bool,
    registry: str | None,
    plan: bool,
    as_json: bool,
) -> None:
    """Plan an npm install."""
    import os

    from aegis.cli.render import refuse_direct_mutation
    from aegis.ecosystems.npm.names import DEFAULT_REGISTRY, check_targets
    from aegis.ecosystems.pip.names import check_index_url
    from aegis.errors import InputError

    check_targets(packages)
    check_index_url(registry or DEFAULT_REGISTRY)
    if global_ and project is not None:
        raise InputError("--project and --global name two places: give one")
    # A project is always a path: "--project global" is the directory ./global.
    where = "global" if global_ else os.path.abspath(project) if project is not None else None
    if not plan:
        raise refuse_direct_mutation("npm install " + " ".join(packages))

    from aegis.api_agent import plan_change
    from aegis.cli.render import PEOPLE
    from aegis.config import load_config

    # The same function as the MCP server's plan tool: one code path for both. It refuses
    # a missing or bad --project (exit 3) before anything runs.
    out = plan_change(
        load_config(),
        "npm",
        "install",
        packages,
        where=where,
        registry=registry,
        preload=() if as_json else PEOPLE,
    )
    result, planned = out.extra["plan"], out.extra["planned"]
    if as_json:
        from aegis.cli.render import emit_json

        emit_json(out.doc)
    else:
        from aegis.cli.cmd_apt import render_plan
        from aegis.cli.render import print_line, print_path

        render_plan(result)
        print_line(f"into {result.intent.location} from {result.intent.registry}")
        click.echo(f"request: {planned.request_id}")
        print_path("plan", planned.plan_path)
    if out.error is not None:
        raise out.error
