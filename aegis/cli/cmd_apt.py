"""``aegis apt``: plan apt changes (read-only) and create the change request.

``aegis apt install PKG... --plan``, ``aegis apt upgrade --plan``,
``aegis apt update --plan``, ``aegis apt remove PKG... --plan`` (and ``purge``)
analyze the change without touching the system, write ``plans/<plan_id>.json``
through :func:`aegis.api.submit_plan` (request intent -> analyzed) and print the
plan as a diff (``+`` install, ``~`` upgrade, ``v`` downgrade, ``-`` remove,
``x`` purge, ``=`` held back, ``r`` reinstall) with risk signals beside each
line, then the plan path. ``--json`` prints ``{"plan", "plan_path", "plan_hash",
"request_id"}``.

Without ``--plan`` the command is refused (exit 3) with the plan flow: Aegis never
mutates directly. Bad names are refused (exit 3) before anything runs and no
request row is created. Everything that came from apt or a package is printed
only through :mod:`aegis.text`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from aegis.model import Operation, Plan

SYMBOLS = {
    "install": "+",
    "upgrade": "~",
    "downgrade": "v",
    "remove": "-",
    "purge": "x",
    "held-back": "=",
    "reinstall": "r",
}


UNPLANNED_VERBS = frozenset(
    {
        "autoremove",
        "autopurge",
        "reinstall",
        "dselect-upgrade",
        "build-dep",
        "satisfy",
        "markauto",
        "unmarkauto",
    }
)
"""apt verbs that change packages but have no planning command: refused with the plan flow."""


class _AptGroup(click.Group):
    """Refuses mutation-shaped apt verbs it cannot plan (exit 3), not as a usage error."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] in UNPLANNED_VERBS:
            from aegis.cli.render import PLAN_FLOW, DirectMutationRefusedError
            from aegis.text import inert

            planned = ", ".join(sorted(self.list_commands(ctx)))
            raise DirectMutationRefusedError(
                f"refusing to run 'aegis apt {inert(' '.join(args), max_chars=200)}': Aegis "
                f"never mutates directly, and it plans only apt {planned}",
                hint=PLAN_FLOW.format(example="apt upgrade"),
            )
        return super().resolve_command(ctx, args)


