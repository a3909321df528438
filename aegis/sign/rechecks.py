"""The re-checks ``aegisctl sign`` makes before a key touches anything.

Evidence in the store is not trusted, so signing does not take the recorded plan
and decision at their word: :func:`check_age` refuses stale or future-dated
evidence (:class:`SignLimits`, from the policy's ``[thresholds]``);
:func:`require_approvals` verifies approvals with trusted approver keys other than
the signer's; :func:`require_snapshot` checks the snapshot control can be met here;
:func:`reanalyze` plus :func:`check_reproduces` re-run the analysis and compare;
:func:`reevaluate` re-runs policy under the policy in force. Each raises the
refusal's error; :mod:`aegis.sign.service` calls them in its documented order.

Example::

    check_age(ctx, now, limits_for(cfg))
    check_reproduces(ctx.plan, reanalyze(cfg, ctx.plan, now))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aegis.ecosystems import for_tool
from aegis.errors import (
    ApprovalRequired,
    EnvironmentFailure,
    PolicyDenied,
    StateError,
    TrustError,
)
from aegis.model import Plan, reproducible_view
from aegis.policy.config import PolicyConfig
from aegis.policy.engine import evaluate
from aegis.policy.review_gate import parse_review
from aegis.policy.run import load_policy
from aegis.sign import files
from aegis.sign.approvals import ApprovalVerdict, verify_approvals
from aegis.sign.checks import plan_differences, without_change_integrity
from aegis.sign.context import Context, collect_approvals
from aegis.sign.moves import describe_moves, only_repositories_moved
from aegis.sign.snapshot_check import check_snapshot_capability
from aegis.sign.times import parse_time
from aegis.workflow import access

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.policy.result import PolicyResult


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
    policy = load_policy(cfg)
    if not isinstance(policy, PolicyConfig):
        return DEFAULT_LIMITS
    age = timedelta(seconds=policy.thresholds.evidence_max_age_s)
    return SignLimits(age, age, timedelta(seconds=policy.thresholds.clock_skew_s))


def check_age(ctx: Context, now: datetime, limits: SignLimits) -> None:
    """Refuse evidence dated in the future or older than ``limits`` allow.

    Raises:
        TrustError: a date lies beyond the tolerated clock skew.
        StateError: the plan or the decision is too old to sign.
    """
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
    # Same ecosystem and inspection depth as the stored plan, or the two could never be equal.
    eco = for_tool(plan.intent.tool)
    result: Plan = eco.plan(cfg, plan.intent, now, inspect_contents=plan.content_inspected)
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
    moved = "; ".join(describe_moves(stored, fresh)) or "nothing named"
    if "package_state_hash" in differing:
        raise StateError(
            "refused:rederivation: the package state moved since the plan was made: "
            f"{moved} (differs in {', '.join(differing)})",
            hint="plan the change again",
        )
    if not any(c.integrity for c in stored.changes) and reproducible_view(
        without_change_integrity(fresh)
    ) == reproducible_view(stored):
        # Stored by an Aegis from before changes recorded their integrity: not an edit.
        raise StateError(
            "refused:rederivation: the plan was made before changes recorded their "
            "artifact integrity; it cannot be signed as aegis.execution-plan/2",
            hint="plan the change again",
        )
    if only_repositories_moved(stored, fresh):
        # apt update ran since planning: the packages did not move, a repository did.
        raise StateError(
            f"refused:rederivation: a repository moved since the plan was made: {moved} "
            f"(differs in {', '.join(differing)})",
            hint="plan the change again",
        )
    raise TrustError(
        "refused:rederivation: re-running the analysis does not reproduce the stored plan "
        f"(differs in {', '.join(differing)}; {moved}): it was changed after analysis, or "
        "the configuration it was analyzed under changed",
        hint="plan the change again",
    )


def reevaluate(cfg: Config, ctx: Context, now: datetime) -> PolicyResult:
    """Evaluate the policy in force again; refuse unless it agrees with the recorded decision.

    Raises:
        PolicyDenied: policy now says deny.
        StateError: another decision, policy version or controls than recorded.
    """
    review: Any = None
    review_hash: str | None = None
    found = access.latest_artifact(cfg, ctx.request.id, "review")
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


def require_approvals(
    cfg: Config,
    ctx: Context,
    signer_pub: str,
    now: datetime,
    signer_id: str | None = None,
    *,
    cohort_roles: Sequence[str] = (),
) -> tuple[ApprovalVerdict, list[str]]:
    """The approvals that count; refuse unless they meet the policy's count and roles.

    ``cohort_roles`` holds the role of each cohort approval that already counted for this
    plan (:func:`aegis.sign.service.sign_request` verified them); each counts as one more.

    Raises:
        ApprovalRequired: too few approvals count, or a required role is missing.
    """
    approvals, problems = collect_approvals(cfg, ctx)
    trusted = files.trusted_approver_grants(cfg.keys_dir / files.APPROVERS_DIR)
    verdict = verify_approvals(
        approvals,
        plan_hash=ctx.plan_hash,
        policy_hash=ctx.policy_hash,
        trusted_approver_keys=trusted,
        signer_key_hex=signer_pub,
        now=now,
        signer_id=signer_id,
    )
    need = ctx.policy.controls.approval.count
    roles = set(ctx.policy.controls.approval.roles)
    missing_roles = sorted(roles - verdict.roles - set(cohort_roles))
    if len(verdict.counted) + len(cohort_roles) < need or missing_roles:
        lines = [
            f"{r.approval.approver_id}: {r.reason.value} ({r.detail})" for r in verdict.rejected
        ]
        lines += problems
        if not trusted:
            lines.append(f"no trusted approver keys in {cfg.keys_dir / files.APPROVERS_DIR}")
        raise ApprovalRequired(
            f"{len(verdict.counted) + len(cohort_roles)} approval(s) count; policy requires {need}"
            + (f" including role(s) {', '.join(missing_roles)}" if missing_roles else ""),
            hint="\n".join(lines)
            if lines
            else "aegisctl approve <plan.json> --reason TEXT --key FILE",
        )
    return verdict, problems


def require_snapshot(cfg: Config, ctx: Context) -> None:
    """Refuse when policy requires a snapshot and it cannot be taken on this host.

    Raises:
        EnvironmentFailure: the snapshot capability check failed.
    """
    if not ctx.policy.controls.snapshot:
        return

    capability = check_snapshot_capability(cfg)
    if not capability.ok:
        raise EnvironmentFailure(
            "policy requires a snapshot and it cannot be taken here: "
            + "; ".join(capability.reasons()),
            hint="aegisctl snapshot check",
        )
