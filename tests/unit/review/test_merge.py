"""Merging is tighten-only: property tests over random decisions, reviews and plans."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.devtools import policy_plans as pp
from aegis.ed25519 import public_hex
from aegis.model import Action, Finding, Operation
from aegis.policy.config import parse_policy_config
from aegis.policy.engine import evaluate
from aegis.policy.result import STRICTNESS, Effect
from aegis.review.merge import merge
from aegis.review.record import (
    REVIEW_SCHEMA,
    Flag,
    Recommendation,
    Review,
    ReviewStatus,
    Risk,
    review_from_bytes,
    review_to_dict,
    sign_review,
)

effects = st.sampled_from(list(Effect))


@st.composite
def reviews(draw: st.DrawFn, plan_hash: str = "a" * 64) -> Review:
    status = draw(st.sampled_from(list(ReviewStatus)))
    valid = status is ReviewStatus.VALID
    return Review(
        schema_version=REVIEW_SCHEMA,
        plan_id="p-1",
        plan_hash=plan_hash,
        status=status,
        risk=draw(st.sampled_from(list(Risk))) if valid else None,
        flags=tuple(draw(st.lists(st.sampled_from(list(Flag)), unique=True))) if valid else (),
        recommendation=draw(st.sampled_from(list(Recommendation))) if valid else None,
        summary=draw(st.text(max_size=50)) if valid else "",
        reason="" if valid else "because",
        model="m",
        endpoint="http://127.0.0.1/v1",
        prompt_hash=None,
        reviewed_at="2026-01-01T00:00:00Z",
        latency_ms=1,
        reviewer_public_key_hex="",
        signature="",
    )


@given(effects, st.one_of(st.none(), reviews()))
def test_merge_never_loosens(decision: Effect, review: Review | None) -> None:
    merged, fired = merge(decision, review)
    assert STRICTNESS[merged] >= STRICTNESS[decision]
    assert len(fired) == 1
    assert fired[0].effect is merged
    if review is None or review.status in (
        ReviewStatus.INVALID,
        ReviewStatus.FAILED,
        ReviewStatus.TIMEOUT,
    ):
        # Failures (and reviews that do not verify) require approval at least.
        assert STRICTNESS[merged] >= STRICTNESS[Effect.REQUIRE_APPROVAL]
    if review is not None and review.status is ReviewStatus.SKIPPED:
        assert merged is decision
        assert fired[0].rule_id == "review.skipped"
    if review is not None and review.recommendation is Recommendation.DENY:
        assert merged is Effect.DENY
    if review is not None and (review.flags or review.risk in (Risk.HIGH, Risk.CRITICAL)):
        # A named concern or a high risk never leaves a change to run unattended.
        assert STRICTNESS[merged] >= STRICTNESS[Effect.REQUIRE_APPROVAL]


def test_valid_review_flags_are_recorded() -> None:
    review = replace(_valid(), flags=(Flag.NETWORK_LISTENER,), recommendation=Recommendation.DENY)
    merged, fired = merge(Effect.ALLOW_WITH_SNAPSHOT, review)
    assert merged is Effect.DENY
    assert fired[0].subjects == ("network-listener",)
    assert fired[0].rule_id == "review.deny"


def test_low_risk_no_objection_leaves_the_decision() -> None:
    merged, fired = merge(Effect.ALLOW_WITH_SNAPSHOT, _valid())
    assert merged is Effect.ALLOW_WITH_SNAPSHOT
    assert fired[0].rule_id == "review.no-objection"


# The attack: a review that names exfiltration (or critical risk) but says "no objection".
@pytest.mark.parametrize(
    ("risk", "flags"),
    [
        (Risk.CRITICAL, (Flag.DATA_EXFILTRATION,)),
        (Risk.CRITICAL, ()),
        (Risk.HIGH, ()),
        (Risk.LOW, (Flag.SUSPICIOUS_SCRIPT,)),
    ],
    ids=["critical-exfiltration", "critical", "high", "low-with-flag"],
)
def test_a_concern_with_no_objection_requires_approval(risk: Risk, flags: tuple[Flag, ...]) -> None:
    review = replace(_valid(), risk=risk, flags=flags)
    merged, fired = merge(Effect.ALLOW, review)
    assert merged is Effect.REQUIRE_APPROVAL
    assert fired[0].rule_id == "review.concern"
    assert fired[0].effect is Effect.REQUIRE_APPROVAL


def _valid() -> Review:
    return Review(
        REVIEW_SCHEMA,
        "p-1",
        "a" * 64,
        ReviewStatus.VALID,
        Risk.LOW,
        (),
        Recommendation.NO_OBJECTION,
        "",
        "",
        "m",
        None,
        None,
        "2026-01-01T00:00:00Z",
        0,
        "",
        "",
    )


# --- Through the real policy engine: random plans x random signed (maybe tampered) reviews.

_KEY_SEED = bytes(range(32))
NOW = datetime.fromisoformat(pp.NOW.replace("Z", "+00:00"))


def _key():  # type: ignore[no-untyped-def]
    from nacl.signing import SigningKey

    return SigningKey(_KEY_SEED)


def _plans() -> list:  # type: ignore[type-arg]
    base = pp.clean_plan(packages=2)
    hostile = replace(
        base,
        findings=(
            Finding("script.download-exec", "pkg0000", "postinst", 1, "hostile", "curl x | sh"),
        ),
    )
    removal = pp.clean_plan(
        changes=(pp.change("pkg0000", action=Action.REMOVE),), operation=Operation.REMOVE
    )
    return [
        base,
        hostile,
        removal,
        pp.clean_plan(packages=7),
        replace(base, repositories=(pp.repository("dist", approved=False),)),
    ]


PLANS = _plans()
CONFIG = parse_policy_config(
    pp.policy_toml(
        review_required=None,
        extra=(f'[review]\npublic_keys = ["{public_hex(_key())}"]\nrequired = true\n'),
    )
)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=0, max_value=len(PLANS) - 1),
    st.data(),
    st.sampled_from(["signed", "tampered", "unsigned", "other-plan", "none"]),
)
def test_no_review_ever_loosens_a_policy_decision(i: int, data: st.DataObject, how: str) -> None:
    from aegis.model import plan_hash

    plan = PLANS[i]
    digest = plan_hash(plan)
    skipped = _valid()
    skipped = replace(
        skipped,
        status=ReviewStatus.SKIPPED,
        risk=None,
        recommendation=None,
        reason="skipped by configuration",
        plan_hash=digest,
    )
    baseline = evaluate(plan, sign_review(skipped, _key()), CONFIG, NOW).decision
    review: Review | None = data.draw(reviews(plan_hash=digest))
    assert review is not None
    if how == "other-plan":
        review = replace(review, plan_hash="b" * 64)
    if how != "unsigned":
        review = sign_review(review, _key())
    if how == "tampered":
        doc = review_to_dict(review)
        doc["latency_ms"] = doc["latency_ms"] + 1
        from aegis.canonical import canonical_bytes

        review = review_from_bytes(canonical_bytes(doc))
    if how == "none":
        review = None
    result = evaluate(plan, review, CONFIG, NOW)
    assert STRICTNESS[result.decision] >= STRICTNESS[baseline]
    counted_failure = review is not None and review.status in (
        ReviewStatus.INVALID,
        ReviewStatus.FAILED,
        ReviewStatus.TIMEOUT,
    )
    if (
        how in ("tampered", "unsigned", "other-plan", "none")
        and not (how == "unsigned" and review is not None and review.status is ReviewStatus.SKIPPED)
    ) or (how == "signed" and counted_failure):
        assert STRICTNESS[result.decision] >= STRICTNESS[Effect.REQUIRE_APPROVAL]
        assert not result.review.counted or result.review.status.value != "valid"
