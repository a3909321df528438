"""How a model review enters a policy decision. Pure.

:func:`assess_review` decides whether a review record COUNTS, through
:func:`aegis.review.record.review_verdict`: only a record whose signature verifies
against a configured aegis-reviewd key (``[review] public_keys``, or
``<etc>/keys/review.pub`` filled in by :func:`aegis.policy.run.load_policy``) and
that is bound to the plan's hash counts, plus the unsigned local skip of
``aegis review --no-review`` where policy accepts skips (``[review] allow_skip``).
Anything else (edited in the store, signed by another key, bound to another plan,
unparseable, missing) counts as no review.

:func:`merge_review` is the single place the review touches the decision, and it
calls the review stage's one tighten-only function, :func:`aegis.review.merge.merge`:
a counted valid review may raise to require-approval or deny; an invalid, failed or
timed-out one raises to require-approval; no counted review raises to
require-approval; a skip is neutral. The only case that does not reach ``merge`` is
a site whose policy runs without model reviews (``[review] required = false``) and a
request without any review record: neutral, recorded as ``review.skipped``.

Example:
    >>> assessed = assess_review(record, plan_hash, config.review)
    >>> merge_review(Effect.ALLOW, assessed, config)[0]
    <Effect.ALLOW: 'allow'>
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from aegis.canonical import sha256_hex
from aegis.errors import AegisError
from aegis.policy.config import PolicyConfig, ReviewSettings
from aegis.policy.result import Effect, FiredRule, ReviewBinding, ReviewStatus
from aegis.review.merge import merge
from aegis.review.record import (
    Review,
    is_local_skip,
    review_bytes,
    review_from_bytes,
    review_verdict,
)


@dataclass(frozen=True)
class UnreadableReview:
    """A review artifact that did not parse: it never counts."""

    reason: str
    body_hash: str


@dataclass(frozen=True)
class ReviewAssessment:
    """What policy concluded about the review it was given."""

    binding: ReviewBinding
    """Recorded in the policy result."""
    counted: Any
    """The :class:`aegis.review.record.Review` that counts, or None."""
    policy_skip: bool = False
    """No record, and the policy runs without model reviews: neutral, merge not needed."""


def parse_review(body: bytes) -> Any:
    """Parse stored review bytes; anything unparseable becomes :class:`UnreadableReview`.

    Never raises: a broken review must raise the decision to approval, not crash policy.
    """
    try:
        return review_from_bytes(body)
    except AegisError as e:
        return UnreadableReview(f"review record does not parse: {e.message}", sha256_hex(body))


def _record_hash(review: Any) -> str:

    return sha256_hex(review_bytes(review))


def assess_review(
    review: Any,
    plan_hash: str,
    settings: ReviewSettings,
    *,
    review_hash: str | None = None,
) -> ReviewAssessment:
    """Decide whether ``review`` counts for the plan with ``plan_hash``.

    Args:
        review: a parsed review record (:func:`parse_review`), or None.
        plan_hash: the plan's SHA-256.
        settings: the policy's review settings (keys, allow_skip, required).
        review_hash: the record's stored hash if the caller has it.
    """
    if review is None:
        if not settings.required:
            detail = "no review record; this policy runs without model reviews"
            binding = ReviewBinding(None, ReviewStatus.SKIPPED, False, detail)
            return ReviewAssessment(binding, None, policy_skip=True)
        binding = ReviewBinding(None, ReviewStatus.MISSING, False, "no review record")
        return ReviewAssessment(binding, None)
    if isinstance(review, UnreadableReview):
        binding = ReviewBinding(review.body_hash, ReviewStatus.UNVERIFIED, False, review.reason)
        return ReviewAssessment(binding, None)
    if not isinstance(review, Review):
        binding = ReviewBinding(None, ReviewStatus.UNVERIFIED, False, "not a review record")
        return ReviewAssessment(binding, None)
    digest = review_hash or _record_hash(review)
    raw_status, detail, recommendation, flags = review_verdict(
        review, plan_hash, settings.public_keys
    )
    status = ReviewStatus(raw_status)
    if status is ReviewStatus.UNVERIFIED:
        return ReviewAssessment(ReviewBinding(digest, status, False, detail), None)
    if is_local_skip(review) and not settings.allow_skip:
        detail = f"{detail} (this policy does not accept skipped reviews)"
        return ReviewAssessment(ReviewBinding(digest, status, False, detail), None)
    binding = ReviewBinding(
        review_hash=digest,
        status=status,
        counted=True,
        detail=detail,
        recommendation=recommendation,
        flags=tuple(flags),
    )
    return ReviewAssessment(binding, review)


def merge_review(
    decision: Effect, assessed: ReviewAssessment, config: PolicyConfig
) -> tuple[Effect, tuple[FiredRule, ...]]:
    """Tighten ``decision`` by the review; return it and the fired ``review.*`` entries."""
    if assessed.policy_skip:
        # Neutral by the policy's own configuration; the decision is returned unchanged.
        entry = FiredRule("review.skipped", decision, assessed.binding.detail, None, ())
        return decision, (entry,)

    merged, entries = merge(decision, assessed.counted)
    out: list[FiredRule] = []
    for entry in entries:
        fixed = entry
        if assessed.counted is None:
            # Say why no review counted (missing, unparseable, another key, skip refused).
            fixed = replace(fixed, reason=assessed.binding.detail)
        if merged is decision:
            # The review changed nothing: it adds no approval requirement of its own.
            fixed = replace(fixed, approvals=0, roles=())
        elif fixed.effect is Effect.REQUIRE_APPROVAL and fixed.approvals == 0:
            fixed = replace(fixed, approvals=config.approval.count, roles=config.approval.roles)
        out.append(fixed)
    return merged, tuple(out)