class _TargetsCommand(click.Command):
    """A planning command taking package targets.

    An option-shaped word (``-oAPT::Get::AllowUnauthenticated=1``) is a bad target name,
    refused by the name grammar (exit 3) before click could call it a usage error.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from aegis.ecosystems.apt.names import parse_target

        known = {o for p in self.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}
        for arg in args:
            if arg == "--":
                break
            if arg.startswith("-") and arg.split("=", 1)[0] not in known:
                parse_target(arg)  # raises InputError: starts with '-'
        return super().parse_args(ctx, args)


@click.group(
    "apt",
    cls=_AptGroup,
    help=(
        "Plan apt changes (read-only); nothing runs until the plan is reviewed, decided,\n"
        "signed and applied by aegisd.\n\n"
        "Example:\n\n"
        "  aegis apt install nginx --plan\n\n"
        "  aegis apt upgrade --plan --json"
    ),
)
def apt_group() -> None:
    """Group the apt-shaped planning verbs; the help text is set on the decorator."""


def _probe_option(f: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--probe",
        "probes",
        multiple=True,
        help="A health probe aegisd runs after the change, with policy's (repeatable): "
        "unit:NAME, tcp:127.0.0.1:PORT, http:[STATUS:]http://127.0.0.1:PORT/PATH, "
        "command:USER[:TIMEOUT]:/PROGRAM ARG...",
    )(f)


def _common(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option(
        "--json", "as_json", is_flag=True, help="Print the plan and its path as JSON."
    )(f)
    f = click.option(
        "--no-contents",
        is_flag=True,
        help="Skip downloading and scanning the .deb files (faster, less evidence).",
    )(f)
    f = click.option("--plan", "plan", is_flag=True, help="Required: only plan, never change.")(f)
    return f


def _run(
    operation: Operation,
    targets: tuple[str, ...],
    *,
    plan: bool,
    no_contents: bool,
    as_json: bool,
    typed: str,
    probes: tuple[str, ...] = (),
) -> None:
    from aegis.cli.render import refuse_direct_mutation
    from aegis.ecosystems.apt.names import parse_targets
    from aegis.health.spec import parse_probe

    # Names are checked before anything runs: a bad name creates no request row.
    parse_targets(targets)
    checked = tuple(parse_probe(p) for p in probes)
    if not plan:
        raise refuse_direct_mutation(typed)

    from aegis.api_agent import plan_change
    from aegis.cli.render import PEOPLE
    from aegis.config import load_config

    # The same function as the MCP server's plan tool: one code path for both.
    out = plan_change(
        load_config(),
        "apt",
        operation.value,
        targets,
        contents=not no_contents,
        probes=checked,
        preload=() if as_json else PEOPLE,
    )
    if as_json:
        from aegis.cli.render import emit_json

        emit_json(out.doc)
    else:
        render_plan(out.extra["plan"])
        from aegis.cli.render import print_path

        click.echo(f"request: {out.doc['request_id']}")
        print_path("plan", out.extra["planned"].plan_path)
    if out.error is not None:
        raise out.error


def diff_lines(plan: Plan) -> list[str]:
    """The plan as diff lines (untrusted text inside; render through aegis.text)."""
    by_pkg: dict[str, list[str]] = {}
    for s in plan.signals:
        if s.package:
            by_pkg.setdefault(s.package, []).append(s.name)
    lines = []
    for c in plan.changes:
        sym = SYMBOLS.get(c.action.value, "?")
        if c.action.value in ("install",):
            ver = f"{c.candidate_version}"
        elif c.action.value in ("remove", "purge"):
            ver = f"{c.current_version}"
        else:
            ver = f"{c.current_version} -> {c.candidate_version}"
        sigs = sorted(set(by_pkg.get(c.name, [])))
        tail = f"   [{', '.join(sigs)}]" if sigs else ""
        arch = f" ({c.arch})" if c.arch else ""  # pip and npm have no architecture
        lines.append(f"{sym} {c.name} {ver}{arch}{tail}")
    return lines


def render_plan(plan: Plan) -> None:
    """Print the plan for people: diff, general signals, repositories, command."""
    from aegis.cli.render import print_line

    op = plan.intent.operation.value
    print_line(
        f"{plan.intent.tool.value} {op} {' '.join(plan.intent.targets)}".rstrip(), style="bold"
    )
    if plan.failure is not None:
        print_line(f"analysis failed ({plan.failure.kind}): {plan.failure.message}", style="red")
    lines = diff_lines(plan)
    for line in lines:
        print_line(line)
    if not lines and plan.failure is None and op != "update":
        print_line("nothing to change")
    general = [s for s in plan.signals if not s.package] + [
        s for s in plan.signals if s.package and s.package not in {c.name for c in plan.changes}
    ]
    for s in general:
        who = f" {s.package}" if s.package else ""
        print_line(f"! {s.name}{who}: {s.detail}")
    for r in plan.repositories:
        print_line(
            f"repo {r.uri} {r.suite}/{r.component}: signature {r.signature}, "
            f"signer {r.signer_fingerprint or '-'}, Valid-Until {r.valid_until or '-'}"
            + (f", problems: {', '.join(r.problems)}" if r.problems else "")
        )
    for r in plan.other_sources:
        if r.problems:
            print_line(
                f"source not used {r.uri} {r.suite}/{r.component}: "
                f"signature {r.signature}, problems: {', '.join(r.problems)}"
            )
    if plan.config.flags:
        print_line(f"apt/dpkg configuration: {', '.join(plan.config.flags)}")
    if plan.findings:
        print_line(f"content findings: {len(plan.findings)} (see the plan's findings)")
    if plan.vulnerabilities:
        print_line(f"vulnerabilities: {len(plan.vulnerabilities)}")
    print_line(f"command: {list(plan.command_preview)}")


def _op(name: str) -> Operation:
    from aegis.model import Operation

    return Operation(name)


@apt_group.command(
    "install",
    cls=_TargetsCommand,
    help="Plan installing packages.\n\nExample:\n\n  aegis apt install nginx --plan",
)
@click.argument("packages", nargs=-1, required=True)
@_common
@_probe_option
def install_cmd(
    packages: tuple[str, ...], plan: bool, no_contents: bool, as_json: bool, probes: tuple[str, ...]
) -> None:
    """Plan an install."""
    _run(
        _op("install"),
        packages,
        plan=plan,
        no_contents=no_contents,
        as_json=as_json,
        typed="apt install " + " ".join(packages),
        probes=probes,
    )


@apt_group.command(
    "upgrade",
    help="Plan upgrading installed packages.\n\nExample:\n\n  aegis apt upgrade --plan",
)
@_common
@_probe_option
def upgrade_cmd(plan: bool, no_contents: bool, as_json: bool, probes: tuple[str, ...]) -> None:
    """Plan an upgrade."""
    _run(
        _op("upgrade"),
        (),
        plan=plan,
        no_contents=no_contents,
        as_json=as_json,
        typed="apt upgrade",
        probes=probes,
    )


_FULL_UPGRADE_HELP = (
    "Plan upgrading installed packages, installing or removing packages where an\n"
    "upgrade needs it (apt-get full-upgrade; what 'aegis apt upgrade' keeps back).\n\n"
    "Example:\n\n  aegis apt full-upgrade --plan"
)


@apt_group.command("full-upgrade", help=_FULL_UPGRADE_HELP)
@_common
def full_upgrade_cmd(plan: bool, no_contents: bool, as_json: bool) -> None:
    """Plan a full upgrade."""
    _run(
        _op("full-upgrade"),
        (),
        plan=plan,
        no_contents=no_contents,
        as_json=as_json,
        typed="apt full-upgrade",
    )


@apt_group.command(
    "dist-upgrade",
    help=_FULL_UPGRADE_HELP.replace("full-upgrade --plan", "dist-upgrade --plan")
    + "\n\n(apt-get's older name of full-upgrade: the same plan.)",
)
@_common
def dist_upgrade_cmd(plan: bool, no_contents: bool, as_json: bool) -> None:
    """Plan a full upgrade under apt-get's older name."""
    _run(
        _op("full-upgrade"),
        (),
        plan=plan,
        no_contents=no_contents,
        as_json=as_json,
        typed="apt dist-upgrade",
    )


