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
    from aegis.api_agent import doctor
    from aegis.cli.render import emit_json, print_table
    from aegis.config import load_config

    # The same function as the MCP server's doctor tool: one code path for both.
    out = doctor(load_config())
    if as_json:
        emit_json(out.doc)
    else:
        print_table(
            "aegis doctor",
            ["check", "status", "detail"],
            [[c.name, c.status, c.detail] for c in out.extra["checks"]],
        )
    if out.error is not None:
        raise out.error
