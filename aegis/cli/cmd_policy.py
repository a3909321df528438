"""``aegis policy``: the deterministic decision about a plan.

``aegis policy <plan.json>`` evaluates the policy for the plan's request (which
must be ``reviewed``), writes ``policy/<plan_id>.policy.json``, moves the request
to ``policy`` (or ``denied``), prints the fired rules and the required controls,
and exits 0 (allow, allow-with-snapshot), 5 (deny) or 8 (approval required).

Subcommands: ``init`` writes the shipped default policy, ``check`` validates the
policy file (and warns when it approves no source), ``rules`` lists the built-in
rules, ``sources`` lists the host's apt sources with their signers and approval
(``--approve-configured``, root only, appends ``[[sources]]`` entries for them;
see :mod:`aegis.policy.host_sources`).

Every string that came from a plan (package names, versions, analyzer messages)
is printed only through :mod:`aegis.cli.render` / :mod:`aegis.text`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from aegis.api_agent import NO_SOURCE_WARNING

SUBCOMMANDS = ("evaluate", "init", "check", "rules", "sources")


class _DefaultToEvaluate(click.Group):
    """``aegis policy PLAN`` means ``aegis policy evaluate PLAN``."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Route anything that is not a subcommand name to ``evaluate``."""
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["evaluate", *args]
        return super().resolve_command(ctx, args)


@click.group(
    "policy",
    cls=_DefaultToEvaluate,
    invoke_without_command=False,
    subcommand_metavar="PLAN.json [--explain] [--json] | COMMAND [ARGS]...",
    help=(
        "Deterministic policy decision for a plan.\n\n"
        "Example:\n\n"
        "  aegis policy /var/lib/aegis/plans/p-123.json --explain\n\n"
        "Exit codes: 0 allow / allow-with-snapshot, 5 deny, 8 approval required."
    ),
)
def policy_group() -> None:
    """Policy commands."""


def _parse_at(value: str | None) -> Any:
    from datetime import UTC, datetime

    from aegis.errors import InputError
    from aegis.policy.rules import parse_time

    if value is None:
        return datetime.now(UTC)
    parsed = parse_time(value)
    if parsed is None:
        raise InputError(f"--at {value!r} is not a UTC ISO-8601 time like 2026-01-01T00:00:00Z")
    return parsed


def _fired_table(title: str, rows: list[list[str]]) -> None:
    """Fired rules; ids and effects never wrap, the reason takes the remaining width."""
    from rich.table import Table

    from aegis.cli.render import console
    from aegis.text import rich_text

    table = Table(title=title, title_justify="left")
    table.add_column("rule", no_wrap=True)
    table.add_column("effect", no_wrap=True)
    table.add_column("reason", ratio=1, overflow="fold")
    table.add_column("controls")
    for row in rows:
        table.add_row(*(rich_text(cell) for cell in row))
    console().print(table)


def _render(result: Any, path: Path | None, explain: bool, state: str | None) -> None:
    from aegis.cli.render import print_fields, print_table
    from aegis.policy.explain import (
        NOT_FIRED_COLUMNS,
        fired_rows,
        not_fired_rows,
        summary_lines,
    )
    from aegis.text import inert

    fields = summary_lines(result)
    if state is not None:
        fields.append(("request", state))
    print_fields(fields)
    _fired_table("Fired rules", fired_rows(result))
    # Deny phrases once more, unwrapped, next to their rule id: agents match them verbatim.
    for f in result.fired:
        if f.contract:
            click.echo(f"{f.effect.value} {f.rule_id}: {f.contract}")
    if explain:
        print_table("Rules that did not fire", NOT_FIRED_COLUMNS, not_fired_rows(result))
        if result.shadow is not None:
            shadow_rows = [[f.rule_id, f.effect.value, f.reason, ""] for f in result.shadow.fired]
            _fired_table("Shadow policy (not enforced)", shadow_rows)
    if path is not None:
        click.echo(f"policy result: {inert(str(path), max_chars=4096)}")


