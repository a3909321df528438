"""The reviewer stage for ``aegis resume`` (:class:`aegis.workflow.stages.Reviewer`).

Resume re-runs ``analyzed -> reviewed`` for a request whose review step did not
complete: it asks aegis-reviewd (never ``--direct``), writes
``reviews/<plan_id>.review.json`` and returns the ``review`` trigger with the
record as the artifact. An unreachable daemon raises (exit 7) and changes nothing.

Example:
    >>> outcome = make_reviewer(cfg).review(request, plan_bytes)
    >>> outcome.trigger
    'review'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aegis.bounds import MAX_PLAN_BYTES
from aegis.canonical import loads_strict
from aegis.errors import StateError
from aegis.model import plan_from_dict, plan_hash
from aegis.review.service import review_plan, write_review
from aegis.workflow.stages import StageOutcome

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.workflow.records import RequestRecord
    from aegis.workflow.stages import StageOutcome


@dataclass(frozen=True)
class ReviewStage:
    """Reviews stored plans through aegis-reviewd."""

    cfg: Config

    def review(self, request: RequestRecord, plan: bytes) -> StageOutcome:
        """Return trigger ``review`` with the review artifact (file already written).

        Raises:
            StateError: the stored plan is not the one the request is bound to.
            EnvironmentFailure: aegis-reviewd is not reachable.
        """
        parsed = plan_from_dict(loads_strict(plan, max_bytes=MAX_PLAN_BYTES))
        if request.plan_hash is not None and plan_hash(parsed) != request.plan_hash:
            raise StateError(f"request {request.id}: stored plan does not match its plan hash")
        review = review_plan(self.cfg, parsed, direct=False, no_review=False)
        path, data = write_review(self.cfg, review)
        return StageOutcome(
            trigger="review",
            artifact_kind="review",
            artifact=data,
            artifact_path=str(path),
            note=f"review: {review.status.value}",
        )


def make_reviewer(cfg: Config) -> ReviewStage:
    """Factory registered in :data:`aegis.workflow.stages.STAGES`."""
    return ReviewStage(cfg)
