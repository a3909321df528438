"""The policy result record (schema ``aegis.policy/1``).

A result binds what was decided to exactly what it was decided about: the plan
hash, the review hash and whether that review counted, the policy version (hash of
the rule-set version and the canonical config) and the evaluation time. It lists
every rule that fired with its effect and reason (deny reasons carry the operator
contract's Deny Interpretation phrase verbatim), the rules that did not fire and
why (for ``--explain``), and what the shadow policy would have decided.

The file ``policy/<plan_id>.policy.json`` holds exactly :func:`result_bytes`
(canonical JSON), so its SHA-256 is :func:`result_hash` and the artifact the store
keeps is byte-identical. Same inputs, time included, give the same bytes.

Example:
    >>> data = result_bytes(result)
    >>> result_from_bytes(data) == result
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aegis.canonical import loads_strict, sha256_hex
from aegis.codec import canonical_of, from_dict, to_dict
from aegis.errors import InputError

POLICY_SCHEMA = "aegis.policy/1"
MAX_RESULT_BYTES = 8 * 1024 * 1024


class Effect(StrEnum):
    """What a rule asks for; also the decision. Strictest first."""

    DENY = "deny"
    REQUIRE_APPROVAL = "require-approval"
    ALLOW_WITH_SNAPSHOT = "allow-with-snapshot"
    ALLOW = "allow"


STRICTNESS: dict[Effect, int] = {
    Effect.DENY: 3,
    Effect.REQUIRE_APPROVAL: 2,
    Effect.ALLOW_WITH_SNAPSHOT: 1,
    Effect.ALLOW: 0,
}
"""Higher is stricter; the strictest fired effect is the decision."""


def stricter(a: Effect, b: Effect) -> Effect:
    """Return the stricter of two effects."""
    return a if STRICTNESS[a] >= STRICTNESS[b] else b


class ReviewStatus(StrEnum):
    """How the review entered the decision."""

    VALID = "valid"
    """Signed by a configured review key, bound to this plan, well-formed: merged."""
    INVALID = "invalid"
    """The reviewer answered outside the schema (recorded by aegis-reviewd)."""
    FAILED = "failed"
    """The reviewer could not answer (endpoint down, error)."""
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    """Skipped by configuration (``--no-review``, no model): neutral."""
    UNVERIFIED = "unverified"
    """Signature does not verify against a configured key, or bound to another plan."""
    MISSING = "missing"
    """No review record at all."""


@dataclass(frozen=True)
class ApprovalControl:
    """How many approvers, with which roles, must sign before execution."""

    count: int
    """Distinct approvers needed (never the signer's own key)."""
    roles: tuple[str, ...]
    """Each role listed must be held by at least one of the approvers."""


@dataclass(frozen=True)
class Controls:
    """Required controls, always explicit."""

    approval: ApprovalControl
    snapshot: bool
    """A dpkg-state snapshot must be taken before running."""


@dataclass(frozen=True)
class FiredRule:
    """A rule that fired."""

    rule_id: str
    effect: Effect
    reason: str
    """What this plan did to fire it (may quote package names: untrusted on screen)."""
    contract: str | None
    """The operator contract's Deny Interpretation phrase, verbatim, for denies."""
    subjects: tuple[str, ...]
    """Packages, repositories or targets concerned."""
    approvals: int = 0
    """Approvers this rule needs (require-approval only)."""
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotFiredRule:
    """A rule that did not fire, and why (shown by ``--explain``)."""

    rule_id: str
    why: str


@dataclass(frozen=True)
class ReviewBinding:
    """Which review was considered and whether it counted."""

    review_hash: str | None
    """SHA-256 of the review record's canonical bytes, or None when there was none."""
    status: ReviewStatus
    counted: bool
    """True only for a valid review that verified and is bound to this plan."""
    detail: str
    recommendation: str | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShadowResult:
    """What the shadow policy would have decided (recorded, never enforced)."""

    policy_version: str
    config_name: str
    decision: Effect
    controls: Controls
    fired: tuple[FiredRule, ...]


@dataclass(frozen=True)
class PolicyResult:
    """The deterministic decision about one plan."""

    schema_version: str
    plan_id: str
    plan_hash: str
    review: ReviewBinding
    ruleset_version: str
    config_name: str
    config_hash: str
    policy_version: str
    """sha256 over canonical {ruleset_version, config}: changes when either changes."""
    evaluated_at: str
    """UTC ISO-8601, second precision, ``Z`` suffix (the ``now`` argument)."""
    decision: Effect
    controls: Controls
    fired: tuple[FiredRule, ...]
    not_fired: tuple[NotFiredRule, ...]
    shadow: ShadowResult | None = None


def result_to_dict(result: PolicyResult) -> dict[str, Any]:
    """The JSON structure of ``result``."""
    out: dict[str, Any] = to_dict(result)
    return out


def result_bytes(result: PolicyResult) -> bytes:
    """Canonical JSON bytes: the file content and the artifact the store keeps."""
    return canonical_of(result)


def result_hash(result: PolicyResult) -> str:
    """SHA-256 hex of :func:`result_bytes`."""
    return sha256_hex(result_bytes(result))


def result_from_dict(data: Any) -> PolicyResult:
    """Parse an untrusted policy result strictly.

    Raises:
        InputError: wrong schema version, unknown or missing keys, wrong types.
    """
    if not isinstance(data, dict) or data.get("schema_version") != POLICY_SCHEMA:
        raise InputError(f"not an Aegis policy result (schema_version must be {POLICY_SCHEMA!r})")
    return from_dict(PolicyResult, data)


def result_from_bytes(raw: bytes) -> PolicyResult:
    """Parse a policy result file strictly (duplicate keys, floats refused)."""
    return result_from_dict(loads_strict(raw, max_bytes=MAX_RESULT_BYTES))
