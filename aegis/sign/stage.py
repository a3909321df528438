"""The ``expiry`` workflow stage: ``policy`` or ``signed`` requests whose evidence ran out.

``aegis resume`` (and aegis-monitor) asks it about every request waiting in ``policy``
or ``signed``. It answers trigger ``expire`` with a reason when:

- ``signed``: the execution plan's ``expires_at`` has passed (aegisd would refuse it
  with ``refused:expired`` anyway; no id needs revoking);
- ``policy``: the plan or the policy decision is older than ``aegisctl sign`` accepts
  (:class:`aegis.sign.rechecks.SignLimits`), so the request can never be signed and
  must be planned again.

The decision (:func:`expiry_reason`) is pure; :class:`ExpiryStage` loads the
request's hash-checked artifacts. Registered in ``aegis.workflow.stages.STAGES``.

Example:
    >>> make_expiry(cfg).check(request, now)
    StageOutcome(trigger='expire', evidence={'reason': 'execution plan ... expired at ...'})
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aegis.errors import InputError
from aegis.policy.result import result_from_bytes
from aegis.policy.run import parse_plan_bytes
from aegis.sign.execution_plan import parse_execution_plan
from aegis.sign.rechecks import limits_for
from aegis.sign.times import parse_time
from aegis.workflow import access
from aegis.workflow.stages import StageOutcome

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.sign.rechecks import SignLimits
    from aegis.workflow.records import RequestRecord
    from aegis.workflow.stages import StageOutcome


def _older(stamp: str | None, now: datetime, limit: timedelta, what: str) -> str | None:
    if stamp is None:
        return None
    try:
        when = parse_time(stamp, what)
    except InputError:
        return f"the {what} time {stamp[:40]!r} is unreadable"
    if now - when > limit:
        return f"the {what} is from {stamp}, older than the {limit} allowed for signing"
    return None


def expiry_reason(
    state: str,
    *,
    now: datetime,
    limits: SignLimits,
    execution_plan: bytes | None = None,
    plan_created_at: str | None = None,
    policy_evaluated_at: str | None = None,
) -> str | None:
    """Why the request has expired at ``now``, or None while it is still usable (pure)."""
    if state == "signed":
        if execution_plan is None:
            return None
        try:
            ep = parse_execution_plan(execution_plan)
        except InputError as e:
            return f"the execution plan cannot be used: {e.message}"
        if parse_time(ep.expires_at) <= now:
            return f"execution plan {ep.execution_id} expired at {ep.expires_at}"
        return None
    if state == "policy":
        return _older(plan_created_at, now, limits.max_plan_age, "plan") or _older(
            policy_evaluated_at, now, limits.max_policy_age, "policy decision"
        )
    return None


@dataclass(frozen=True)
class ExpiryStage:
    """Loads a request's artifacts and asks :func:`expiry_reason`."""

    cfg: Config

    def check(self, request: RequestRecord, now: datetime) -> StageOutcome | None:
        """Return trigger ``expire`` with ``{"reason": ...}``, or None while still valid."""
        reason: str | None
        limits = limits_for(self.cfg)
        if request.state == "signed":
            found = access.latest_artifact(self.cfg, request.id, "execution-plan")
            reason = expiry_reason(
                "signed",
                now=now,
                limits=limits,
                execution_plan=found[1] if found else None,
            )
        elif request.state == "policy":
            plan = access.latest_artifact(self.cfg, request.id, "plan")
            policy = access.latest_artifact(self.cfg, request.id, "policy")
            reason = expiry_reason(
                "policy",
                now=now,
                limits=limits,
                plan_created_at=parse_plan_bytes(plan[1])[0].created_at if plan else None,
                policy_evaluated_at=result_from_bytes(policy[1]).evaluated_at if policy else None,
            )
        else:
            return None
        if reason is None:
            return None
        return StageOutcome(trigger="expire", evidence={"reason": reason}, note=reason)


def make_expiry(cfg: Config) -> ExpiryStage:
    """Factory registered in ``aegis.workflow.stages.STAGES``."""
    return ExpiryStage(cfg)
