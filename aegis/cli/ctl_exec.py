"""``aegisctl apply`` and ``aegisctl revoke``: the operator's side of aegisd.

Each command parses its options, calls one function of :mod:`aegis.execute.service`
and renders the result; untrusted text (apt's output) is shown only inertly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def _cfg() -> Any:
    from aegis.config import load_config

    return load_config()


def _render_apply(outcome: Any) -> None:
    from aegis.cli import render

    ans = outcome.answer
    rows: list[tuple[str, object]] = [
        ("execution id", outcome.execution_id),
        ("request", outcome.request_id or "-"),
        ("request state", outcome.state or "-"),
        ("result", ans.get("message", "")),
    ]
    if ans.get("refusal"):
        rows.append(("refusal", ans["refusal"]))
    if ans.get("exit_status") is not None:
        rows.append(("exit status", ans["exit_status"]))
    res = ans.get("result") or {}
    if res.get("snapshot_id"):
        rows.append(("snapshot", res["snapshot_id"]))
    for line in res.get("drift") or []:
        rows.append(("drift", line))
    v = res.get("verification") or {}
    if v:
        rows.append(("verification", f"{v.get('state')} (deadline {v.get('deadline') or '-'})"))
        for p in v.get("probes") or []:
            rows.append(
                (
                    "probe",
                    f"{'ok' if p.get('ok') else 'FAILED'} {p.get('probe')}: {p.get('detail')}",
                )
            )
        if v.get("state") == "verifying" and v.get("confirm") and v.get("confirmed_by") is None:
            rows.append(("next", f"aegisctl confirm {outcome.request_id}"))
    render.print_fields(rows)
    if outcome.result_path:
        render.print_path("executor result", Path(outcome.result_path))


@click.command("apply")
@click.option(
    "--execution-plan",
    "execution_plan",
    required=True,
    type=click.Path(path_type=Path),
    help="Signed execution plan file (execution-plans/<execution_id>.json).",
)
@click.option("--public-key-hex", required=True, help="The signer's public key you trust.")
@click.option(
    "--approval-public-key-hex",
    "approval_keys",
    multiple=True,
    help="Trusted approver public key for the local check (repeatable; ROLE:KEY also "
    "trusts it for ROLE).",
)
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(path_type=Path),
    default=None,
    help="aegisd socket (default /run/aegis/aegisd.sock).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def apply_cmd(
    execution_plan: Path,
    public_key_hex: str,
    approval_keys: tuple[str, ...],
    socket_path: Path | None,
    as_json: bool,
) -> None:
    """Verify a signed execution plan locally, then submit it to aegisd.

    Exits 0 only when the change ran and succeeded; otherwise 3/4 (refused),
    5 (policy), 6 (replayed, revoked, stale), 7 (aegisd unreachable), 9 (the
    command failed) or 10 (interrupted: outcome unknown, see aegisctl resolve).

    \b
    Example:
      aegisctl apply --execution-plan /var/lib/aegis/execution-plans/3f2a...json \\
          --public-key-hex 3b6a27bc...
    """
    from aegis.cli import render
    from aegis.errors import AegisError
    from aegis.execute import service

    cfg = _cfg()
    try:
        outcome = service.apply(
            cfg, execution_plan, public_key_hex, approval_keys=approval_keys, socket=socket_path
        )
    except AegisError as e:
        failed = getattr(e, "outcome", None)
        if failed is not None:
            if as_json:
                render.emit_json(_outcome_json(failed))
            else:
                _render_apply(failed)
        raise
    if as_json:
        render.emit_json(_outcome_json(outcome))
    else:
        _render_apply(outcome)


def _outcome_json(outcome: Any) -> dict[str, Any]:
    return {
        "execution_id": outcome.execution_id,
        "request_id": outcome.request_id,
        "request_state": outcome.state,
        "audited": outcome.audited,
        "checks": outcome.checks,
        "answer": outcome.answer,
        "executor_result_path": outcome.result_path,
    }


@click.command("revoke")
@click.argument("execution_id")
@click.option("--reason", required=True, help="Why this execution id must never run.")
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(path_type=Path),
    default=None,
    help="aegisd socket (default /run/aegis/aegisd.sock).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def revoke_cmd(execution_id: str, reason: str, socket_path: Path | None, as_json: bool) -> None:
    """Burn an execution id in aegisd's ledger so its plan can never run.

    \b
    Example:
      aegisctl revoke 3f2a9c0e1b7d4a6f8e5c2b1a0d9f8e7c --reason "change window closed"
    """
    from aegis.cli import render
    from aegis.execute import service
    from aegis.execute.protocol import answer_to_dict

    answer = service.revoke(_cfg(), execution_id, reason, socket=socket_path)
    if as_json:
        render.emit_json(answer_to_dict(answer))
    else:
        render.print_fields(
            [
                ("execution id", execution_id),
                ("state", answer.state or "-"),
                ("result", answer.message),
            ]
        )


@click.command("resolve")
@click.argument("request_id")
@click.option(
    "--as",
    "resolved_as",
    required=True,
    type=click.Choice(["applied", "failed"]),
    help="What the interrupted execution did, as dpkg shows it.",
)
@click.option("--reason", required=True, help="What you checked (stored and audited).")
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Your operator (signer) key file; aegisd must trust its public key.",
)
@click.option("--operator", default=None, help="Your operator id (default: your user name).")
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(path_type=Path),
    default=None,
    help="aegisd socket (default /run/aegis/aegisd.sock).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def resolve_cmd(
    *,
    request_id: str,
    resolved_as: str,
    reason: str,
    key_path: Path,
    operator: str | None,
    socket_path: Path | None,
    as_json: bool,
) -> None:
    """Settle an interrupted request after checking dpkg (signed, audited by aegisd).

    \b
    Example:
      aegisctl resolve r-1a2b3c --as applied --reason "dpkg -l shows 1.2 ii" \\
          --key ~/.aegis/ops1.key
    """
    from datetime import UTC, datetime

    from aegis import api
    from aegis.cli import render
    from aegis.execute.resolve import resolve
    from aegis.sign.keys import passphrase_from_env

    state, path = resolve(
        _cfg(),
        request_id,
        resolved_as,
        reason,
        key_path,
        operator_id=operator or api.current_user(),
        now=datetime.now(UTC),
        socket=socket_path,
        passphrase=passphrase_from_env(),
    )
    if as_json:
        render.emit_json({"request_id": request_id, "state": state, "resolution_path": str(path)})
        return
    render.print_fields([("request", request_id), ("state", state)])
    render.print_path("resolution", path)


@click.command("recover")
@click.option(
    "--plan",
    "plan_only",
    is_flag=True,
    required=True,
    help="Plan only (required): the recovery walks the signed chain like any change.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def recover_cmd(plan_only: bool, as_json: bool) -> None:
    """Plan 'dpkg --configure -a' after dpkg was left half done (a new request).

    \b
    Example:
      aegisctl recover --plan
      aegis policy /var/lib/aegis/plans/<plan_id>.json   # then approve, sign, apply
    """
    from aegis.cli import render
    from aegis.execute.requests import plan_recover

    planned = plan_recover(_cfg())
    if as_json:
        render.emit_json(
            {
                "request_id": planned.request_id,
                "plan_path": str(planned.plan_path),
                "plan_hash": planned.plan_hash,
            }
        )
        return
    render.print_fields([("request", planned.request_id), ("operation", "recover")])
    render.print_path("plan", Path(planned.plan_path))


@click.command("rollback")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def rollback_cmd(request_id: str, as_json: bool) -> None:
    """Create a rollback request restoring the snapshot an applied request recorded.

    The new request (operation rollback, rollback_of=<snapshot id>) walks the same
    chain: review, policy (downgrades in a rollback require approval), approve, sign,
    apply through aegisd.

    \b
    Example:
      aegisctl rollback r-1a2b3c
    """
    from aegis.cli import render
    from aegis.execute.requests import plan_rollback

    planned, snapshot_id = plan_rollback(_cfg(), request_id)
    if as_json:
        render.emit_json(
            {
                "request_id": planned.request_id,
                "plan_path": str(planned.plan_path),
                "plan_hash": planned.plan_hash,
                "rollback_of": snapshot_id,
            }
        )
        return
    render.print_fields([("request", planned.request_id), ("rollback of", snapshot_id)])
    render.print_path("plan", Path(planned.plan_path))
