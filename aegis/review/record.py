"""The review record (schema ``aegis.review/1``) and how it is verified. Pure.

A review is the local model's ADVISORY opinion about one plan. aegis-reviewd
builds it, signs its canonical body with its own Ed25519 key and returns it; the
CLI writes it to ``reviews/<plan_id>.review.json`` as exactly
:func:`review_bytes` (canonical JSON), so the file's SHA-256 is the artifact hash
the store keeps and the policy result binds.

Invariants:

- ``status`` is one of valid | invalid | failed | timeout | skipped. Only a
  ``valid`` record carries a ``risk`` and a ``recommendation``; the others carry a
  ``reason`` instead (why the answer was rejected, why the model could not answer,
  why the review was skipped) and no flags.
- ``risk``, ``flags`` and ``recommendation`` come from closed enums; there is no
  "approve" or "allow": a review never approves anything.
- The signature covers every field except ``signature`` itself
  (:func:`signing_body`), including the signer's public key, the plan hash, model,
  endpoint, prompt hash, time and latency.
- A record counts only when :func:`verify_review` accepts it: the signature
  verifies under a key the CALLER trusts (never the key the record names for
  itself) and the record is bound to the plan's hash. An edited record or one
  signed by another key does not count.
- The one exception is a ``skipped`` record written locally by
  ``aegis review --no-review``: it is unsigned (empty key and signature), carries
  no model verdict, and is neutral only where policy accepts skipped reviews
  (``[review] allow_skip``). An unsigned record of any other status never counts.

Example:
    >>> review = sign_review(Review(...), key)  # public_hex: aegis.sign.keys
    >>> data = review_bytes(review)
    >>> verify_review(data, public_hex(key), plan_hash) == review
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aegis.bounds import HEX64_RE as _HEX64
from aegis.canonical import loads_strict
from aegis.codec import canonical_of, from_dict, to_dict
from aegis.ed25519 import public_hex, sign_canonical, verify_canonical
from aegis.errors import InputError, TrustError
from aegis.model import plan_hash

if TYPE_CHECKING:
    from nacl.signing import SigningKey

    from aegis.model import Plan

REVIEW_SCHEMA = "aegis.review/1"
MAX_REVIEW_BYTES = 64 * 1024
"""A stored record larger than this is refused before parsing."""
MAX_SUMMARY_CHARS = 600
"""The model's summary is capped (parse.py rejects longer answers)."""
MAX_REASON_CHARS = 400
_HEX128 = re.compile(r"^[0-9a-f]{128}\Z")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")


class ReviewStatus(StrEnum):
    """How the review went; only ``valid`` carries a model verdict."""

    VALID = "valid"
    INVALID = "invalid"
    """The model answered outside the closed schema."""
    FAILED = "failed"
    """The endpoint could not be used (down, HTTP error, broken protocol)."""
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    """Skipped by configuration (``--no-review``, no model configured): neutral."""


class Risk(StrEnum):
    """Overall risk, a fixed enum."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Flag(StrEnum):
    """Extra concerns the model may raise: a closed list."""

    SUSPICIOUS_SCRIPT = "suspicious-script"
    UNTRUSTED_SOURCE = "untrusted-source"
    UNEXPECTED_DEPENDENCY = "unexpected-dependency"
    PRIVILEGE_CHANGE = "privilege-change"
    NETWORK_LISTENER = "network-listener"
    DATA_EXFILTRATION = "data-exfiltration"
    KERNEL_CHANGE = "kernel-change"
    OTHER_CONCERN = "other-concern"


class Recommendation(StrEnum):
    """What the model recommends; it can never approve."""

    NO_OBJECTION = "no-objection"
    REQUIRE_APPROVAL = "require-approval"
    DENY = "deny"


@dataclass(frozen=True)
class Review:
    """A signed model review of one plan."""

    schema_version: str
    plan_id: str
    plan_hash: str
    """SHA-256 of the reviewed plan's canonical JSON; the record is bound to it."""
    status: ReviewStatus
    risk: Risk | None
    flags: tuple[Flag, ...]
    recommendation: Recommendation | None
    summary: str
    """The model's words: untrusted, shown only through aegis.text."""
    reason: str
    """Why the review is invalid, failed, timed out or skipped (our own words)."""
    model: str | None
    endpoint: str | None
    prompt_hash: str | None
    reviewed_at: str
    """UTC ISO-8601, second precision, ``Z``."""
    latency_ms: int
    reviewer_public_key_hex: str
    """aegis-reviewd's key; empty only for a local unsigned skip."""
    signature: str
    """Hex Ed25519 signature over :func:`signing_body`; empty only for a local skip."""


