"""``aegis fleet plan`` and ``aegis fleet cohort``: cohorts of hosts making the same change.

Read-only like every planning command: they plan, review, decide and compute cohorts;
approving a cohort is ``aegisctl approve --cohort HASH``, and each host still signs and
applies its own execution plan (docs/operator-guide.md "Fleets").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


@click.group(
    "fleet",
    help=(
        "Plan one change across hosts and group them into cohorts.\n\n"
        "Example:\n\n"
        "  aegis fleet plan --hosts hosts.toml -- apt install nginx"
    ),
)
def fleet_group() -> None:
    """Fleet commands."""


def _cohort_rows(doc: dict[str, Any]) -> list[str]:
    lines = []
    for c in doc.get("changes", []):
        before = c.get("from") or "-"
        lines.append(f"{c['action']} {c['name']} {before} -> {c.get('to') or '-'}")
    return lines


@fleet_group.command(
    "plan",
    help=(
        "Plan the same intent on this host, or on every host of --hosts, and group the\n"
        "hosts whose delta, repository evidence and decision are equal into cohorts.\n\n"
        "Without --hosts: plan, review, decide and compute the cohort of this host in one\n"
        "go (what the Ansible module aegis_plan runs). A denied plan exits 5; a plan that\n"
        "needs approval exits 0 (approve its cohort with aegisctl approve --cohort).\n"
        "With --hosts FILE ([[hosts]] tables of name, home (its AEGIS_HOME) and env): every\n"
        "host, --forks at a time; exit 7 when a host could not be planned, 5 when one was\n"
        "denied. The intent is any ecosystem's; --where and --registry give its place and\n"
        "registry, the same on every host. An intent no host could plan exits 3 at once.\n\n"
        "Example:\n\n"
        "  aegis fleet plan --hosts hosts.toml --forks 4 -- apt install nginx\n"
        "  aegis fleet plan --where /srv/app/venv -- pip install requests==2.32.3"
    ),
)
@click.argument("intent", nargs=-1, required=True)
@click.option(
    "--hosts",
    "hosts_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML file of local hosts ([[hosts]] name, home, env).",
)
@click.option("--forks", default=4, show_default=True, type=click.IntRange(1, 256))
@click.option("--no-review", is_flag=True, help="Record a skipped review (no model).")
@click.option("--no-contents", is_flag=True, help="Skip downloading and scanning the .debs.")
@click.option(
    "--where",
    default=None,
    help="Where the change lands on every host, for ecosystems that take a place (pip "
    "--venv, npm --project, go --module, image --storage).",
)
@click.option(
    "--registry",
    default=None,
    help="The registry or index on every host, for ecosystems that take one (pip "
    "--index-url, npm --registry, go --proxy, cargo --registry-dir or --index).",
)
@_JSON
def plan_cmd(
    *,
    intent: tuple[str, ...],
    hosts_file: Path | None,
    forks: int,
    no_review: bool,
    no_contents: bool,
    where: str | None,
    registry: str | None,
    as_json: bool,
) -> None:
    """Plan on this host or on a list of hosts."""
    from aegis.cli.render import emit_json, print_table
    from aegis.config import load_config
    from aegis.errors import EnvironmentFailure, PolicyDenied
    from aegis.fleet.plan import plan_fleet, plan_this_host, read_hosts

    cfg = load_config()
    if hosts_file is None:
        row = plan_this_host(
            cfg,
            intent,
            review=not no_review,
            contents=not no_contents,
            where=where,
            registry=registry,
        )
        if as_json:
            emit_json(row)
        else:
            print_table(
                None,
                ["request", "decision", "cohort"],
                [[row["request_id"], row["decision"], row["cohort_hash"] or "-"]],
            )
            for line in _cohort_rows(row.get("cohort") or {}):
                click.echo(f"  {line}")
        if row["decision"] == "deny":
            raise PolicyDenied(f"policy denied request {row['request_id']}")
        return
    report = plan_fleet(
        cfg,
        read_hosts(hosts_file),
        intent,
        forks=forks,
        review=not no_review,
        contents=not no_contents,
        where=where,
        registry=registry,
    )
    if as_json:
        emit_json(report)
    else:
        print_table(
            "Hosts",
            ["host", "request", "decision", "cohort"],
            [
                [
                    r["host"],
                    r.get("request_id") or "-",
                    r.get("decision") or f"error: {r.get('error')}",
                    (r.get("cohort_hash") or "-")[:16],
                ]
                for r in report["hosts"]
            ],
        )
        for c in report["cohorts"]:
            click.echo(f"cohort {c['cohort_hash']} ({len(c['hosts'])} hosts)")
            for line in _cohort_rows(c["document"]):
                click.echo(f"  {line}")
            click.echo(f"  approve: aegisctl approve --cohort {c['cohort_hash']} --reason TEXT")
    failed = [
        r["host"]
        for r in report["hosts"]
        if not r["ok"] and r.get("exit") != PolicyDenied.exit_code
    ]
    if failed:
        raise EnvironmentFailure(f"{len(failed)} host(s) could not be planned: {', '.join(failed)}")
    denied = [r["host"] for r in report["hosts"] if r.get("decision") == "deny"]
    if denied:
        raise PolicyDenied(f"policy denied the change on {', '.join(denied)}")


@fleet_group.command(
    "cohort",
    help=(
        "Show the cohort of a request waiting in 'policy' on this host and write its\n"
        "document to <state>/cohorts/<hash>.cohort.json.\n\n"
        "Example:\n\n  aegis fleet cohort r-123 --json"
    ),
)
@click.argument("target", metavar="PLAN.json|REQUEST-ID")
@_JSON
def cohort_cmd(target: str, as_json: bool) -> None:
    """Show one request's cohort."""
    from aegis.cli.render import emit_json, print_fields, print_path
    from aegis.config import load_config
    from aegis.errors import PolicyDenied
    from aegis.fleet.service import host_cohort

    hc = host_cohort(load_config(), target)
    if hc.cohort_hash is None:
        raise PolicyDenied(f"{target} was denied; a denied plan is in no cohort")
    if as_json:
        emit_json(
            {
                "request_id": hc.request_id,
                "decision": hc.decision,
                "cohort_hash": hc.cohort_hash,
                "cohort_path": str(hc.path),
                "cohort": hc.document,
            }
        )
        return
    print_fields([("request", hc.request_id), ("decision", hc.decision)])
    for line in _cohort_rows(hc.document or {}):
        click.echo(f"  {line}")
    click.echo(f"cohort: {hc.cohort_hash}")
    if hc.path is not None:
        print_path("cohort document", hc.path)
