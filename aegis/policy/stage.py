"""The policy stage for ``aegis resume`` (:class:`aegis.workflow.stages.PolicyEvaluator`).

Resume re-runs ``reviewed -> policy | denied`` for a request whose policy step
did not complete: the same evaluation as ``aegis policy`` over the plan and review
bytes the store holds (hash-checked by the store), written to
``policy/<plan_id>.policy.json``.

Example:
    >>> outcome = make_evaluator(cfg).evaluate(request, plan_bytes, review_bytes, now)
    >>> outcome.trigger
    'decide'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from aegis.canonical import sha256_hex
from aegis.errors import StateError
from aegis.policy.engine import evaluate
from aegis.policy.result import Effect, result_bytes
from aegis.policy.review_gate import parse_review
from aegis.policy.run import load_policy, parse_plan_bytes, write_result
from aegis.workflow.stages import StageOutcome

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.workflow.records import RequestRecord
    from aegis.workflow.stages import StageOutcome


@dataclass(frozen=True)
class PolicyStage:
    """Evaluates policy for stored requests."""

    cfg: Config

    def evaluate(
        self, request: RequestRecord, plan: bytes, review: bytes | None, now: datetime
    ) -> StageOutcome:
        """Return ``decide`` or ``deny`` with the policy artifact (file already written).

        Raises:
            StateError: the stored plan is not the one the request is bound to.
        """
        parsed, digest = parse_plan_bytes(plan)
        if request.plan_hash is not None and digest != request.plan_hash:
            raise StateError(f"request {request.id}: stored plan does not match its plan hash")
        review_record = parse_review(review) if review is not None else None
        review_hash = sha256_hex(review) if review is not None else None
        result = evaluate(
            parsed,
            review_record,
            load_policy(self.cfg),
            now,
            plan_hash=digest,
            review_hash=review_hash,
        )
        data = result_bytes(result)
        path = write_result(self.cfg, parsed.plan_id, data)
        trigger = "deny" if result.decision is Effect.DENY else "decide"
        return StageOutcome(
            trigger=trigger,
            artifact_kind="policy",
            artifact=data,
            artifact_path=str(path),
            note=f"policy: {result.decision.value}",
        )


def make_evaluator(cfg: Config) -> PolicyStage:
    """Factory registered in :data:`aegis.workflow.stages.STAGES`."""
    return PolicyStage(cfg)
