"""Merging a review into a policy decision: tighten only, in one small function. Pure.

``merge(decision, review)`` is the whole rule:

- ``review`` is the VERIFIED review (:func:`aegis.review.record.verify_review` or
  :func:`~aegis.review.record.check_review` said it counts), or None when there is
  no review that verifies (missing, edited, another key, another plan).
- valid: ``deny`` raises to deny, ``require-approval`` raises to require-approval,
  ``no-objection`` leaves the decision; flags are recorded either way. Whatever the
  recommendation says, risk ``high`` or ``critical`` or any flag raises to at least
  require-approval (``review.concern``): a model that names data exfiltration and then
  says "no objection" contradicts itself, and the stricter half of a contradiction wins.
- invalid, failed, timeout, or None: raises to require-approval.
- skipped (by configuration): neutral; recorded as ``review.skipped`` with its reason.

The result is always ``stricter(decision, x)`` for some x, so no review can loosen
a decision (a Hypothesis property test checks it over random decisions and reviews).

Example:
    >>> merge(Effect.ALLOW, None)[0]
    <Effect.REQUIRE_APPROVAL: 'require-approval'>
"""

from __future__ import annotations

from aegis.policy.result import Effect, FiredRule, stricter
from aegis.review.record import Recommendation, Review, ReviewStatus, Risk

_RAISE = {
    Recommendation.DENY: Effect.DENY,
    Recommendation.REQUIRE_APPROVAL: Effect.REQUIRE_APPROVAL,
}
_CONCERNING_RISK = frozenset({Risk.HIGH, Risk.CRITICAL})


def merge(decision: Effect, review: Review | None) -> tuple[Effect, tuple[FiredRule, ...]]:
    """Tighten ``decision`` by a verified ``review``; return it and the fired review entry.

    Args:
        decision: the deterministic policy decision before the review.
        review: a review that verified for this plan, or None when none did.

    Returns:
        (the merged effect, never looser than ``decision``; one fired ``review.*`` entry)
    """
    if review is None:
        raised, rule_id, reason = (
            Effect.REQUIRE_APPROVAL,
            "review.unverified",
            ("no review verifies for this plan (missing, edited, or signed by another key)"),
        )
    elif review.status is ReviewStatus.SKIPPED:
        raised, rule_id, reason = decision, "review.skipped", f"review skipped: {review.reason}"
    elif review.status is ReviewStatus.VALID:
        assert review.recommendation is not None
        assert review.risk is not None
        raised = _RAISE.get(review.recommendation, decision)
        rule_id = f"review.{review.recommendation.value}"
        if review.risk in _CONCERNING_RISK or review.flags:
            concern = stricter(raised, Effect.REQUIRE_APPROVAL)
            if concern is not raised:
                raised, rule_id = concern, "review.concern"
        flags = ", ".join(f.value for f in review.flags) or "none"
        reason = (
            f"model review (advisory): risk {review.risk.value}, "
            f"recommendation {review.recommendation.value}, flags {flags}"
        )
    else:  # invalid, failed, timeout: fail closed
        raised, rule_id = Effect.REQUIRE_APPROVAL, f"review.{review.status.value}"
        reason = f"model review {review.status.value}: {review.reason}"
    merged = stricter(decision, raised)
    flags_out = tuple(f.value for f in review.flags) if review is not None else ()
    entry = FiredRule(
        rule_id=rule_id, effect=merged, reason=reason, contract=None, subjects=flags_out
    )
    return merged, (entry,)
