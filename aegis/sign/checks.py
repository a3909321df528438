"""The ordered, named checks of a signed execution plan (pure).

Checks run in aegisd's order (:data:`aegis.sign.refusals.CHECK_ORDER`), after
:func:`aegis.sign.execution_plan.parse_execution_plan`; each ``check_*`` returns
``None`` when it passes and a named :class:`Refusal` otherwise. Time, trusted keys,
host identity, ledger facts, the re-derived plan, the re-evaluated policy and the
derived argv are all arguments: nothing here does I/O or reads the clock. Only
:func:`verified` builds a :class:`VerifiedExecutionPlan`, and only when every step
passed; :func:`verify_offline` runs the steps that need no daemon (``aegisctl
verify``).

Example:
    >>> ep = parse_execution_plan(path.read_bytes())
    >>> for refusal in (check_signature(ep, trusted), check_host(ep, host),
    ...                 check_time_window(ep, now)):
    ...     if refusal:
    ...         raise refusal.error()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from aegis.ed25519 import verify_signed_bytes
from aegis.errors import InputError
from aegis.fleet.cohort import cohort_hash
from aegis.model import Host, Plan, reproducible_view
from aegis.sign.approvals import ApproverKeys, verify_approvals
from aegis.sign.cohort_approval import CohortApproval, verify_cohort_approvals
from aegis.sign.execution_plan import (
    DECISIONS,
    EXECUTION_PLAN_SCHEMA_V1,
    MAX_TTL,
    ExecutionPlan,
    PolicyBinding,
    execution_plan_body_bytes,
    parse_execution_plan,
)
from aegis.sign.moves import describe_moves
from aegis.sign.refusals import CheckResult, CheckStep, Refusal, RefusalCode
from aegis.sign.times import parse_time

CLOCK_SKEW = timedelta(seconds=60)
"""Tolerated difference between the signer's clock and aegisd's."""


@dataclass(frozen=True)
class VerifiedExecutionPlan:
    """An execution plan every check passed for; only :func:`verified` builds one."""

    plan: ExecutionPlan
    results: tuple[CheckResult, ...]


def check_signature(ep: ExecutionPlan, trusted_signer_keys: Iterable[str]) -> Refusal | None:
    """Step ``signature``: signed by a trusted execution signer key, over these exact fields."""
    trusted = frozenset(k.lower() for k in trusted_signer_keys)
    if not trusted:
        return Refusal(RefusalCode.SIGNATURE, "no trusted execution signer keys are configured")
    key = ep.signer_public_key_hex.lower()
    if key not in trusted:
        return Refusal(RefusalCode.SIGNATURE, f"signer key {key[:16]}... is not trusted")
    if not verify_signed_bytes(execution_plan_body_bytes(ep), ep.signature_hex, key):
        return Refusal(RefusalCode.SIGNATURE, "signature does not verify (document changed)")
    return None


def check_host(ep: ExecutionPlan, host: Host) -> Refusal | None:
    """Step ``host``: the plan was made for this machine-id and hostname."""
    if ep.host.machine_id != host.machine_id:
        return Refusal(RefusalCode.HOST, "signed for another machine-id")
    if ep.host.hostname != host.hostname:
        return Refusal(RefusalCode.HOST, "signed for another hostname")
    return None


def check_time_window(
    ep: ExecutionPlan,
    now: datetime,
    *,
    max_ttl: timedelta = MAX_TTL,
    skew: timedelta = CLOCK_SKEW,
) -> Refusal | None:
    """Step ``time-window``: created not in the future, not expired, TTL within the cap."""
    created = parse_time(ep.created_at)
    expires = parse_time(ep.expires_at)
    if created > now + skew:
        return Refusal(RefusalCode.NOT_YET_VALID, f"created {ep.created_at}, in the future")
    if expires <= now:
        return Refusal(RefusalCode.EXPIRED, f"expired at {ep.expires_at}")
    if expires - created > max_ttl:
        return Refusal(RefusalCode.EXPIRED, f"validity is longer than the {max_ttl} cap")
    return None


def check_execution_id(ep: ExecutionPlan, *, used: bool, revoked: bool) -> Refusal | None:
    """Step ``execution-id``: not in aegisd's ledger (the caller looks it up)."""
    if revoked:
        return Refusal(RefusalCode.REVOKED, f"execution id {ep.execution_id} was revoked")
    if used:
        return Refusal(RefusalCode.REPLAYED, f"execution id {ep.execution_id} was already used")
    return None