def _check(review: Review) -> Review:
    """Enforce the record's invariants (the codec checked the types)."""
    if review.schema_version != REVIEW_SCHEMA:
        raise InputError(f"not an Aegis review (schema_version must be {REVIEW_SCHEMA!r})")
    if not _HEX64.match(review.plan_hash):
        raise InputError("review plan_hash must be 64 lowercase hex characters")
    if not _TIME.match(review.reviewed_at):
        raise InputError("review reviewed_at must look like 2026-01-01T00:00:00Z")
    if review.latency_ms < 0:
        raise InputError("review latency_ms must not be negative")
    if len(review.summary) > MAX_SUMMARY_CHARS or len(review.reason) > MAX_REASON_CHARS:
        raise InputError("review summary or reason is longer than allowed")
    if len(set(review.flags)) != len(review.flags):
        raise InputError("review flags repeat")
    if review.prompt_hash is not None and not _HEX64.match(review.prompt_hash):
        raise InputError("review prompt_hash must be 64 lowercase hex characters")
    valid = review.status is ReviewStatus.VALID
    if valid != (review.risk is not None) or valid != (review.recommendation is not None):
        raise InputError("only a valid review carries risk and recommendation")
    if not valid and (review.flags or review.summary):
        raise InputError(f"a {review.status.value} review carries no flags and no summary")
    if not valid and not review.reason:
        raise InputError(f"a {review.status.value} review must say why (reason)")
    signed = bool(review.reviewer_public_key_hex) or bool(review.signature)
    if signed and not (
        _HEX64.match(review.reviewer_public_key_hex) and _HEX128.match(review.signature)
    ):
        raise InputError("review key or signature is malformed")
    return review


def signing_body(review: Review) -> dict[str, Any]:
    """The dict whose canonical bytes are signed: every field but ``signature``."""
    body: dict[str, Any] = to_dict(review)
    body.pop("signature")
    return body


def sign_review(review: Review, key: SigningKey) -> Review:
    """Return ``review`` signed by ``key`` (its public key is recorded and signed too)."""
    _check(replace(review, reviewer_public_key_hex="", signature=""))
    stamped = replace(review, reviewer_public_key_hex=public_hex(key), signature="")
    return _check(replace(stamped, signature=sign_canonical(signing_body(stamped), key)))


def skipped_review(plan: Plan, reason: str, reviewed_at: str) -> Review:
    """An unsigned ``skipped`` record of ``plan`` (``--no-review``; the daemon signs its own).

    Args:
        plan: the plan skipped.
        reason: why (our words, e.g. "skipped by configuration (--no-review)").
        reviewed_at: UTC time, ``2026-01-01T00:00:00Z``.
    """
    return _check(
        Review(
            schema_version=REVIEW_SCHEMA,
            plan_id=plan.plan_id,
            plan_hash=plan_hash(plan),
            status=ReviewStatus.SKIPPED,
            risk=None,
            flags=(),
            recommendation=None,
            summary="",
            reason=reason[:MAX_REASON_CHARS],
            model=None,
            endpoint=None,
            prompt_hash=None,
            reviewed_at=reviewed_at,
            latency_ms=0,
            reviewer_public_key_hex="",
            signature="",
        )
    )


def review_to_dict(review: Review) -> dict[str, Any]:
    """The JSON structure of a review."""
    out: dict[str, Any] = to_dict(review)
    return out


def review_bytes(review: Review) -> bytes:
    """Canonical bytes: the exact content of ``reviews/<plan_id>.review.json``."""
    return canonical_of(review)


