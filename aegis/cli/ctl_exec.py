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
    help="Trusted approver public key for the local check (repeatable).",
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