def check_approvals(
    ep: ExecutionPlan,
    trusted_approver_keys: ApproverKeys,
    now: datetime,
    *,
    required: int | None = None,
    required_roles: Iterable[str] | None = None,
) -> Refusal | None:
    """Step ``approvals``: every included approval counts and the requirement is met.

    An execution plan carrying an approval that does not count (the signer's own
    key or identity, another plan, expired, untrusted key) is refused outright: the
    signer chose to include it.
    """
    verdict = verify_approvals(
        ep.approvals,
        plan_hash=ep.plan_hash,
        policy_hash=ep.policy.result_hash,
        trusted_approver_keys=trusted_approver_keys,
        signer_key_hex=ep.signer_public_key_hex,
        now=now,
        signer_id=ep.signer_id,
    )
    if verdict.rejected:
        first = verdict.rejected[0]
        return Refusal(
            RefusalCode.APPROVALS,
            f"approval by {first.approval.approver_id} does not count: "
            f"{first.reason.value} ({first.detail})",
        )
    counted = len(verdict.counted)
    have_roles = set(verdict.roles)
    if ep.cohort_approvals:
        cohort = verify_cohort_approvals(
            ep.cohort_approvals,
            cohort_hash=cohort_hash(ep.plan, ep.policy),
            trusted_approver_keys=trusted_approver_keys,
            signer_key_hex=ep.signer_public_key_hex,
            now=now,
            signer_id=ep.signer_id,
            seen_keys=[a.public_key_hex for a in verdict.counted],
        )
        if cohort.rejected:
            a, reason, detail = cohort.rejected[0]
            return Refusal(
                RefusalCode.APPROVALS,
                f"cohort approval by {a.approver_id} does not count: {reason.value} ({detail})",
            )
        if cohort.other_cohort:
            return _other_cohort(cohort.other_cohort[0], cohort_hash(ep.plan, ep.policy))
        counted += len(cohort.counted)
        have_roles |= {a.role for a in cohort.counted}
    need = ep.policy.required_approvals if required is None else required
    if counted < need:
        return Refusal(RefusalCode.APPROVALS, f"{counted} approval(s) count; {need} required")
    roles = ep.policy.required_roles if required_roles is None else tuple(required_roles)
    missing = sorted(set(roles) - have_roles)
    if missing:
        return Refusal(RefusalCode.APPROVALS, f"no approval in role(s) {', '.join(missing)}")
    return None


def _other_cohort(a: CohortApproval, this_cohort: str) -> Refusal:
    return Refusal(
        RefusalCode.COHORT,
        f"cohort approval by {a.approver_id} approves cohort {a.cohort_hash[:16]}...; "
        f"this host's delta is cohort {this_cohort[:16]}...",
    )


def check_cohort(ep: ExecutionPlan, derived: Plan, reevaluated: PolicyBinding) -> Refusal | None:
    """Step ``cohort``, only for a plan carrying cohort approvals.

    The cohort hash of the caller's own derivation and policy evaluation must be the one
    every cohort approval signed.
    """
    if not ep.cohort_approvals:
        return None
    own = cohort_hash(derived, reevaluated)
    for a in ep.cohort_approvals:
        if a.cohort_hash != own:
            return _other_cohort(a, own)
    return None