def review_from_dict(data: Any) -> Review:
    """Parse an untrusted review structure strictly (no signature check).

    Raises:
        InputError: wrong schema, unknown or missing keys, values outside the enums,
            broken invariants.
    """
    if not isinstance(data, dict) or data.get("schema_version") != REVIEW_SCHEMA:
        raise InputError(f"not an Aegis review (schema_version must be {REVIEW_SCHEMA!r})")
    return _check(from_dict(Review, data))


def review_from_bytes(body: bytes) -> Review:
    """Parse stored review bytes strictly (no signature check; see :func:`verify_review`).

    Raises:
        InputError: too large, not strict JSON, or not a well-formed review.
    """
    return review_from_dict(loads_strict(body, max_bytes=MAX_REVIEW_BYTES))


def is_local_skip(review: Review) -> bool:
    """An unsigned ``skipped`` record (``aegis review --no-review``)."""
    return (
        review.status is ReviewStatus.SKIPPED
        and not review.signature
        and not review.reviewer_public_key_hex
    )


def check_review(review: Review, trusted_keys: tuple[str, ...], plan_hash: str) -> str | None:
    """Why ``review`` does not count for ``plan_hash`` under ``trusted_keys``; None if it does.

    Order: binding to the plan, then the local-skip exception, then the key is one the
    caller trusts, then the signature.
    """
    if review.plan_hash != plan_hash:
        return "the review is bound to another plan"
    if is_local_skip(review):
        return None
    if not review.signature:
        return f"an unsigned {review.status.value} review does not count"
    if not trusted_keys:
        return "no aegis-reviewd key is configured; no signed review can count"
    if review.reviewer_public_key_hex not in trusted_keys:
        return "the review is signed by a key that is not aegis-reviewd's configured key"

    if not verify_canonical(signing_body(review), review.signature, review.reviewer_public_key_hex):
        return "the review's signature does not verify (edited after signing?)"
    return None


def verify_review(
    doc: bytes | dict[str, Any] | Review, review_public_key_hex: str, plan_hash: str
) -> Review:
    """Return the review only if it parses, is signed by the given key and bound to the plan.

    A local unsigned skip is refused here too: this answers "did aegis-reviewd sign
    this review of this plan?".

    Args:
        doc: stored bytes, a parsed JSON dict, or a parsed record.
        review_public_key_hex: aegis-reviewd's key from root-owned configuration.
        plan_hash: the hash of the plan the caller is deciding about.

    Raises:
        InputError: the document is not a well-formed review.
        TrustError: not bound to ``plan_hash``, unsigned, another key, or edited.
    """
    if isinstance(doc, Review):
        review = _check(doc)
    elif isinstance(doc, bytes):
        review = review_from_bytes(doc)
    else:
        review = review_from_dict(doc)
    if is_local_skip(review):
        raise TrustError("the review is an unsigned local skip, not signed by aegis-reviewd")
    why = check_review(review, (review_public_key_hex.lower(),), plan_hash)
    if why is not None:
        raise TrustError(why)
    return review


def review_verdict(
    review: Any, plan_hash: str, public_keys: tuple[str, ...]
) -> tuple[str, str, str | None, tuple[str, ...]]:
    """The policy engine's view of a record: (status, detail, recommendation, flags).

    ``status`` is the record's own status when it counts, else ``unverified``. The
    detail is built from enums and our own reasons only, never the model's summary.
    Never raises.
    """
    if not isinstance(review, Review):
        return "unverified", "not a review record", None, ()
    keys = tuple(k.lower() for k in public_keys)
    why = check_review(review, keys, plan_hash)
    if why is not None:
        return "unverified", why, None, ()
    flags = tuple(f.value for f in review.flags)
    if review.status is ReviewStatus.VALID:
        assert review.risk is not None
        assert review.recommendation is not None
        flag_text = f"; flags: {', '.join(flags)}" if flags else ""
        detail = (
            f"model review (advisory): risk {review.risk.value}, "
            f"recommendation {review.recommendation.value}{flag_text}"
        )
        return "valid", detail, review.recommendation.value, flags
    return review.status.value, f"model review {review.status.value}: {review.reason}", None, ()
