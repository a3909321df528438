"""``aegisctl approve``, ``sign``, ``verify`` and ``snapshot check``.

Thin commands: parse options, call one function of :mod:`aegis.sign.service` (or
the pure verifier), render. Passphrases come from a file, stdin or
``AEGIS_KEY_PASSPHRASE``, never from an option value. Every file written is printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

_PASS_FILE = click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read the key's passphrase from this file (else AEGIS_KEY_PASSPHRASE).",
)
_PASS_STDIN = click.option(
    "--passphrase-stdin", is_flag=True, help="Read the key's passphrase from stdin."
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")

MARKS = {True: "✓", False: "✗", None: "-"}


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _passphrase(passphrase_file: Path | None, passphrase_stdin: bool) -> bytes | None:
    from aegis.sign.files import read_passphrase

    return read_passphrase(passphrase_file=passphrase_file, from_stdin=passphrase_stdin)


def _cfg() -> Any:
    from aegis.config import load_config

    return load_config()


@click.command(
    "approve",
    help=(
        "Sign an approval of a plan and its recorded policy decision.\n\n"
        "Example:\n\n"
        "  aegisctl approve /var/lib/aegis/plans/p-123.json --reason 'CHG-42 window' "
        "--key ~/.aegis/alice.key --approver alice\n\n"
        "Writes approvals/<plan_id>.<approver>.approval.json and attaches it to the request."
    ),
)
@click.argument("target", metavar="PLAN.json|REQUEST-ID", required=False)
@click.option(
    "--cohort",
    "cohort_hash",
    default=None,
    help="Approve this cohort hash (aegis fleet plan) instead of one plan: every host whose "
    "own delta, repository evidence and decision hash to it.",
)
@click.option(
    "--cohort-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The cohort document (default: <state>/cohorts/<HASH>.cohort.json).",
)
@click.option("--reason", required=True, help="Why this change is approved (stored, capped).")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--approver", default=None, help="Approver id (default: your user name).")
@click.option(
    "--role",
    default="approver",
    show_default=True,
    help="Role you approve in; counts only if your key is trusted for it "
    "(keys/approvers/<role>/*.pub).",
)
@click.option("--expires-in", default="24h", show_default=True, help="Validity (max 7d).")
@_PASS_FILE
@_PASS_STDIN
@_JSON
def approve_cmd(
    *,
    target: str | None,
    cohort_hash: str | None,
    cohort_file: Path | None,
    reason: str,
    key_path: Path,
    approver: str | None,
    role: str,
    expires_in: str,
    passphrase_file: Path | None,
    passphrase_stdin: bool,
    as_json: bool,
) -> None:
    """Approve a plan."""
    from aegis import api
    from aegis.cli.render import emit_json, print_fields, print_path
    from aegis.sign.approvals import approval_to_dict
    from aegis.sign.service import approve_plan
    from aegis.sign.times import parse_duration

    if (target is None) == (cohort_hash is None):
        from aegis.errors import InputError

        raise InputError("give a plan or request id, or --cohort HASH (one of them)")
    if cohort_hash is not None:
        _approve_cohort(
            cohort_hash,
            cohort_file=cohort_file,
            reason=reason,
            key_path=key_path,
            approver_id=(api.current_user() if approver is None else approver).lower(),
            role=role,
            expires_in=parse_duration(expires_in),
            passphrase=_passphrase(passphrase_file, passphrase_stdin),
            as_json=as_json,
        )
        return
    assert target is not None
    approved = approve_plan(
        _cfg(),
        target,
        reason=reason,
        key_path=key_path,
        # An explicit empty --approver is refused by the id check, not replaced by $USER.
        approver_id=(api.current_user() if approver is None else approver).lower(),
        role=role,
        expires_in=parse_duration(expires_in),
        now=_now(),
        passphrase=_passphrase(passphrase_file, passphrase_stdin),
    )
    a = approved.approval
    if as_json:
        emit_json(
            {
                "path": str(approved.path),
                "request_id": approved.request_id,
                "approval": approval_to_dict(a),
            }
        )
        return
    print_fields(
        [
            ("request", approved.request_id),
            ("plan", f"{a.plan_id} ({a.plan_hash[:16]}...)"),
            ("policy result", f"{a.policy_hash[:16]}..."),
            ("approver", f"{a.approver_id} ({a.role})"),
            ("expires", a.expires_at),
        ]
    )
    print_path("approval", approved.path)


def _approve_cohort(cohort_hash: str, *, as_json: bool, **kw: Any) -> None:
    from aegis.cli.render import emit_json, print_fields, print_path
    from aegis.fleet.service import approve_cohort
    from aegis.sign.cohort_approval import cohort_approval_to_dict

    done = approve_cohort(_cfg(), cohort_hash, now=_now(), **kw)
    a = done.approval
    if as_json:
        emit_json({"path": str(done.path), "cohort_approval": cohort_approval_to_dict(a)})
        return
    changes = done.document.get("changes", [])
    print_fields(
        [
            ("cohort", a.cohort_hash),
            ("decision", done.document["decision"].get("decision")),
            (
                "changes",
                ", ".join(f"{c.get('action')} {c.get('name')} {c.get('to')}" for c in changes),
            ),
            ("approver", f"{a.approver_id} ({a.role})"),
            ("expires", a.expires_at),
        ]
    )
    print_path("cohort approval", done.path)


@click.command(
    "sign",
    help=(
        "Re-check a decided plan and sign its execution plan.\n\n"
        "Re-runs the analysis (it must reproduce the plan), re-evaluates policy (not deny,\n"
        "current), verifies approvals (never the signer's own), checks the snapshot\n"
        "control, derives the argv itself, writes execution-plans/<execution_id>.json\n"
        "and moves the request policy -> signed.\n\n"
        "Example:\n\n"
        "  aegisctl sign --plan /var/lib/aegis/plans/p-123.json --key ~/.aegis/ops1.key "
        "--signer ops1 --expires-in 1h"
    ),
)
@click.option("--plan", "plan_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--policy",
    "policy_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Policy result file (default: the decision recorded for the request).",
)
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--signer", "signer_id", required=True, help="Your signer id.")
@click.option("--expires-in", default="1h", show_default=True, help="Validity (max 24h).")
@click.option(
    "--cohort-approval",
    "cohort_approvals",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A cohort approval (aegisctl approve --cohort); counts only when this host's own "
    "delta is that cohort, else refused:cohort (exit 4). Repeatable.",
)
@_PASS_FILE
@_PASS_STDIN
@_JSON
def sign_cmd(
    *,
    plan_path: Path,
    policy_path: Path | None,
    key_path: Path,
    signer_id: str,
    expires_in: str,
    cohort_approvals: tuple[Path, ...],
    passphrase_file: Path | None,
    passphrase_stdin: bool,
    as_json: bool,
) -> None:
    """Sign an execution plan."""
    from aegis.cli.render import emit_json, print_fields, print_path
    from aegis.fleet.service import read_cohort_approvals
    from aegis.sign.execution_plan import execution_plan_to_dict
    from aegis.sign.service import sign_request
    from aegis.sign.times import parse_duration

    signed = sign_request(
        _cfg(),
        plan_path,
        policy_path,
        key_path=key_path,
        signer_id=signer_id,
        expires_in=parse_duration(expires_in),
        now=_now(),
        passphrase=_passphrase(passphrase_file, passphrase_stdin),
        cohort_approvals=read_cohort_approvals(cohort_approvals),
    )
    ep = signed.execution_plan
    if as_json:
        emit_json(
            {
                "path": str(signed.path),
                "request_id": signed.request_id,
                "state": signed.state,
                "execution_id": ep.execution_id,
                "signer_public_key_hex": ep.signer_public_key_hex,
                "execution_plan": execution_plan_to_dict(ep),
            }
        )
        return
    print_fields(
        [
            ("request", f"{signed.request_id} -> {signed.state}"),
            ("execution id", ep.execution_id),
            ("decision", f"{ep.policy.decision} ({', '.join(ep.policy.rule_ids) or 'no rules'})"),
            (
                "approvals",
                ", ".join(
                    [a.approver_id for a in ep.approvals]
                    + [f"{a.approver_id} (cohort)" for a in ep.cohort_approvals]
                )
                or "none required",
            ),
            ("argv", " ".join(ep.argv)),
            ("valid", f"{ep.created_at} .. {ep.expires_at}"),
            ("signer key", ep.signer_public_key_hex),
        ]
    )
    print_path("execution plan", signed.path)
    click.echo(
        f"next: aegisctl apply --execution-plan {signed.path} "
        f"--public-key-hex {ep.signer_public_key_hex}"
    )


@click.command(
    "verify",
    help=(
        "Verify an execution plan offline and explain each check.\n\n"
        "Checks, in aegisd's order: strict parse, signature by the given key, host, time\n"
        "window, approvals (by the given approver keys, never the signer's), policy, and\n"
        "argv against the derivation. aegisd's ledger and its re-derivation of the plan\n"
        "run on the host. Exit 4 on a trust failure (3 malformed, 5 denied).\n\n"
        "Example:\n\n"
        "  aegisctl verify --execution-plan execution-plans/3f2a.json --public-key-hex K "
        "--approval-public-key-hex A"
    ),
)
@click.option(
    "--execution-plan",
    "ep_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option(
    "--public-key-hex", "signer_keys", required=True, multiple=True, help="Trusted signer key."
)
@click.option(
    "--approval-public-key-hex",
    "approver_keys",
    multiple=True,
    help=(
        "Trusted approver key; ROLE:KEY also trusts it for ROLE "
        "(default: <etc>/keys/approvers/*.pub and <role>/*.pub)."
    ),
)
@click.option(
    "--host-check/--no-host-check",
    default=True,
    show_default=True,
    help="Compare the plan's host with this machine.",
)
@_JSON
def verify_cmd(
    ep_path: Path,
    signer_keys: tuple[str, ...],
    approver_keys: tuple[str, ...],
    host_check: bool,
    as_json: bool,
) -> None:
    """Verify an execution plan offline."""
    from aegis.cli.render import emit_json, print_fields, print_table
    from aegis.ecosystems import for_tool
    from aegis.errors import InputError
    from aegis.sign import files
    from aegis.sign.checks import verify_offline
    from aegis.sign.execution_plan import MAX_EXECUTION_PLAN_BYTES
    from aegis.sign.service import local_host

    cfg = _cfg()
    try:
        with ep_path.open("rb") as f:
            data = f.read(MAX_EXECUTION_PLAN_BYTES + 1)
    except OSError as e:
        raise InputError(f"cannot read {ep_path}: {e.strerror}") from e
    signers = [files.check_hex_key(k, "--public-key-hex") for k in signer_keys]
    if approver_keys:
        approvers = files.approver_keys_from_args(approver_keys, "--approval-public-key-hex")
    else:
        approvers = files.trusted_approver_grants(cfg.keys_dir / files.APPROVERS_DIR)
    ep, results = verify_offline(
        data,
        trusted_signer_keys=signers,
        trusted_approver_keys=approvers,
        now=_now(),
        host=local_host(cfg) if host_check else None,
        derive_argv=lambda plan: for_tool(plan.intent.tool).derive_argv(plan, cfg),
    )
    failed = [r for r in results if r.ok is False]
    if as_json:
        emit_json(
            {
                "ok": not failed,
                "execution_id": ep.execution_id if ep else None,
                "request_id": ep.request_id if ep else None,
                "refusal": failed[0].refusal.code.value if failed and failed[0].refusal else None,
                "checks": [
                    {
                        "step": r.step.value,
                        "ok": r.ok,
                        "detail": r.detail,
                        "refusal": r.refusal.code.value if r.refusal else None,
                    }
                    for r in results
                ],
            }
        )
    else:
        if ep is not None:
            print_fields(
                [
                    ("execution id", ep.execution_id),
                    ("request", ep.request_id or "-"),
                    ("host", f"{ep.host.hostname} ({ep.host.machine_id})"),
                    ("signer", ep.signer_id),
                    ("decision", ep.policy.decision),
                    (
                        "approvals",
                        ", ".join(f"{a.approver_id} ({a.role})" for a in ep.approvals) or "none",
                    ),
                    ("valid", f"{ep.created_at} .. {ep.expires_at}"),
                    ("targets", " ".join(f"{t.name}={t.version}" for t in ep.targets)),
                    ("argv", " ".join(ep.argv)),
                ]
            )
        print_table(
            "Checks (aegisd order)",
            ["", "step", "detail"],
            [[MARKS[r.ok], r.step.value, r.detail] for r in results],
        )
    for r in failed:
        if r.refusal is not None:
            raise r.refusal.error()
    if not as_json:
        click.echo("verified: every offline check passed")


@click.group(
    "snapshot", help="Snapshot capability checks.\n\nExample:\n\n  aegisctl snapshot check"
)
def snapshot_group() -> None:
    """Snapshot commands."""


@snapshot_group.command(
    "check",
    help=(
        "Check that a snapshot could be taken here (exit 7 when not).\n\n"
        "Example:\n\n  aegisctl snapshot check --json"
    ),
)
@_JSON
def snapshot_check_cmd(as_json: bool) -> None:
    """Check snapshot capability."""
    from aegis.cli.render import emit_json, print_table
    from aegis.errors import EnvironmentFailure
    from aegis.sign.snapshot_check import check_snapshot_capability

    result = check_snapshot_capability(_cfg())
    if as_json:
        emit_json(
            {
                "ok": result.ok,
                "checks": [{"name": i.name, "ok": i.ok, "detail": i.detail} for i in result.items],
            }
        )
    else:
        print_table(
            "Snapshot capability",
            ["", "check", "detail"],
            [[MARKS[i.ok], i.name, i.detail] for i in result.items],
        )
    if not result.ok:
        raise EnvironmentFailure("a snapshot cannot be taken here: " + "; ".join(result.reasons()))
