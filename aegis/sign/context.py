"""What approving and signing start from: a plan, its request and its recorded decision.

:func:`load_context` reads the plan (a file, or a request's stored artifact), finds
the change request bound to its hash, and loads the policy result recorded for that
request, checking each against the others: the store is not trusted (anyone in
``aegis`` can write it), so a policy file edited after the decision, a result that
binds another plan, or a request not waiting in ``policy`` is refused here, before
any key is loaded. :func:`collect_approvals` gathers the plan's approvals from the
approvals directory and the request's artifacts.

Split out of :mod:`aegis.sign.service`, which approves and signs on top of it.

Example::

    ctx = load_context(cfg, plan_path=Path("plans/p-1.json"))
    ctx.policy.decision  # Decision.REQUIRE_APPROVAL
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.canonical import sha256_hex
from aegis.errors import InputError, PolicyDenied, StateError, TrustError
from aegis.model import Plan
from aegis.policy.result import MAX_RESULT_BYTES, result_from_bytes
from aegis.policy.run import parse_plan_bytes, read_plan
from aegis.safe_read import read_capped
from aegis.sign import files
from aegis.sign.approvals import Approval, approval_hash, parse_approval
from aegis.workflow import access

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.policy.result import PolicyResult
    from aegis.workflow.records import RequestRecord


@dataclass(frozen=True)
class Context:
    """A plan, its request and its recorded policy result, all checked against each other."""

    plan: Plan
    plan_hash: str
    request: RequestRecord
    policy: PolicyResult
    policy_hash: str


def _plan_from_request(cfg: Config, request_id: str) -> tuple[Plan, str, RequestRecord]:

    rec = access.get_request(cfg, request_id)
    found = access.latest_artifact(cfg, rec.id, "plan")
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
    if plan_path is not None:
        plan, digest = read_plan(plan_path)
        found_rec = access.find_request_by_plan(cfg, digest)
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
    stored = access.latest_artifact(cfg, rec.id, "policy")
    if stored is None:
        raise StateError(f"request {rec.id} has no policy decision; run 'aegis policy'")
    ref, body = stored
    if policy_path is not None:
        body_given = read_capped(policy_path, MAX_RESULT_BYTES, "policy result")
        if sha256_hex(body_given) != ref.sha256:
            raise TrustError(
                f"policy result {policy_path} is not the decision recorded for request {rec.id} "
                "(another file, or this one changed after the decision)",
                hint="policy hash mismatch: omit --policy to use the recorded decision",
            )
    result = result_from_bytes(body)
    if result.plan_hash != digest:
        raise TrustError(f"the recorded policy result of {rec.id} binds another plan")
    return Context(plan, digest, rec, result, ref.sha256)


def collect_approvals(cfg: Config, ctx: Context) -> tuple[list[Approval], list[str]]:
    """Approvals of the plan from its files and the request's artifacts, deduplicated."""
    found, problems = files.approvals_for_plan(cfg.approvals_dir, ctx.plan.plan_id)
    for art in access.request_artifacts(cfg, ctx.request.id):
        if art.kind != "approval":
            continue
        try:
            found.append(parse_approval(access.load_artifact(cfg, art.sha256)))
        except InputError as e:
            problems.append(f"approval artifact {art.sha256[:12]}: {e.message}")
    unique = {approval_hash(a): a for a in found}
    return sorted(unique.values(), key=lambda a: (a.created_at, a.approver_id)), problems