def plan_differences(a: Plan, b: Plan) -> list[str]:
    """Top-level fields in which two plans' reproducible views differ (sorted)."""
    va, vb = reproducible_view(a), reproducible_view(b)
    return sorted(k for k in set(va) | set(vb) if va.get(k) != vb.get(k))


def without_change_integrity(plan: Plan) -> Plan:
    """``plan`` as analyses before ``PackageChange.integrity`` recorded it (version 1)."""
    return replace(plan, changes=tuple(replace(c, integrity="") for c in plan.changes))


def check_rederivation(ep: ExecutionPlan, derived: Plan) -> Refusal | None:
    """Step ``rederivation``: the caller's own analysis equals the signed plan.

    Every field counts, the integrity of each change (hence of each exact target)
    included: the same version with another artifact is refused, naming both. A version
    1 plan (apt only, see :data:`EXECUTION_PLAN_SCHEMA_V1`) was planned before changes
    carried integrity; its .deb hashes are still compared through the provenance.
    """
    if ep.schema_version == EXECUTION_PLAN_SCHEMA_V1:
        derived = without_change_integrity(derived)
    differing = plan_differences(derived, ep.plan)
    if not differing:
        return None

    detail = f"re-derived plan differs in {', '.join(differing)}"
    moved = "; ".join(describe_moves(ep.plan, derived))
    if "package_state_hash" in differing:
        detail += f" (package state moved since signing: {moved})"
    elif moved:
        detail += f" ({moved})"
    if derived.failure is not None and ep.plan.failure is None:
        # Name why: e.g. a kept rollback .deb no longer matches its snapshot manifest.
        detail += f" (analysis failed: {derived.failure.kind}: {derived.failure.message[:300]})"
    return Refusal(RefusalCode.REDERIVATION, detail)


def _rank(decision: str) -> int:
    return DECISIONS.index(decision) if decision in DECISIONS else len(DECISIONS)


def check_policy(ep: ExecutionPlan, reevaluated: PolicyBinding | None = None) -> Refusal | None:
    """Step ``policy``: the signed decision is not deny, nor is the re-evaluation.

    With ``reevaluated`` (aegisd's own evaluation on its own derivation), the plan is
    also refused when that is stricter than what was signed: another decision
    level, another policy version, more approvals or controls than were signed.
    """
    if ep.policy.decision == "deny" or _rank(ep.policy.decision) >= len(DECISIONS):
        return Refusal(RefusalCode.POLICY, "the signed decision is deny")
    if reevaluated is None:
        return None
    if reevaluated.decision == "deny" or _rank(reevaluated.decision) >= len(DECISIONS):
        return Refusal(RefusalCode.POLICY, "policy re-evaluated on this host says deny")
    if _rank(reevaluated.decision) > _rank(ep.policy.decision):
        return Refusal(
            RefusalCode.POLICY,
            f"re-evaluation says {reevaluated.decision}, signed {ep.policy.decision}",
        )
    if reevaluated.policy_version != ep.policy.policy_version:
        return Refusal(RefusalCode.POLICY, "policy version changed since signing")
    if reevaluated.required_approvals > ep.policy.required_approvals or not set(
        reevaluated.controls
    ) <= set(ep.policy.controls):
        return Refusal(RefusalCode.POLICY, "re-evaluation requires controls that were not signed")
    unsigned = sorted(set(reevaluated.rule_ids) - set(ep.policy.rule_ids))
    if unsigned:
        # An approval covers the concerns it was shown: a rule that fires only in aegisd's
        # own evaluation (e.g. the release-age quarantine on root's own first sightings,
        # when the store's were backdated) was approved by no one.
        return Refusal(
            RefusalCode.POLICY,
            f"re-evaluation fires rules that were not signed: {', '.join(unsigned)}",
        )
    return None


