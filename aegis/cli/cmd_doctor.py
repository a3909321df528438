"""``aegis doctor``: read-only readiness checks (operator contract, "Service Readiness")."""

from __future__ import annotations

import click


@click.command(
    "doctor",
    help=(
        "Read-only health checks: config, store, directories and modes, keys, sockets,\n"
        "audit log, tools. Exits 7 when any check fails.\n\n"
        "Example:\n\n"
        "  aegis doctor --json"
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def doctor_cmd(as_json: bool) -> None:
    """Run the doctor checks."""
    from dataclasses import asdict

    from aegis.cli.render import emit_json, print_table
    from aegis.config import load_config
    from aegis.doctor import run_checks
    from aegis.errors import EnvironmentFailure

    checks = run_checks(load_config())
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        emit_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        print_table(
            "aegis doctor",
            ["check", "status", "detail"],
            [[c.name, c.status, c.detail] for c in checks],
        )
    if failed:
        from aegis.config import join_group_hint

        names = ", ".join(c.name for c in failed)
        outsider = any(c.name == "group" for c in failed)
        raise EnvironmentFailure(
            f"{len(failed)} check(s) failed: {names}",
            hint=join_group_hint() if outsider else None,
        )