@apt_group.command(
    "update",
    help=(
        "Plan refreshing the package lists (apt-get update).\n\n"
        "Example:\n\n  aegis apt update --plan"
    ),
)
@_common
def update_cmd(plan: bool, no_contents: bool, as_json: bool) -> None:
    """Plan an update."""
    _run(_op("update"), (), plan=plan, no_contents=no_contents, as_json=as_json, typed="apt update")


@apt_group.command(
    "remove",
    cls=_TargetsCommand,
    help="Plan removing packages.\n\nExample:\n\n  aegis apt remove nginx --plan",
)
@click.argument("packages", nargs=-1, required=True)
@_common
def remove_cmd(packages: tuple[str, ...], plan: bool, no_contents: bool, as_json: bool) -> None:
    """Plan a removal."""
    _run(
        _op("remove"),
        packages,
        plan=plan,
        no_contents=no_contents,
        as_json=as_json,
        typed="apt remove " + " ".join(packages),
    )


@apt_group.command(
    "purge",
    cls=_TargetsCommand,
    help="Plan purging packages (removal with configuration).\n\n"
    "Example:\n\n  aegis apt purge nginx --plan",
)
@click.argument("packages", nargs=-1, required=True)
@_common
def purge_cmd(packages: tuple[str, ...], plan: bool, no_contents: bool, as_json: bool) -> None:
    """Plan a purge."""
    _run(
        _op("purge"),
        packages,
        plan=plan,
        no_contents=no_contents,
        as_json=as_json,
        typed="apt purge " + " ".join(packages),
    )
