"""``aegis pip install REQ... --venv DIR --plan``: plan a pip change (read-only).

The plan resolves the exact set with ``pip install --dry-run --report`` against one index
(``--index-url``, default pip's own), for one existing virtual environment, and records
every artifact by URL and SHA-256 (docs/ecosystems.md). ``--managed NAME`` plans into the
Aegis-managed venv ``/var/lib/aegis/managed/python/NAME``, which the apply creates.
Bad requirements (URLs, paths, options, markers, non-ASCII names) are refused (exit 3)
before anything runs, and without ``--plan`` the command is refused like every
mutation-shaped command. ``--json`` prints ``{"plan", "plan_path", "plan_hash", "request_id"}``.
"""

from __future__ import annotations

import click

from aegis.cli.planning_cli import target_command, verb_group

_VERBS = frozenset({"install"})


_PipGroup = verb_group(
    _VERBS, "pip install", "pip install <requirement> --venv DIR|--target DIR|--managed NAME"
)


_ReqCommand = target_command("aegis.ecosystems.pip.names:check_target")


@click.group(
    "pip",
    cls=_PipGroup,
    help=(
        "Plan pip changes into a virtual environment or a --target directory (read-only);\n"
        "nothing runs until the plan is reviewed, decided, signed and applied by aegisd.\n\n"
        "Example:\n\n"
        "  aegis pip install requests==2.32.3 --venv /srv/app/.venv --plan"
    ),
)
def pip_group() -> None:
    """Group the pip planning verbs; the help text is set on the decorator."""


@pip_group.command(
    "install",
    cls=_ReqCommand,
    help="Plan installing requirements into a venv, or into a directory with\n"
    "'pip install --target' (the system python3's pip; never its site-packages).\n\n"
    "Example:\n\n"
    "  aegis pip install requests --venv /srv/app/.venv --plan\n"
    "  aegis pip install requests --target /srv/app/lib --plan\n"
    "  aegis pip install requests --managed tools --plan",
)
@click.argument("requirements", nargs=-1, required=True)
@click.option("--venv", "venv", default=None, help="An existing virtual environment.")
@click.option("--target", "target", default=None, help="Or: an existing directory (--target).")
@click.option(
    "--managed",
    "managed",
    default=None,
    metavar="NAME",
    help="Or: the Aegis-managed venv NAME (/var/lib/aegis/managed/python/NAME), "
    "created by the apply.",
)
@click.option(
    "--index-url", "index_url", default=None, help="The index (default: pip's own, PyPI)."
)
@click.option("--plan", "plan", is_flag=True, help="Required: only plan, never change.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and its path as JSON.")
def install_cmd(  # noqa: PLR0917 - one parameter per click option
    requirements: tuple[str, ...],
    venv: str | None,
    target: str | None,
    managed: str | None,
    index_url: str | None,
    plan: bool,
    as_json: bool,
) -> None:
    """Plan a pip install."""
    import os

    from aegis.cli.render import refuse_direct_mutation
    from aegis.ecosystems.pip.names import (
        DEFAULT_INDEX,
        MANAGED_KIND,
        TARGET_KIND,
        check_index_url,
        check_targets,
        check_venv_name,
    )
    from aegis.errors import InputError

    check_targets(requirements)
    check_index_url(index_url or DEFAULT_INDEX)
    if sum(x is not None for x in (venv, target, managed)) > 1:
        raise InputError("--venv, --target and --managed name two places or more: give one")
    # Paths, always absolute: "--venv target:x" is the directory ./target:x.
    where = (
        MANAGED_KIND + check_venv_name(managed)
        if managed is not None
        else TARGET_KIND + os.path.abspath(target)
        if target is not None
        else os.path.abspath(venv)
        if venv is not None
        else None
    )
    if not plan:
        raise refuse_direct_mutation("pip install " + " ".join(requirements))

    from aegis.api_agent import plan_change
    from aegis.cli.render import PEOPLE
    from aegis.config import load_config

    # The same function as the MCP server's plan tool: one code path for both. It refuses
    # a missing or bad --venv (exit 3) before anything runs.
    out = plan_change(
        load_config(),
        "pip",
        "install",
        requirements,
        where=where,
        registry=index_url,
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
