"""Cohort approvals: one human "yes" for every host whose change is the same (pure).

A cohort approval (schema ``aegis.cohort-approval/1``) binds a cohort hash
(:mod:`aegis.fleet.cohort`: the delta, repository evidence and decision, without
anything host-specific), names the approver, their role and a reason, carries its own
validity window and the approver's public key, and is signed by that key over the
canonical JSON of every other field. Its schema and fields differ from a plan
approval's, so neither signature can be passed off as the other.

It counts for one host's execution plan only when, besides everything a plan approval
needs (signature, trusted key that is not the signer's, granted role, window), the
cohort hash re-computed from that host's own plan and decision equals the one signed
(docs/design.md "Cohort approvals"). The execution plan still binds the host, its
package state and its one-time id: a cohort approval widens who may be approved at
once, never what runs where.

Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aegis.bounds import HEX64_RE as _HASH_RE
from aegis.canonical import loads_strict
from aegis.codec import canonical_of, from_dict, to_dict
from aegis.ed25519 import public_hex, sign_canonical, verify_signed_bytes
from aegis.errors import InputError
from aegis.sign.approvals import (
    CLOCK_SKEW,
    MAX_APPROVAL_TTL,
    MAX_REASON_CHARS,
    ApproverKeys,
    RejectReason,
    approver_grants,
    check_approver_id,
)
from aegis.sign.times import format_time, parse_time

if TYPE_CHECKING:
    from nacl.signing import SigningKey

COHORT_APPROVAL_SCHEMA = "aegis.cohort-approval/1"
MAX_COHORT_APPROVAL_BYTES = 64 * 1024

_SIG_RE = re.compile(r"\A[0-9a-f]{128}\Z")


@dataclass(frozen=True)
class CohortApproval:
    """One signed approval of a cohort hash."""

    schema_version: str
    cohort_hash: str
    """SHA-256 of the cohort document (aegis.fleet.cohort)."""
    approver_id: str
    role: str
    reason: str
    """Untrusted free text, capped; show only through aegis.text."""
    created_at: str
    expires_at: str
    public_key_hex: str
    signature_hex: str


def cohort_approval_bytes(a: CohortApproval) -> bytes:
    """The file bytes: canonical JSON plus a newline."""
    return canonical_of(a) + b"\n"


def cohort_approval_to_dict(a: CohortApproval) -> dict[str, Any]:
    """Return the JSON structure of ``a``."""
    out: dict[str, Any] = to_dict(a)
    return out


def check_cohort_hash(value: str) -> str:
    """Return ``value`` when it is 64 lower-case hex characters.

    Raises:
        InputError: it is not.
    """
    if not _HASH_RE.match(value):
        raise InputError(f"cohort hash {value[:70]!r} must be 64 lower-case hex characters")
    return value


def _validate(a: CohortApproval) -> CohortApproval:
    if a.schema_version != COHORT_APPROVAL_SCHEMA:
        raise InputError(
            f"not a cohort approval (schema_version must be {COHORT_APPROVAL_SCHEMA!r})"
        )
    check_cohort_hash(a.cohort_hash)
    check_approver_id(a.approver_id)
    check_approver_id(a.role)
    if not _HASH_RE.match(a.public_key_hex):
        raise InputError("cohort approval public_key_hex must be 64 lower-case hex characters")
    if not _SIG_RE.match(a.signature_hex):
        raise InputError("cohort approval signature_hex must be 128 lower-case hex characters")
    if not a.reason.strip() or len(a.reason) > MAX_REASON_CHARS:
        raise InputError(f"cohort approval reason must be 1-{MAX_REASON_CHARS} characters")
    if parse_time(a.expires_at, "expires_at") <= parse_time(a.created_at, "created_at"):
        raise InputError("cohort approval expires_at must be after created_at")
    return a


def build_cohort_approval(
    *,
    cohort_hash: str,
    approver_id: str,
    role: str,
    reason: str,
    now: datetime,
    expires_in: timedelta,
    key: SigningKey,
) -> CohortApproval:
    """Build and sign a cohort approval.

    Raises:
        InputError: a malformed field or a validity out of range.
    """
    if expires_in <= timedelta(0) or expires_in > MAX_APPROVAL_TTL:
        raise InputError(
            f"approval validity (--expires-in) must be positive and at most "
            f"{MAX_APPROVAL_TTL.days}d"
        )
    if not reason.strip():
        raise InputError("an approval needs a non-empty --reason")
    unsigned = CohortApproval(
        schema_version=COHORT_APPROVAL_SCHEMA,
        cohort_hash=check_cohort_hash(cohort_hash),
        approver_id=check_approver_id(approver_id),
        role=check_approver_id(role),
        reason=reason,
        created_at=format_time(now),
        expires_at=format_time(now + expires_in),
        public_key_hex=public_hex(key),
        signature_hex="0" * 128,
    )
    body = to_dict(unsigned)
    body.pop("signature_hex")
    return _validate(CohortApproval(**{**body, "signature_hex": sign_canonical(body, key)}))


def cohort_approval_from_dict(data: Any) -> CohortApproval:
    """Parse an untrusted cohort approval structure strictly.

    Raises:
        InputError: wrong schema, unknown or missing keys, malformed fields.
    """
    if not isinstance(data, dict) or data.get("schema_version") != COHORT_APPROVAL_SCHEMA:
        raise InputError(
            f"not a cohort approval (schema_version must be {COHORT_APPROVAL_SCHEMA!r})"
        )
    return _validate(from_dict(CohortApproval, data))


def parse_cohort_approval(data: bytes) -> CohortApproval:
    """Parse cohort approval file bytes strictly (size cap, duplicate keys refused).

    Raises:
        InputError: oversized, not JSON, duplicate keys, or malformed.
    """
    return cohort_approval_from_dict(loads_strict(data, max_bytes=MAX_COHORT_APPROVAL_BYTES))


@dataclass(frozen=True)
class CohortVerdict:
    """Result of :func:`verify_cohort_approvals`."""

    counted: tuple[CohortApproval, ...]
    rejected: tuple[tuple[CohortApproval, RejectReason, str], ...]
    other_cohort: tuple[CohortApproval, ...]
    """Approvals that verify but approve another cohort than this host's: the refusal
    ``refused:cohort`` (kept apart from ``rejected`` so the refusal can name it)."""


def _reject(
    a: CohortApproval,
    *,
    trusted: dict[str, frozenset[str]],
    signer_key_hex: str,
    signer_id: str | None,
    now: datetime,
) -> tuple[RejectReason, str] | None:
    key = a.public_key_hex.lower()
    body = canonical_of(a, omit=("signature_hex",))
    if not verify_signed_bytes(body, a.signature_hex, key):
        return RejectReason.BAD_SIGNATURE, "signature does not verify with its public key"
    if key == signer_key_hex.lower():
        return RejectReason.SIGNER_KEY, "signed by the execution signer's own key"
    if signer_id is not None and a.approver_id == signer_id:
        return RejectReason.SELF_APPROVAL, f"approver {a.approver_id} is the signer"
    if key not in trusted:
        return RejectReason.UNTRUSTED_KEY, f"key {key[:16]}... is not a trusted approver key"
    if a.role not in trusted[key]:
        return RejectReason.ROLE_NOT_GRANTED, f"key {key[:16]}... is not trusted for {a.role!r}"
    created, expires = parse_time(a.created_at), parse_time(a.expires_at)
    if created > now + CLOCK_SKEW:
        return RejectReason.NOT_YET_VALID, f"created {a.created_at}, in the future"
    if expires <= now:
        return RejectReason.EXPIRED, f"expired at {a.expires_at}"
    if expires - created > MAX_APPROVAL_TTL:
        return RejectReason.EXPIRED, f"validity longer than {MAX_APPROVAL_TTL}"
    return None


def verify_cohort_approvals(
    approvals: Iterable[CohortApproval],
    *,
    cohort_hash: str,
    trusted_approver_keys: ApproverKeys,
    signer_key_hex: str,
    now: datetime,
    signer_id: str | None = None,
    seen_keys: Iterable[str] = (),
) -> CohortVerdict:
    """Decide which cohort approvals count for a host whose cohort hash is ``cohort_hash``.

    ``seen_keys`` are keys whose plan approvals already counted: each key counts once.
    """
    trusted = approver_grants(trusted_approver_keys)
    seen = {k.lower() for k in seen_keys}
    counted: list[CohortApproval] = []
    rejected: list[tuple[CohortApproval, RejectReason, str]] = []
    other: list[CohortApproval] = []
    for a in approvals:
        why = _reject(
            a, trusted=trusted, signer_key_hex=signer_key_hex, signer_id=signer_id, now=now
        )
        if why is None and a.public_key_hex.lower() in seen:
            why = RejectReason.DUPLICATE, "this key already approved; it counts once"
        if why is not None:
            rejected.append((a, *why))
        elif a.cohort_hash != cohort_hash:
            other.append(a)
        else:
            seen.add(a.public_key_hex.lower())
            counted.append(a)
    return CohortVerdict(tuple(counted), tuple(rejected), tuple(other))
