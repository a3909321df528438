"""``aegis unattended run``: one automatic upgrade pass through the whole chain."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("unattended")
def unattended_group() -> None:
    """Automatic upgrades from the policy's automation sources (aegis-unattended.timer).

    \b
    Example:
      aegis unattended run --json
    """


@unattended_group.command("run")
@click.option(
    "--socket", type=click.Path(path_type=Path), default=None, help="aegisd's socket path."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def run_cmd(socket: Path | None, as_json: bool) -> None:
    """One automatic upgrade pass: only what the automation scope allows is applied.

    Plans apt upgrade, reviews, decides; signs with the automation key and applies only
    an allow, upgrade-only plan from automation sources ([automation] in policy). Anything
    else stays a request waiting for a human (exit 8), with the reasons. Needs root (the
    automation key is root's). A needed reboot is reported, never performed.

    \b
    Example:
      aegis unattended run --json
    """
    from datetime import UTC, datetime

    from aegis.cli import render
    from aegis.config import load_config
    from aegis.errors import ApprovalRequired, PolicyDenied
    from aegis.unattended.run import last_run_path, run_once

    cfg = load_config()
    # Not aegis.api's now_utc (the same clock read): importing the API loads the store,
    # which the pass loads on a thread while apt runs (aegis/unattended/run.py).
    report = run_once(cfg, datetime.now(UTC), socket=socket)
    if as_json:
        render.emit_json(report.as_dict())
    else:
        render.print_line(f"unattended: {report.status}: {report.detail}")
        if report.request_id:
            render.print_line(f"request: {report.request_id}")
        for p in report.packages:
            render.print_line(f"  {p}")
        for r in report.reasons:
            render.print_line(f"  why: {r}")
        for old in report.superseded:
            render.print_line(f"superseded (cancelled): {old}, an earlier pass's request")
        if report.execution_plan:
            render.print_path("execution plan", Path(report.execution_plan))
        if report.reboot_required:
            who = ", ".join(report.reboot_packages) or "unnamed packages"
            render.print_line(f"reboot required (by {who}); Aegis never reboots")
        render.print_path("report", last_run_path(cfg))
    if report.status in ("applied", "nothing-to-do", "disabled"):
        _end_fast()
    if report.status == "waiting":
        raise ApprovalRequired(
            f"request {report.request_id} waits for a human: {'; '.join(report.reasons[:3])}",
            hint=f"aegis show {report.request_id}; aegisctl approve/sign as for any change",
        )
    if report.status == "denied":
        raise PolicyDenied(f"policy denied the automatic upgrade (request {report.request_id})")


def _end_fast() -> None:
    """Skip the interpreter's teardown on this successful exit (aegis/cli/aegis.py).

    The exit itself checks that the pass closed every store connection first.
    """
    from aegis.cli.aegis import skip_teardown

    skip_teardown()