@policy_group.command(
    "evaluate",
    help=(
        "Evaluate the policy for a reviewed plan and record the decision.\n\n"
        "Example:\n\n  aegis policy plans/p-123.json --json"
    ),
)
@click.argument("plan", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--explain", is_flag=True, help="Also list the rules that did not fire, and why.")
@click.option("--json", "as_json", is_flag=True, help="Print the policy result as JSON.")
@click.option("--dry-run", is_flag=True, help="Evaluate only: write nothing, change no state.")
@click.option(
    "--at",
    "at",
    default=None,
    metavar="TIME",
    help="Evaluate as of this UTC time (tests, audits), e.g. 2026-01-01T00:00:00Z.",
)
def evaluate_cmd(plan: Path, explain: bool, as_json: bool, dry_run: bool, at: str | None) -> None:
    """Evaluate the policy for PLAN."""
    from aegis.api_agent import decide_plan
    from aegis.cli.render import emit_json
    from aegis.config import load_config

    # The same function as the MCP server's policy tool: one code path for both.
    out = decide_plan(load_config(), plan, now=_parse_at(at), dry_run=dry_run, explain=explain)
    result, path = out.extra["result"], out.extra["path"]
    request_id, state = out.doc["request_id"], out.doc["state"]
    if out.doc["recorded"] and not as_json:
        click.echo(
            f"request {request_id} was already decided at {result.evaluated_at}; "
            "showing the recorded result",
            err=True,
        )
    if as_json:
        emit_json(out.doc)
    else:
        _render(result, path, explain, f"{request_id} ({state})")
    if out.error is not None:
        raise out.error


@policy_group.command(
    "init",
    help=(
        "Write the shipped default policy to the policy path (refuses to overwrite).\n\n"
        "Example:\n\n  aegis policy init && $EDITOR /etc/aegis/policy.toml"
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print the path as JSON.")
@click.option("--force", is_flag=True, help="Overwrite an existing policy file.")
def init_cmd(as_json: bool, force: bool) -> None:
    """Write the default policy file."""
    from aegis.cli.render import emit_json
    from aegis.config import load_config
    from aegis.policy.init import write_default_policy
    from aegis.text import inert

    path = write_default_policy(load_config(), force=force)
    if as_json:
        emit_json({"path": str(path)})
    else:
        click.echo(f"policy file: {inert(str(path), max_chars=4096)}")


@policy_group.command(
    "check",
    help=(
        "Validate the policy file and show its version and approved sources.\n\n"
        "Example:\n\n  aegis policy check --json"
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def check_cmd(as_json: bool) -> None:
    """Validate the policy file (exit 3 when unusable: every decision would deny)."""
    from aegis.cli.render import emit_json, print_fields, print_table, warn
    from aegis.codec import to_dict
    from aegis.config import load_config
    from aegis.policy.engine import policy_version
    from aegis.policy.load import load_policy_config

    cfg = load_config()
    config = load_policy_config(cfg.policy_path)
    config_hash, version = policy_version(config)
    warnings = [] if config.sources else [NO_SOURCE_WARNING]
    for message in warnings:
        warn(message)
    if as_json:
        emit_json(
            {
                "path": str(cfg.policy_path),
                "policy_version": version,
                "config_hash": config_hash,
                "config": to_dict(config),
                "warnings": warnings,
            }
        )
        return
    print_fields(
        [
            ("path", str(cfg.policy_path)),
            ("name", config.name),
            ("ruleset", config.ruleset),
            ("version", version),
            ("approval", f"{config.approval.count} ({', '.join(config.approval.roles)})"),
            ("shadow", config.shadow.name if config.shadow is not None else "none"),
        ]
    )
    print_table(
        "Approved sources",
        ("name", "uri", "suite/component", "signer", "may supply"),
        [
            [
                s.name,
                s.uri,
                f"{s.suite}/{s.component}",
                s.signer_fingerprint,
                "any (distribution)" if s.distribution else ", ".join(s.packages) or "nothing",
            ]
            for s in config.sources
        ],
    )


@policy_group.command(
    "rules",
    help="List the built-in rules with their ids and effects (or the one RULE_ID names; "
    "exit 3 when none does).\n\nExample:\n\n  aegis policy rules\n\n"
    "  aegis policy rules repo.unsigned",
)
@click.argument("rule_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def rules_cmd(rule_id: str | None, as_json: bool) -> None:
    """List the built-in rules (or the one RULE_ID names)."""
    from aegis.api_agent import explain_rule
    from aegis.cli.render import emit_json, print_table

    catalog = explain_rule(rule_id)
    if as_json:
        emit_json(catalog)
        return
    print_table(
        "Rules (aegis.rules/1)",
        ("rule", "effect", "overridable", "checks", "contract phrase"),
        [
            [
                r["rule_id"],
                r["effect"],
                "yes" if r["overridable"] else "no",
                r["summary"],
                r["contract"] or "",
            ]
            for r in catalog
        ],
    )


@policy_group.command(
    "sources",
    help=(
        "List the host's apt sources (sources.list, *.list, *.sources under apt's "
        "configuration) with the key their Release verifies with and whether policy "
        "approves them.\n\n"
        "--approve-configured (root only) appends a [[sources]] entry to the policy file "
        "for each source not yet approved whose Release verifies with its own Signed-By "
        "key, and prints each one; running it again adds nothing. Only the host's own "
        "distribution archive keyring makes a source 'distribution = true'; any other "
        "source is written with 'packages = []' for you to fill in.\n\n"
        "Example:\n\n  aegis policy sources\n\n"
        "  sudo aegis policy sources --approve-configured\n\n"
        "--approve-configured exits 3 when the policy file is absent or malformed and 7 "
        "when not run as root (nothing is written)."
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option(
    "--approve-configured",
    is_flag=True,
    help="Root only: write [[sources]] entries for the configured sources that verify.",
)
def sources_cmd(as_json: bool, approve_configured: bool) -> None:
    """List (or approve) the configured apt sources."""
    from datetime import UTC, datetime

    from aegis.cli.render import emit_json, warn
    from aegis.config import load_config
    from aegis.policy.host_sources import approve_configured as approve

    cfg = load_config()
    if approve_configured:
        _print_approval(approve(cfg, datetime.now(UTC)), as_json)
        return
    from aegis.api_agent import sources

    # The same function as the MCP server's sources tool: one code path for both.
    out = sources(cfg)
    if out.extra["warning"] is not None:
        warn(out.extra["warning"])
    if as_json:
        emit_json(out.doc)
        return
    _print_listing(out.extra["listing"].sources)


def _print_approval(done: Any, as_json: bool) -> None:
    from aegis.api_agent import source_row
    from aegis.cli.render import emit_json
    from aegis.text import inert

    if as_json:
        emit_json(
            {
                "path": str(done.path),
                "added": [{"name": n, **source_row(s)} for n, s in done.added],
                "skipped": [{**source_row(s), "reason": why} for s, why in done.skipped],
            }
        )
        return
    for name, s in done.added:
        kind = "distribution" if s.distribution else "packages = [] (list what it may supply)"
        r = s.repository
        click.echo(
            inert(
                f"approved {name}: {r.uri} {r.suite}/{r.component} "
                f"signer {r.signer_fingerprint} ({kind})",
                max_chars=4096,
            )
        )
    for s, why in done.skipped:
        r = s.repository
        head = "unchanged" if s.approved_as is not None else "not approved"
        click.echo(inert(f"{head}: {r.uri} {r.suite}/{r.component}: {why}", max_chars=4096))
    if done.added:
        click.echo(f"policy file: {inert(str(done.path), max_chars=4096)}")
    else:
        click.echo("nothing to add: the policy file is unchanged")


def _print_listing(sources: Any) -> None:
    from aegis.text import inert

    # One block per source, not a table: fingerprints and paths must never fold.
    for s in sources:
        r = s.repository
        if s.approved_as is not None:
            approval = f"yes, as {s.approved_as!r}"
        elif s.refusal is None:
            approval = "no (--approve-configured would approve it)"
        else:
            approval = f"no, and cannot be approved automatically: {s.refusal}"
        signer = f", signer {r.signer_fingerprint}" if r.signer_fingerprint else ""
        until = f"Valid-Until {r.valid_until}" if r.valid_until else "no Valid-Until"
        flags = "".join(
            f" ({flag})" for flag, on in (("EXPIRED", r.expired), ("FROZEN", r.frozen)) if on
        )
        for line in (
            f"{r.uri} {r.suite}/{r.component}",
            f"  file       {s.entry.file}",
            f"  signature  {r.signature}{signer} (Signed-By: {r.signed_by_form})",
            f"  release    Date {r.date or '-'}, {until}{flags}",
            f"  approved   {approval}",
        ):
            click.echo(inert(line, max_chars=4096))
    if not sources:
        click.echo("no apt source is configured")
