"""How a model review enters a policy decision. Pure.

:func:`assess_review` decides whether a review record COUNTS: only a record whose
signature verifies against a configured aegis-reviewd key and that is bound to the
plan's hash does; anything else (edited in the store, signed by another key, bound
to another plan, no record at all) is recorded as ``unverified``/``missing`` and
raises the decision to require-approval.

:func:`merge_review` is the single call site where the review touches the decision.
It can only tighten: a counted valid review may raise to require-approval or deny;
an invalid, failed, timed-out, unverified or missing review raises to
require-approval; a review skipped by configuration is neutral.

Example:
    >>> binding = assess_review(None, plan_hash, config.review)
    >>> merge_review(Effect.ALLOW, binding, config)[0]
    <Effect.REQUIRE_APPROVAL: 'require-approval'>
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aegis.canonical import canonical_hash
from aegis.codec import to_dict
from aegis.errors import AegisError
from aegis.policy.config import PolicyConfig, ReviewSettings
from aegis.policy.result import Effect, FiredRule, ReviewBinding, ReviewStatus, stricter

_RAISING = {
    ReviewStatus.INVALID: "review.invalid",
    ReviewStatus.FAILED: "review.failed",
    ReviewStatus.TIMEOUT: "review.timeout",
    ReviewStatus.UNVERIFIED: "review.unverified",
    ReviewStatus.MISSING: "review.missing",
}


@dataclass(frozen=True)
class UnreadableReview:
    """A review artifact that did not parse: it never counts."""

    reason: str
    body_hash: str


def parse_review(body: bytes) -> Any:
    """Parse a stored review artifact; anything unparseable becomes :class:`UnreadableReview`.

    Never raises: a broken review must raise the decision to approval, not crash policy.
    """
    from aegis.canonical import sha256_hex

    parse = _record_function("review_from_bytes")
    if parse is None:
        return UnreadableReview("review records cannot be read here", sha256_hex(body))
    try:
        return parse(body)
    except AegisError as e:
        return UnreadableReview(f"review record does not parse: {e.message}", sha256_hex(body))


def _verdict_function() -> Any:
    return _record_function("review_verdict")


def _record_function(name: str) -> Any:
    import importlib

    try:
        module = importlib.import_module("aegis.review.record")
    except ImportError:
        return None
    return getattr(module, name, None)


def _record_hash(review: Any) -> str:
    return canonical_hash(to_dict(review))


def assess_review(
    review: Any,
    plan_hash: str,
    settings: ReviewSettings,
    *,
    review_hash: str | None = None,
) -> ReviewBinding:
    """Decide whether ``review`` counts for the plan with ``plan_hash``.

    Args:
        review: a review record, or None.
        plan_hash: the plan's SHA-256.
        settings: the policy's review settings (keys, allow_skip, required).
        review_hash: the record's hash if the caller has it.
    """
    if review is None:
        if not settings.required:
            detail = "no review record; policy runs without a model review ([review] required)"
            return ReviewBinding(None, ReviewStatus.SKIPPED, False, detail)
        return ReviewBinding(None, ReviewStatus.MISSING, False, "no review record")
    if isinstance(review, UnreadableReview):
        return ReviewBinding(review.body_hash, ReviewStatus.UNVERIFIED, False, review.reason)
    digest = review_hash or _record_hash(review)
    verdict = _verdict_function()
    if verdict is None:
        # Fail closed until the review record module exists: nothing can verify.
        return ReviewBinding(
            digest, ReviewStatus.UNVERIFIED, False, "review verification is not available"
        )
    raw_status, detail, recommendation, flags = verdict(review, plan_hash, settings.public_keys)
    status = ReviewStatus(raw_status)
    if status is ReviewStatus.SKIPPED and not settings.allow_skip:
        detail = f"{detail} (policy does not accept skipped reviews)"
    counted = status is ReviewStatus.VALID
    return ReviewBinding(
        review_hash=digest,
        status=status,
        counted=counted,
        detail=detail,
        recommendation=recommendation if counted else None,
        flags=tuple(flags) if counted else (),
    )


def merge_review(
    decision: Effect, binding: ReviewBinding, config: PolicyConfig
) -> tuple[Effect, FiredRule | None]:
    """Tighten ``decision`` by the review; return it and the fired review rule, if any."""
    effect: Effect | None = None
    rule_id = ""
    if binding.status in _RAISING:
        effect, rule_id = Effect.REQUIRE_APPROVAL, _RAISING[binding.status]
    elif binding.status is ReviewStatus.SKIPPED and not config.review.allow_skip:
        effect, rule_id = Effect.REQUIRE_APPROVAL, "review.skipped"
    elif binding.counted and binding.recommendation == "deny":
        effect, rule_id = Effect.DENY, "review.deny"
    elif binding.counted and binding.recommendation == "require-approval":
        effect, rule_id = Effect.REQUIRE_APPROVAL, "review.require-approval"
    if effect is None:
        return decision, None
    approval = effect is Effect.REQUIRE_APPROVAL
    fired = FiredRule(
        rule_id=rule_id,
        effect=effect,
        reason=binding.detail,
        contract=None,
        subjects=(),
        approvals=config.approval.count if approval else 0,
        roles=config.approval.roles if approval else (),
    )
    return stricter(decision, effect), fired
