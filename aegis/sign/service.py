"""The signing stage's edge: ``aegisctl approve``, ``aegisctl sign`` and ``aegisctl verify``.

Evidence in the store is not trusted (anyone in ``aegis`` can write it), so signing
re-checks everything before a key touches it, in this order:

1. the plan file parses strictly and a request in state ``policy`` is bound to its hash;
2. the policy result is the one recorded for the request (a file edited after the
   decision no longer matches its recorded hash), binds this plan, and is not deny;
3. evidence is within its maximum age (:class:`SignLimits`);
4. the analysis is re-run and must reproduce the stored plan (``reproducible_view``);
5. policy is re-evaluated with the engine and the policy in force: same decision,
   same policy version, same controls; a deny is refused;
6. approvals verify with trusted approver keys other than the signer's and meet the
   required count and roles;
7. the snapshot control is satisfiable here (``aegisctl snapshot check``);
8. the argv is derived here and must equal the plan's command preview;
9. the execution plan is built, signed, written to ``execution-plans/<id>.json``,
   and the request moves ``policy -> signed`` with it as the artifact.

Example:
    >>> signed = sign_request(cfg, Path("plans/p-1.json"), None, Path("ops1.key"),
    ...                       "ops1", timedelta(hours=1), now, None)
    >>> signed.path
    PosixPath('/var/lib/aegis/execution-plans/3f2a....json')
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.canonical import sha256_hex
from aegis.errors import (
    ApprovalRequired,
    EnvironmentFailure,
    InputError,
    PolicyDenied,
    StateError,
    TrustError,
)
from aegis.model import Host, Plan, reproducible_view
from aegis.sign import files
from aegis.sign.approvals import (
    Approval,
    ApprovalVerdict,
    approval_bytes,
    approval_hash,
    build_approval,
    check_approver_id,
    parse_approval,
    verify_approvals,
)
from aegis.sign.checks import plan_differences
from aegis.sign.execution_plan import (
    ExecutionPlan,
    PolicyBinding,
    build_execution_plan,
    execution_plan_bytes,
    parse_execution_plan,
)
from aegis.sign.times import parse_time

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.policy.result import PolicyResult
    from aegis.workflow.records import RequestRecord


@dataclass(frozen=True)
class SignLimits:
    """Bounds on evidence age when signing (from the policy's ``[thresholds]``)."""

    max_plan_age: timedelta = timedelta(hours=24)
    """``thresholds.evidence_max_age_s``: an older plan is stale evidence."""
    max_policy_age: timedelta = timedelta(hours=24)
    """A decision older than this is re-made, never signed."""
    future_skew: timedelta = timedelta(minutes=5)
    """``thresholds.clock_skew_s``: evidence dated further ahead was not made on a sane clock."""


DEFAULT_LIMITS = SignLimits()


def limits_for(cfg: Config) -> SignLimits:
    """The limits of the policy in force (defaults when it is unavailable: it then denies)."""
    from aegis.policy.config import PolicyConfig
    from aegis.policy.run import load_policy

    policy = load_policy(cfg)
    if not isinstance(policy, PolicyConfig):
        return DEFAULT_LIMITS
    age = timedelta(seconds=policy.thresholds.evidence_max_age_s)
    return SignLimits(age, age, timedelta(seconds=policy.thresholds.clock_skew_s))


@dataclass(frozen=True)
class Context:
    """A plan, its request and its recorded policy result, all checked against each other."""

    plan: Plan
    plan_hash: str
    request: RequestRecord
    policy: PolicyResult
    policy_hash: str


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


def policy_binding(result: PolicyResult, result_hash: str) -> PolicyBinding:
    """The :class:`PolicyBinding` of a policy result (aegisd builds the same from its own)."""
    controls: list[str] = []
    if result.controls.approval.count:
        controls.append("approval")
    if result.controls.snapshot:
        controls.append("snapshot")
    return PolicyBinding(
        result_hash=result_hash,
        decision=result.decision.value,
        policy_version=result.policy_version,
        controls=tuple(controls),
        required_approvals=result.controls.approval.count,
        required_roles=tuple(result.controls.approval.roles),
        rule_ids=tuple(f.rule_id for f in result.fired),
    )


def _plan_from_request(cfg: Config, request_id: str) -> tuple[Plan, str, RequestRecord]:
    from aegis import api
    from aegis.policy.run import parse_plan_bytes

    rec = api.get_request(cfg, request_id)
    found = api.latest_artifact(cfg, rec.id, "plan")
    if found is None:
        raise StateError(f"request {rec.id} has no plan")
    plan, digest = parse_plan_bytes(found[1])
    return plan, digest, rec


def load_context(
    cfg: Config,
    *,
    plan_path: Path | None = None,
    request_id: str | None = None,
    policy_path: Path | None = None,
) -> Context:
    """Load a plan (file or request), its request and its recorded policy result.

    Raises:
        InputError: malformed plan or policy file.
        StateError: no request for the plan, not in ``policy``, or no decision yet.
        PolicyDenied: the request was denied.
        TrustError: the policy file differs from the decision recorded for the request,
            or binds another plan.
    """
    from aegis import api
    from aegis.policy.result import result_from_bytes
    from aegis.policy.run import read_plan

    if plan_path is not None:
        plan, digest = read_plan(plan_path)
        found_rec = api.find_request_by_plan(cfg, digest)
        if found_rec is None:
            raise StateError(
                f"no change request is bound to plan {plan.plan_id!r} (sha256 {digest[:16]}...)",
                hint="the plan file may have been edited; use the file 'aegis apt ... --plan' "
                "printed",
            )
        rec = found_rec
    elif request_id is not None:
        plan, digest, rec = _plan_from_request(cfg, request_id)
    else:
        raise RuntimeError("load_context needs plan_path or request_id")
    if rec.state == "denied":
        raise PolicyDenied(f"request {rec.id} was denied by policy; it is never signed")
    if rec.state != "policy":
        raise StateError(
            f"request {rec.id} is {rec.state!r}; only a request in 'policy' can be approved "
            "or signed",
            hint=f"see 'aegis show {rec.id}'",
        )
    stored = api.latest_artifact(cfg, rec.id, "policy")
    if stored is None:
        raise StateError(f"request {rec.id} has no policy decision; run 'aegis policy'")
    ref, body = stored
    if policy_path is not None:
        try:
            body_given = policy_path.read_bytes()
        except OSError as e:
            raise InputError(f"cannot read policy result {policy_path}: {e.strerror}") from e
        if sha256_hex(body_given) != ref.sha256:
            raise TrustError(
                f"policy result {policy_path} is not the decision recorded for request {rec.id} "
                "(the file was changed after the decision)",
                hint="policy hash mismatch; do not edit result files",
            )
    result = result_from_bytes(body)
    if result.plan_hash != digest:
        raise TrustError(f"the recorded policy result of {rec.id} binds another plan")
    return Context(plan, digest, rec, result, ref.sha256)


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
    from aegis import api
    from aegis.sign.keys import key_role, load_signing_key
    from aegis.workflow.files import write_atomic

    check_approver_id(approver_id)
    path_like = Path(target)
    if path_like.is_file():
        ctx = load_context(cfg, plan_path=path_like)
    else:
        ctx = load_context(cfg, request_id=target)
    if ctx.policy.decision.value == "deny":
        raise PolicyDenied("the policy decision is deny; a denied plan is never approved")
    role_of_key = key_role(key_path)
    if role_of_key != "approver":
        raise TrustError(
            f"{key_path} is a {role_of_key or 'unknown'} key; approvals need an approver key",
            hint="aegisctl keygen --role approver --out DIR",
        )
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
    api.attach_artifact(cfg, ctx.request.id, "approval", data, approver_id, artifact_path=path)
    return Approved(path, approval, ctx.request.id)


def collect_approvals(cfg: Config, ctx: Context) -> tuple[list[Approval], list[str]]:
    """Approvals of the plan from its files and the request's artifacts, deduplicated."""
    from aegis import api

    found, problems = files.approvals_for_plan(cfg.approvals_dir, ctx.plan.plan_id)
    for art in api.request_artifacts(cfg, ctx.request.id):
        if art.kind != "approval":
            continue
        try:
            found.append(parse_approval(api.load_artifact(cfg, art.sha256)))
        except InputError as e:
            problems.append(f"approval artifact {art.sha256[:12]}: {e.message}")
    unique = {approval_hash(a): a for a in found}
    return sorted(unique.values(), key=lambda a: (a.created_at, a.approver_id)), problems


def _check_age(ctx: Context, now: datetime, limits: SignLimits) -> None:
    checks: list[tuple[str, str, timedelta]] = [
        ("plan", ctx.plan.created_at, limits.max_plan_age),
        ("policy decision", ctx.policy.evaluated_at, limits.max_policy_age),
    ]
    # Vulnerability-data age is the policy's (it requires approval), not a signing refusal.
    for what, stamp, limit in checks:
        when = parse_time(stamp, f"{what} time")
        if when - now > limits.future_skew:
            raise TrustError(f"the {what} is dated {stamp}, in the future; check the clocks")
        if now - when > limit:
            raise StateError(
                f"the {what} is from {stamp}, older than the {limit} allowed for signing",
                hint="plan the change again: 'aegis apt ... --plan', review, policy",
            )


def reanalyze(cfg: Config, plan: Plan, now: datetime) -> Plan:
    """Run the analyzer again on the plan's intent (the same code aegisd uses)."""
    from aegis.analyze.plan import analyze_apt

    # Same inspection depth as the stored plan, or the two could never be equal.
    result: Plan = analyze_apt(cfg, plan.intent, now, inspect_contents=plan.content_inspected)
    return result


def check_reproduces(stored: Plan, fresh: Plan) -> None:
    """Refuse unless the re-analysis reproduces the stored plan (timestamps and ids aside).

    Raises:
        StateError: the package state moved since planning (stale plan).
        TrustError: the stored plan differs otherwise (edited in the store).
    """
    if reproducible_view(fresh) == reproducible_view(stored):
        return
    differing = plan_differences(fresh, stored)
    if "package_state_hash" in differing:
        raise StateError(
            "refused:rederivation: the package state moved since the plan was made "
            f"(differs in {', '.join(differing)})",
            hint="plan the change again",
        )
    raise TrustError(
        "refused:rederivation: re-running the analysis does not reproduce the stored plan "
        f"(differs in {', '.join(differing)}): it was changed after analysis, or the "
        "configuration it was analyzed under changed",
        hint="plan the change again",
    )


def _reevaluate(cfg: Config, ctx: Context, now: datetime) -> PolicyResult:
    from aegis import api
    from aegis.policy.engine import evaluate
    from aegis.policy.review_gate import parse_review
    from aegis.policy.run import load_policy

    review: Any = None
    review_hash: str | None = None
    found = api.latest_artifact(cfg, ctx.request.id, "review")
    if found is not None:
        review, review_hash = parse_review(found[1]), found[0].sha256
    fresh: PolicyResult = evaluate(
        ctx.plan, review, load_policy(cfg), now, plan_hash=ctx.plan_hash, review_hash=review_hash
    )
    if fresh.decision.value == "deny":
        raise PolicyDenied(
            "policy re-evaluated now says deny: "
            + "; ".join(f"{f.rule_id}" for f in fresh.fired if f.effect.value == "deny"),
        )
    stored = ctx.policy
    if (
        fresh.decision != stored.decision
        or fresh.policy_version != stored.policy_version
        or fresh.controls != stored.controls
    ):
        raise StateError(
            f"the recorded decision ({stored.decision.value}) is not current: policy now says "
            f"{fresh.decision.value}"
            + (
                " under another policy version"
                if fresh.policy_version != stored.policy_version
                else ""
            ),
            hint="plan the change again so policy decides under the policy in force",
        )
    return fresh


def _approvals(
    cfg: Config, ctx: Context, signer_pub: str, now: datetime
) -> tuple[ApprovalVerdict, list[str]]:
    approvals, problems = collect_approvals(cfg, ctx)
    trusted = files.trusted_keys(cfg.keys_dir / files.APPROVERS_DIR)
    verdict = verify_approvals(approvals, ctx.plan_hash, ctx.policy_hash, trusted, signer_pub, now)
    need = ctx.policy.controls.approval.count
    roles = set(ctx.policy.controls.approval.roles)
    missing_roles = sorted(roles - verdict.roles)
    if len(verdict.counted) < need or missing_roles:
        lines = [
            f"{r.approval.approver_id}: {r.reason.value} ({r.detail})" for r in verdict.rejected
        ]
        lines += problems
        if not trusted:
            lines.append(f"no trusted approver keys in {cfg.keys_dir / files.APPROVERS_DIR}")
        raise ApprovalRequired(
            f"{len(verdict.counted)} approval(s) count; policy requires {need}"
            + (f" including role(s) {', '.join(missing_roles)}" if missing_roles else ""),
            hint="\n".join(lines)
            if lines
            else "aegisctl approve <plan.json> --reason TEXT --key FILE",
        )
    return verdict, problems


def _snapshot(cfg: Config, ctx: Context) -> None:
    if not ctx.policy.controls.snapshot:
        return
    from aegis.sign.snapshot_check import check_snapshot_capability

    capability = check_snapshot_capability(cfg)
    if not capability.ok:
        raise EnvironmentFailure(
            "policy requires a snapshot and it cannot be taken here: "
            + "; ".join(capability.reasons()),
            hint="aegisctl snapshot check",
        )


def sign_request(
    cfg: Config,
    plan_path: Path,
    policy_path: Path | None,
    key_path: Path,
    signer_id: str,
    expires_in: timedelta,
    now: datetime,
    passphrase: bytes | None,
    *,
    limits: SignLimits | None = None,
) -> Signed:
    """Check everything again, then sign and record the execution plan (see module doc).

    Raises:
        InputError (3), TrustError (4), PolicyDenied (5), StateError (6),
        EnvironmentFailure (7), ApprovalRequired (8): with the reason.
    """
    from aegis import api
    from aegis.execute.argv import derive_argv
    from aegis.sign.keys import key_role, load_signing_key, public_hex
    from aegis.workflow.files import write_atomic

    check_approver_id(signer_id)
    role_of_key = key_role(key_path)
    if role_of_key != "signer":
        raise TrustError(
            f"{key_path} is a {role_of_key or 'unknown'} key; execution plans need a signer key",
            hint="aegisctl keygen --role signer --out DIR",
        )
    ctx = load_context(cfg, plan_path=plan_path, policy_path=policy_path)
    if ctx.policy.decision.value == "deny":
        raise PolicyDenied("the policy decision is deny; a denied plan is never signed")
    _check_age(ctx, now, limits or limits_for(cfg))
    key = load_signing_key(key_path, passphrase)
    signer_pub = public_hex(key)
    # Cheap, local refusals first; the re-analysis runs apt.
    verdict, _ = _approvals(cfg, ctx, signer_pub, now)
    _snapshot(cfg, ctx)
    check_reproduces(ctx.plan, reanalyze(cfg, ctx.plan, now))
    _reevaluate(cfg, ctx, now)
    argv = tuple(derive_argv(ctx.plan, dpkg_root=cfg.dpkg_root))
    if not argv:
        raise StateError("the plan has nothing to run (failed analysis or empty delta)")
    if argv != tuple(ctx.plan.command_preview):
        raise TrustError("refused:argv: the plan's command preview is not the derived argv")
    review = ctx.policy.review.review_hash
    needed = ctx.policy.controls.approval.count
    ep = build_execution_plan(
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
    )
    data = execution_plan_bytes(ep)
    # What aegisd will do first: a plan it could not parse is never written.
    parse_execution_plan(data)
    path = cfg.execution_plans_dir / f"{ep.execution_id}.json"
    write_atomic(path, data, host_install=cfg.home is None)
    try:
        rec = api.advance(
            cfg,
            ctx.request.id,
            "sign",
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


def local_host(cfg: Config) -> Host:
    """This machine's identity, as aegisd computes it."""
    from aegis.execute.apply import this_host

    return this_host(cfg)