def check_argv(ep: ExecutionPlan, derived_argv: Sequence[str]) -> Refusal | None:
    """Step ``argv``: exactly the argv derived from the plan, item for item."""
    if tuple(ep.argv) == tuple(derived_argv):
        return None
    extra = [a for a in ep.argv if a not in derived_argv]
    detail = "signed argv differs from the derived argv"
    if extra:
        detail += f" (not derived: {' '.join(repr(a) for a in extra[:4])[:200]})"
    return Refusal(RefusalCode.ARGV, detail)


def verified(ep: ExecutionPlan, results: Sequence[CheckResult]) -> VerifiedExecutionPlan:
    """Wrap ``ep`` once every step of the order passed.

    Raises:
        RuntimeError: a step is missing or did not pass (programmer error).
    """
    passed = {r.step for r in results if r.ok is True}
    required = {
        CheckStep.SIGNATURE,
        CheckStep.HOST,
        CheckStep.TIME_WINDOW,
        CheckStep.EXECUTION_ID,
        CheckStep.APPROVALS,
        CheckStep.REDERIVATION,
        CheckStep.POLICY,
        CheckStep.ARGV,
    }
    if not required <= passed:
        missing = sorted(s.value for s in required - passed)
        raise RuntimeError(f"execution plan not verified: {', '.join(missing)}")
    return VerifiedExecutionPlan(ep, tuple(results))


def verify_offline(
    data: bytes,
    *,
    trusted_signer_keys: Iterable[str],
    trusted_approver_keys: ApproverKeys,
    now: datetime,
    host: Host | None,
    derive_argv: Callable[[Plan], Sequence[str]] | None,
) -> tuple[ExecutionPlan | None, tuple[CheckResult, ...]]:
    """Run every check that needs no daemon, in order, explaining each step.

    Steps that only aegisd can do (ledger, re-derivation from live state) are
    reported as not checked. Unlike aegisd, this keeps going after a refusal so
    the table shows every problem at once; the caller fails on any refusal.

    Returns:
        The parsed plan (None when parsing failed) and one result per step.
    """
    results: list[CheckResult] = []

    def _record(step: CheckStep, refusal: Refusal | None, ok_detail: str) -> None:
        if refusal is None:
            results.append(CheckResult(step, True, ok_detail))
        else:
            results.append(CheckResult(step, False, str(refusal), refusal))

    try:
        ep = parse_execution_plan(data)
    except InputError as e:
        refusal = getattr(e, "refusal", Refusal(RefusalCode.MALFORMED, e.message))
        results.append(CheckResult(CheckStep.PARSE, False, str(refusal), refusal))
        return None, tuple(results)
    results.append(CheckResult(CheckStep.PARSE, True, "canonical, strict, self-consistent"))
    _record(CheckStep.SIGNATURE, check_signature(ep, trusted_signer_keys), "trusted signer key")
    if host is None:
        results.append(CheckResult(CheckStep.HOST, None, "host not checked"))
    else:
        _record(CheckStep.HOST, check_host(ep, host), f"this host ({host.hostname})")
    _record(
        CheckStep.TIME_WINDOW,
        check_time_window(ep, now),
        f"{ep.created_at} .. {ep.expires_at}",
    )
    results.append(CheckResult(CheckStep.EXECUTION_ID, None, "aegisd checks its own ledger"))
    _record(
        CheckStep.APPROVALS,
        check_approvals(ep, trusted_approver_keys, now),
        f"{len(ep.approvals)} counted, {ep.policy.required_approvals} required",
    )
    results.append(
        CheckResult(CheckStep.REDERIVATION, None, "aegisd re-derives the plan on the host")
    )
    _record(CheckStep.POLICY, check_policy(ep), f"signed decision {ep.policy.decision}")
    if derive_argv is None:
        results.append(CheckResult(CheckStep.ARGV, None, "argv derivation unavailable"))
    else:
        _record(CheckStep.ARGV, check_argv(ep, derive_argv(ep.plan)), "equals derived argv")
    return ep, tuple(results)
