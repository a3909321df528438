"""``aegis cargo install CRATE[@VERSION] --plan``: plan a crate binary install (read-only).

The plan installs one crate's binaries into the Aegis-managed root (``cargo install
--root``, docs/ecosystems.md), from one source: a cargo local registry (``--registry-dir
DIR``) or a sparse index (``--index URL``). The exact version, the ``.crate``'s cksum, its
packaged ``Cargo.lock``, build scripts, proc-macros and native links are the evidence. Bad
targets (ranges, git, paths, URLs, options) are refused (exit 3) before anything runs;
without ``--plan`` the command is refused like every mutation-shaped command.
"""

from __future__ import annotations

from pathlib import Path

import click

from aegis.cli.planning_cli import target_command, verb_group

_VERBS = frozenset({"install"})


_CargoGroup = verb_group(_VERBS, "cargo install", "cargo install <crate> --registry-dir DIR")


_CrateCommand = target_command("aegis.ecosystems.cargo.names:check_target")


@click.group(
    "cargo",
    cls=_CargoGroup,
    help=(
        "Plan cargo crate installs (read-only); nothing runs until the plan is reviewed,\n"
        "decided, signed and applied by aegisd.\n\n"
        "Example:\n\n"
        "  aegis cargo install ripgrep@14.1.0 --registry-dir /srv/crates --plan"
    ),
)
def cargo_group() -> None:
    """Group the cargo planning verbs; the help text is set on the decorator."""


@cargo_group.command(
    "install",
    cls=_CrateCommand,
    help="Plan installing one crate's binaries into the Aegis-managed root.\n\nExample:\n\n"
    "  aegis cargo install ripgrep --index https://index.crates.io/ --plan",
)
@click.argument("crates", nargs=-1, required=True)
@click.option("--registry-dir", "registry_dir", default=None, help="A cargo local registry.")
@click.option("--index", "index", default=None, help="A sparse index URL.")
@click.option("--plan", "plan", is_flag=True, help="Required: only plan, never change.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and its path as JSON.")
def install_cmd(
    crates: tuple[str, ...],
    registry_dir: str | None,
    index: str | None,
    plan: bool,
    as_json: bool,
) -> None:
    """Plan a cargo install."""
    from aegis.cli.render import refuse_direct_mutation
    from aegis.ecosystems.cargo.names import check_targets
    from aegis.errors import InputError

    check_targets(crates)
    if not plan:
        raise refuse_direct_mutation("cargo install " + " ".join(crates))
    if (registry_dir is None) == (index is None):
        raise InputError(
            "name one source: --registry-dir DIR (a local registry) or --index URL",
            hint='policy approves it in [[registries]] with ecosystem = "cargo"',
        )
    from aegis.api_agent import plan_change
    from aegis.config import load_config

    # The same function as the MCP server's plan tool: one code path for both. A local
    # registry is named by its directory (absolute), an index by its URL.
    source = str(Path(registry_dir).resolve()) if registry_dir is not None else index
    out = plan_change(load_config(), "cargo", "install", crates, registry=source)
    result, planned = out.extra["plan"], out.extra["planned"]
    if as_json:
        from aegis.cli.render import emit_json

        emit_json(out.doc)
    else:
        from aegis.cli.cmd_apt import render_plan
        from aegis.cli.render import print_line, print_path

        render_plan(result)
        if result.ecosystem is not None and result.ecosystem.artifacts:
            deps = len(result.ecosystem.artifacts) - 1
            print_line(f"{deps} locked dependencies (the crate's Cargo.lock), each cksum-checked")
        print_line(f"into {result.intent.location} from {result.intent.registry}")
        click.echo(f"request: {planned.request_id}")
        print_path("plan", planned.plan_path)
    if out.error is not None:
        raise out.error
