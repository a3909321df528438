"""The review record: signed, bound to a plan; edited or foreign-signed records never count."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from aegis.canonical import canonical_hash, sha256_hex
from aegis.devtools import policy_plans as pp
from aegis.ed25519 import public_hex
from aegis.errors import InputError, TrustError
from aegis.model import plan_hash
from aegis.review.record import (
    REVIEW_SCHEMA,
    Flag,
    Recommendation,
    Review,
    ReviewStatus,
    Risk,
    review_bytes,
    review_from_bytes,
    review_to_dict,
    review_verdict,
    sign_review,
    skipped_review,
    verify_review,
)
from aegis.sign.keys import load_signing_key, write_keypair

PLAN = pp.clean_plan()
DIGEST = plan_hash(PLAN)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    d: Path = tmp_path_factory.mktemp("keys")
    good = load_signing_key(write_keypair(d, "review")[0])
    other = load_signing_key(write_keypair(d, "review", name="other")[0])
    return good, other


def valid(rec: Recommendation = Recommendation.DENY) -> Review:
    return Review(
        schema_version=REVIEW_SCHEMA,
        plan_id=PLAN.plan_id,
        plan_hash=DIGEST,
        status=ReviewStatus.VALID,
        risk=Risk.HIGH,
        flags=(Flag.SUSPICIOUS_SCRIPT,),
        recommendation=rec,
        summary="The postinst fetches code.",
        reason="",
        model="m",
        endpoint="http://127.0.0.1:1/v1",
        prompt_hash="0" * 64,
        reviewed_at="2026-01-01T00:00:00Z",
        latency_ms=12,
        reviewer_public_key_hex="",
        signature="",
    )


def test_signed_review_round_trips_and_verifies(keys) -> None:  # type: ignore[no-untyped-def]
    good, _ = keys
    signed = sign_review(valid(), good)
    data = review_bytes(signed)
    assert review_from_bytes(data) == signed
    assert verify_review(data, public_hex(good), DIGEST) == signed
    # The file bytes are the canonical record: their SHA-256 is the record hash policy binds.
    assert sha256_hex(data) == canonical_hash(review_to_dict(signed))
    status, detail, rec, flags = review_verdict(signed, DIGEST, (public_hex(good),))
    assert (status, rec, flags) == ("valid", "deny", ("suspicious-script",))
    assert "risk high" in detail


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("recommendation", "no-objection"),
        ("risk", "low"),
        ("flags", []),
        ("summary", "All fine."),
        ("plan_hash", "f" * 64),
        ("model", "other-model"),
        ("latency_ms", 1),
    ],
    ids=lambda v: str(v)[:20],
)
def test_a_record_edited_after_signing_does_not_count(keys, field, value) -> None:  # type: ignore[no-untyped-def]
    good, _ = keys
    doc = review_to_dict(sign_review(valid(), good))
    doc[field] = value
    edited = json.dumps(doc).encode()
    digest = DIGEST if field != "plan_hash" else "f" * 64
    with pytest.raises(TrustError):
        verify_review(edited, public_hex(good), digest)
    status, detail, rec, flags = review_verdict(
        review_from_bytes(edited), digest, (public_hex(good),)
    )
    assert (status, rec, flags) == ("unverified", None, ())
    assert "does not verify" in detail


def test_a_record_signed_by_another_key_does_not_count(keys) -> None:  # type: ignore[no-untyped-def]
    good, other = keys
    forged = sign_review(valid(Recommendation.NO_OBJECTION), other)
    with pytest.raises(TrustError, match="signed by"):
        verify_review(review_bytes(forged), public_hex(good), DIGEST)
    status, detail, _, _ = review_verdict(forged, DIGEST, (public_hex(good),))
    assert status == "unverified"
    assert "not aegis-reviewd's configured key" in detail
    # Swapping the recorded key for the trusted one breaks the signature instead.
    swapped = replace(forged, reviewer_public_key_hex=public_hex(good))
    assert review_verdict(swapped, DIGEST, (public_hex(good),))[0] == "unverified"


def test_a_review_of_another_plan_does_not_count(keys) -> None:  # type: ignore[no-untyped-def]
    good, _ = keys
    signed = sign_review(valid(), good)
    other = plan_hash(pp.clean_plan(packages=2))
    assert review_verdict(signed, other, (public_hex(good),))[:2] == (
        "unverified",
        "the review is bound to another plan",
    )
    with pytest.raises(TrustError):
        verify_review(signed, public_hex(good), other)


def test_no_configured_key_counts_nothing(keys) -> None:  # type: ignore[no-untyped-def]
    good, _ = keys
    assert review_verdict(sign_review(valid(), good), DIGEST, ())[0] == "unverified"


def test_unsigned_records_count_only_as_local_skips(keys) -> None:  # type: ignore[no-untyped-def]
    skip = skipped_review(PLAN, "skipped by configuration (--no-review)", pp.CREATED)
    assert review_verdict(skip, DIGEST, ())[0] == "skipped"
    with pytest.raises(TrustError, match="unsigned local skip"):
        verify_review(skip, "00" * 32, DIGEST)
    unsigned_valid = valid(Recommendation.NO_OBJECTION)
    assert review_verdict(unsigned_valid, DIGEST, ("00" * 32,))[0] == "unverified"
    unsigned_failed = replace(skip, status=ReviewStatus.FAILED, reason="endpoint unreachable")
    assert review_verdict(unsigned_failed, DIGEST, ())[0] == "unverified"
    assert review_verdict({"not": "a review"}, DIGEST, ())[0] == "unverified"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "approved"}, "is not one of"),
        ({"recommendation": "approve"}, "is not one of"),
        ({"flags": ["root-kit"]}, "is not one of"),
        ({"extra": 1}, "unknown key"),
        ({"schema_version": "aegis.review/0"}, "not an Aegis review"),
        ({"status": "invalid", "risk": None, "recommendation": None}, "carries no flags"),
        ({"risk": None}, "only a valid review"),
        ({"summary": "x" * 601}, "longer than allowed"),
        ({"plan_hash": "abc"}, "plan_hash"),
        ({"signature": "zz"}, "malformed"),
    ],
    ids=lambda v: str(v)[:24],
)
def test_malformed_records_are_refused(keys, change, message) -> None:  # type: ignore[no-untyped-def]
    good, _ = keys
    doc = {**review_to_dict(sign_review(valid(), good)), **change}
    with pytest.raises(InputError, match=message):
        review_from_bytes(json.dumps(doc).encode())


def test_duplicate_keys_and_oversize_are_refused(keys) -> None:  # type: ignore[no-untyped-def]
    good, _ = keys
    data = review_bytes(sign_review(valid(), good))
    dup = data[:-1] + b',"recommendation":"no-objection"}'
    with pytest.raises(InputError, match="duplicate"):
        review_from_bytes(dup)
    with pytest.raises(InputError, match="bytes"):
        review_from_bytes(b" " * (70 * 1024) + data)
