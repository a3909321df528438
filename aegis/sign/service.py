"""The signing stage's edge: ``aegisctl approve``, ``aegisctl sign`` and ``aegisctl verify``.

Evidence in the store is not trusted (anyone in ``aegis`` can write it), so signing
re-checks everything before a key touches it, in this order:

1. the plan file parses strictly and a request in state ``policy`` is bound to its hash;
2. the policy result is the one recorded for the request (a file edited after the
   decision no longer matches its recorded hash), binds this plan, and is not deny;
3. evidence is within its maximum age (:class:`SignLimits`);
4. the analysis is re-run and must reproduce the stored plan (``reproducible_view``);
   the unattended pass, which signs a plan it analyzed itself moments before in the same
   process, passes that analysis instead (``analyzed``): the stored plan must reproduce
   it just the same, and aegisd's re-derivation under dpkg's locks is the check that the
   state has not moved since;
5. policy is re-evaluated with the engine and the policy in force: same decision,
   same policy version, same controls; a deny is refused;
6. approvals verify with trusted approver keys other than the signer's and meet the
   required count and roles;
7. the snapshot control is satisfiable here (``aegisctl snapshot check``);
8. the argv is derived here and must equal the plan's command preview;
9. the execution plan is built, signed, written to ``execution-plans/<id>.json``,
   and the request moves ``policy -> signed`` with it as the artifact.

Steps 1-2 are :func:`aegis.sign.context.load_context`; steps 3-7 are the re-checks
in :mod:`aegis.sign.rechecks`; this module holds the two commands that write
(:func:`approve_plan`, :func:`sign_request`) and runs the steps in this order.

Example:
    >>> signed = sign_request(cfg, Path("plans/p-1.json"), None, key_path=Path("ops1.key"),
    ...     signer_id="ops1", expires_in=timedelta(hours=1), now=now, passphrase=None)
    >>> signed.path
    PosixPath('/var/lib/aegis/execution-plans/3f2a....json')
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.ecosystems import for_tool
from aegis.ed25519 import public_hex
from aegis.errors import InputError, PolicyDenied, StateError, TrustError
from aegis.execute.rederive import this_host
from aegis.fleet.cohort import cohort_hash
from aegis.model import Host, Plan
from aegis.policy.run import verification_for
from aegis.sign import files
from aegis.sign.approvals import (
    Approval,
    ApprovalVerdict,
    approval_bytes,
    build_approval,
    check_approver_id,
    verify_approvals,
)
from aegis.sign.cohort_approval import CohortApproval, verify_cohort_approvals
from aegis.sign.context import Context, collect_approvals, load_context
from aegis.sign.execution_plan import (
    ExecutionPlan,
    build_execution_plan,
    execution_plan_bytes,
    parse_execution_plan,
    policy_binding,
)
from aegis.sign.keys import key_role, load_signing_key
from aegis.sign.rechecks import (
    SignLimits,
    check_age,
    check_reproduces,
    limits_for,
    reanalyze,
    reevaluate,
    require_approvals,
    require_snapshot,
)
from aegis.sign.refusals import Refusal, RefusalCode
from aegis.workflow import access
from aegis.workflow.files import write_atomic

if TYPE_CHECKING:
    from aegis.config import Config


@dataclass(frozen=True)
class Approved:
    """What :func:`approve_plan` wrote."""

    path: Path
    approval: Approval
    request_id: str


@dataclass(frozen=True)
class Signed:
    """What :func:`sign_request` wrote."""

    path: Path
    execution_plan: ExecutionPlan
    request_id: str
    state: str
    verdict: ApprovalVerdict


def _require_key_role(key_path: Path, role: str, needed: str) -> None:
    """Refuse a key file of another role than ``role`` (``needed`` says why).

    Raises:
        TrustError: the key is not a ``role`` key.
    """
    role_of_key = key_role(key_path)
    if role_of_key != role:
        raise TrustError(
            f"{key_path} is a {role_of_key or 'unknown'} key; {needed}",
            hint=f"aegisctl keygen --role {role} --out DIR",
        )


require_key_role = _require_key_role
"""Public name of the key-role check, for the cohort approval (aegis/fleet/service.py)."""


def approve_plan(
    cfg: Config,
    target: str,
    *,
    reason: str,
    key_path: Path,
    approver_id: str,
    role: str,
    expires_in: timedelta,
    now: datetime,
    passphrase: bytes | None,
) -> Approved:
    """Sign an approval of a plan (file path or request id) and its recorded policy result.

    Raises:
        InputError: bad reason, id, duration or key file.
        TrustError: the key is not an approver key or cannot be unwrapped.
        PolicyDenied: the request was denied (a denied plan is never approved).
        StateError: the request is not waiting in ``policy``.
    """
    check_approver_id(approver_id)
    path_like = Path(target)
    # Anything path-shaped is read as a plan file, so a typo in it is reported as the file
    # it is ("cannot read plan ..."), not as a malformed request id.
    if path_like.is_dir():
        raise InputError(f"{target} is a directory; give a plan file or a request id")
    if path_like.exists() or "/" in target or target.endswith(".json"):
        ctx = load_context(cfg, plan_path=path_like)
    else:
        ctx = load_context(cfg, request_id=target)
    if ctx.policy.decision.value == "deny":
        raise PolicyDenied("the policy decision is deny; a denied plan is never approved")
    _require_key_role(key_path, "approver", "approvals need an approver key")
    key = load_signing_key(key_path, passphrase)
    approval = build_approval(
        plan_id=ctx.plan.plan_id,
        plan_hash=ctx.plan_hash,
        policy_hash=ctx.policy_hash,
        approver_id=approver_id,
        role=role,
        reason=reason,
        now=now,
        expires_in=expires_in,
        key=key,
    )
    data = approval_bytes(approval)
    path = files.approval_path(cfg.approvals_dir, ctx.plan.plan_id, approver_id)
    write_atomic(path, data, host_install=cfg.home is None)
    access.attach_artifact(cfg, ctx.request.id, "approval", data, approver_id, artifact_path=path)
    return Approved(path, approval, ctx.request.id)


def sign_request(
    cfg: Config,
    plan_path: Path,
    policy_path: Path | None,
    *,
    key_path: Path,
    signer_id: str,
    expires_in: timedelta,
    now: datetime,
    passphrase: bytes | None,
    limits: SignLimits | None = None,
    trigger: str = "sign",
    cohort_approvals: Sequence[CohortApproval] = (),
    analyzed: Plan | None = None,
) -> Signed:
    """Check everything again, then sign and record the execution plan (see module doc).

    ``trigger`` is ``sign_automation`` for the automation key (aegis unattended), whose
    edge in the lifecycle graph holds the plan to the automation scope.
    ``cohort_approvals`` (``aegisctl sign --cohort-approval``) count only when they verify
    and approve this plan's own cohort (:func:`_counted_cohort_approvals`).
    ``analyzed``: an analysis of the plan's intent that this process ran itself and never
    read back from anything another user can write (aegis unattended's own); the stored
    plan must reproduce it, and no second analysis runs. Never from a client.

    Raises:
        InputError (3), TrustError (4), PolicyDenied (5), StateError (6),
        EnvironmentFailure (7), ApprovalRequired (8): with the reason.
    """
    check_approver_id(signer_id)
    _require_key_role(key_path, "signer", "execution plans need a signer key")
    ctx = load_context(cfg, plan_path=plan_path, policy_path=policy_path)
    if ctx.policy.decision.value == "deny":
        raise PolicyDenied("the policy decision is deny; a denied plan is never signed")
    check_age(ctx, now, limits or limits_for(cfg))
    key = load_signing_key(key_path, passphrase)
    signer_pub = public_hex(key)
    # Cheap, local refusals first; the re-analysis runs apt.
    by_cohort = _counted_cohort_approvals(
        cfg, ctx, cohort_approvals, signer_pub=signer_pub, signer_id=signer_id, now=now
    )
    if by_cohort:
        # Each key counts once: a cohort approval by a key that also approved this plan
        # adds nothing (and aegisd would refuse the pair as a duplicate).
        plan_keys = _plan_approval_keys(cfg, ctx, signer_pub, now, signer_id)
        by_cohort = tuple(a for a in by_cohort if a.public_key_hex.lower() not in plan_keys)
    verdict, _ = require_approvals(
        cfg, ctx, signer_pub, now, signer_id, cohort_roles=[a.role for a in by_cohort]
    )
    require_snapshot(cfg, ctx)
    check_reproduces(ctx.plan, analyzed if analyzed is not None else reanalyze(cfg, ctx.plan, now))
    reevaluate(cfg, ctx, now)
    argv = for_tool(ctx.plan.intent.tool).derive_argv(ctx.plan, cfg)
    if not argv:
        raise StateError("the plan has nothing to run (failed analysis or empty delta)")
    if argv != tuple(ctx.plan.command_preview):
        raise TrustError("refused:argv: the plan's command preview is not the derived argv")
    review = ctx.policy.review.review_hash
    needed = ctx.policy.controls.approval.count
    ep = build_execution_plan(
        verification=verification_for(cfg, ctx.plan),
        execution_id=secrets.token_hex(16),
        request_id=ctx.request.id,
        plan=ctx.plan,
        policy=policy_binding(ctx.policy, ctx.policy_hash),
        review_hash=review,
        approvals=verdict.counted if needed else (),
        argv=argv,
        now=now,
        expires_in=expires_in,
        signer_id=signer_id,
        key=key,
        cohort_approvals=by_cohort if needed else (),
    )
    data = execution_plan_bytes(ep)
    # What aegisd will do first: a plan it could not parse is never written.
    parse_execution_plan(data)
    path = cfg.execution_plans_dir / f"{ep.execution_id}.json"
    write_atomic(path, data, host_install=cfg.home is None)
    try:
        rec = access.advance(
            cfg,
            ctx.request.id,
            trigger,
            signer_id,
            artifact_kind="execution-plan",
            artifact=data,
            artifact_path=str(path),
            evidence={"execution_id": ep.execution_id},
        )
    except BaseException:
        # Never leave a valid signed plan behind for a request that did not move.
        path.unlink(missing_ok=True)
        raise
    return Signed(path, ep, rec.id, rec.state, verdict)


def _counted_cohort_approvals(
    cfg: Config,
    ctx: Context,
    approvals: Sequence[CohortApproval],
    *,
    signer_pub: str,
    signer_id: str,
    now: datetime,
) -> tuple[CohortApproval, ...]:
    """The cohort approvals that count for this plan; refuse any that does not.

    The signer chose to pass them, so one that does not verify is refused outright,
    and one of another cohort is ``refused:cohort`` (exit 4): this host's delta,
    repository evidence or decision is not the one the approver saw.

    Raises:
        TrustError: a cohort approval does not verify, or approves another cohort.
    """
    if not approvals:
        return ()

    own = cohort_hash(ctx.plan, policy_binding(ctx.policy, ctx.policy_hash))
    cohort = verify_cohort_approvals(
        approvals,
        cohort_hash=own,
        trusted_approver_keys=files.trusted_approver_grants(cfg.keys_dir / files.APPROVERS_DIR),
        signer_key_hex=signer_pub,
        now=now,
        signer_id=signer_id,
    )
    if cohort.rejected:
        a, reason, detail = cohort.rejected[0]
        raise TrustError(
            f"cohort approval by {a.approver_id} does not count: {reason.value} ({detail})"
        )
    if cohort.other_cohort:
        a = cohort.other_cohort[0]
        raise Refusal(
            RefusalCode.COHORT,
            f"cohort approval by {a.approver_id} approves cohort {a.cohort_hash[:16]}...; "
            f"this host's delta is cohort {own[:16]}...",
        ).error()
    return cohort.counted


def _plan_approval_keys(
    cfg: Config, ctx: Context, signer_pub: str, now: datetime, signer_id: str
) -> set[str]:
    """Keys (lower-case hex) of the plan approvals that count for ``ctx``."""
    approvals, _ = collect_approvals(cfg, ctx)
    verdict = verify_approvals(
        approvals,
        plan_hash=ctx.plan_hash,
        policy_hash=ctx.policy_hash,
        trusted_approver_keys=files.trusted_approver_grants(cfg.keys_dir / files.APPROVERS_DIR),
        signer_key_hex=signer_pub,
        now=now,
        signer_id=signer_id,
    )
    return {a.public_key_hex.lower() for a in verdict.counted}


def local_host(cfg: Config) -> Host:
    """This machine's identity, as aegisd computes it."""
    return this_host(cfg)
