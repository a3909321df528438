"""Signed approvals: a human's "yes" bound to one plan and one policy result (pure).

An approval (schema ``aegis.approval/1``) binds the operation plan hash and the
policy result hash, names the approver, their role and a reason, carries its own
validity window and the approver's public key, and is signed by that key over
the canonical JSON of every other field.

Invariants (docs/design.md "Trust", "Who may do what"):

- An approval counts only when its signature verifies, its key is one of the
  trusted approver keys, its key is *not* the execution signer's key and its
  approver id is not the signer's id (nobody approves their own change), it names
  exactly this plan hash and policy result hash, and ``now`` lies in its window.
  Each key counts once.
- The role an approval names is the approver's claim; it counts only when the key
  is trusted for that role. Every trusted approver key holds :data:`DEFAULT_ROLE`;
  other roles are granted per key by the operator (:func:`approver_grants`), so a
  policy that wants a ``security`` approval cannot be met by anyone who types
  ``--role security``.
- ``reason`` is untrusted text: capped at :data:`MAX_REASON_CHARS` and shown
  only through ``aegis.text``.

Nothing here does I/O or reads the clock: keys and ``now`` are arguments.

Example:
    >>> a = build_approval(plan_id="p1", plan_hash=ph, policy_hash=rh, approver_id="alice",
    ...                    role="approver", reason="change 42", now=now,
    ...                    expires_in=timedelta(hours=1), key=alice_key)
    >>> verdict = verify_approvals([a], plan_hash=ph, policy_hash=rh,
    ...     trusted_approver_keys={alice_pub}, signer_key_hex=signer_pub, now=now)
    >>> len(verdict.counted)
    1
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aegis.bounds import HEX64_RE as _HASH_RE
from aegis.canonical import loads_strict, sha256_hex
from aegis.codec import canonical_of, from_dict, to_dict
from aegis.ed25519 import public_hex, sign_canonical, verify_signed_bytes
from aegis.errors import InputError
from aegis.sign.times import format_time, parse_time

if TYPE_CHECKING:
    from nacl.signing import SigningKey

APPROVAL_SCHEMA = "aegis.approval/1"
MAX_APPROVAL_BYTES = 64 * 1024
MAX_REASON_CHARS = 1000
MAX_APPROVAL_TTL = timedelta(days=7)
"""An approval older than this is stale whatever it says."""
DEFAULT_APPROVAL_TTL = timedelta(hours=24)
CLOCK_SKEW = timedelta(seconds=60)
"""Tolerated clock difference between the approver's machine and this one."""
MAX_PLAN_ID_CHARS = 128
"""Bound on the plan id an approval names (ids are short; this only caps hostile input)."""

_ID_RE = re.compile(r"\A[a-z0-9][a-z0-9._@-]{0,63}\Z")
_SIG_RE = re.compile(r"\A[0-9a-f]{128}\Z")


@dataclass(frozen=True)
class Approval:
    """One signed approval."""

    schema_version: str
    plan_id: str
    """Plan id, for file names and people; the binding is ``plan_hash``."""
    plan_hash: str
    """SHA-256 of the operation plan's canonical JSON."""
    policy_hash: str
    """SHA-256 of the policy result's canonical JSON."""
    approver_id: str
    """Lower-case identity of the approver (file-name safe)."""
    role: str
    """Role the approver signs in (e.g. ``approver``, ``security``)."""
    reason: str
    """Untrusted free text, capped; show only through aegis.text."""
    created_at: str
    expires_at: str
    public_key_hex: str
    """The approver's Ed25519 public key; it must also be a trusted approver key."""
    signature_hex: str
    """Signature over the canonical JSON of every other field."""


class RejectReason(StrEnum):
    """Why an approval does not count; values are stable API."""

    BAD_SIGNATURE = "bad-signature"
    SIGNER_KEY = "signer-key"
    SELF_APPROVAL = "self-approval"
    UNTRUSTED_KEY = "untrusted-key"
    OTHER_PLAN = "other-plan"
    OTHER_POLICY = "other-policy"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    DUPLICATE = "duplicate-approver"
    ROLE_NOT_GRANTED = "role-not-granted"


DEFAULT_ROLE = "approver"
"""The role every trusted approver key holds."""

ApproverKeys = Mapping[str, Iterable[str]] | Iterable[str]
"""Trusted approver keys: hex key -> the roles granted beyond :data:`DEFAULT_ROLE`, or
plain hex keys (each holding only :data:`DEFAULT_ROLE`)."""


def approver_grants(keys: ApproverKeys) -> dict[str, frozenset[str]]:
    """Each trusted approver key (lower-case hex) -> every role its approvals may name."""
    if isinstance(keys, Mapping):
        return {k.lower(): frozenset({DEFAULT_ROLE, *roles}) for k, roles in keys.items()}
    return {k.lower(): frozenset({DEFAULT_ROLE}) for k in keys}


@dataclass(frozen=True)
class RejectedApproval:
    """An approval that does not count, and why."""

    approval: Approval
    reason: RejectReason
    detail: str


@dataclass(frozen=True)
class ApprovalVerdict:
    """Result of :func:`verify_approvals`."""

    counted: tuple[Approval, ...]
    """Approvals that count, one per distinct approver key, input order."""
    rejected: tuple[RejectedApproval, ...]

    @property
    def roles(self) -> frozenset[str]:
        """Roles covered by the counted approvals."""
        return frozenset(a.role for a in self.counted)


def approval_body(approval: Approval) -> dict[str, Any]:
    """The signed part: every field except the signature."""
    body: dict[str, Any] = to_dict(approval)
    body.pop("signature_hex")
    return body


def approval_body_bytes(approval: Approval) -> bytes:
    """The signed bytes: ``canonical_bytes(approval_body(approval))``."""
    return canonical_of(approval, omit=("signature_hex",))


def approval_to_dict(approval: Approval) -> dict[str, Any]:
    """Return the JSON structure of ``approval``."""
    out: dict[str, Any] = to_dict(approval)
    return out


def approval_bytes(approval: Approval) -> bytes:
    """The file bytes: canonical JSON plus a newline."""
    return canonical_of(approval) + b"\n"


def approval_hash(approval: Approval) -> str:
    """SHA-256 over the canonical JSON of the whole approval (signature included)."""
    return sha256_hex(canonical_of(approval))


def check_approver_id(value: str) -> str:
    """Return ``value`` when it is a valid approver or signer id.

    Raises:
        InputError: not 1-64 chars of ``a-z 0-9 . _ @ -`` starting with a letter or digit.
    """
    if not _ID_RE.match(value):
        raise InputError(
            f"identity {str(value)[:70]!r} must be 1-64 characters of a-z 0-9 . _ @ - "
            "starting with a letter or digit"
        )
    return value


def _check_reason(reason: str) -> str:
    if not reason.strip():
        raise InputError("an approval needs a non-empty --reason")
    if len(reason) > MAX_REASON_CHARS:
        raise InputError(f"reason is {len(reason)} characters; at most {MAX_REASON_CHARS}")
    return reason


def _validate(approval: Approval) -> Approval:
    if approval.schema_version != APPROVAL_SCHEMA:
        raise InputError(f"not an Aegis approval (schema_version must be {APPROVAL_SCHEMA!r})")
    check_approver_id(approval.approver_id)
    check_approver_id(approval.role)
    if not approval.plan_id or len(approval.plan_id) > MAX_PLAN_ID_CHARS:
        raise InputError(f"approval plan_id must be 1-{MAX_PLAN_ID_CHARS} characters")
    for name in ("plan_hash", "policy_hash"):
        if not _HASH_RE.match(getattr(approval, name)):
            raise InputError(f"approval {name} must be 64 lower-case hex characters")
    if not _HASH_RE.match(approval.public_key_hex):
        raise InputError("approval public_key_hex must be 64 lower-case hex characters")
    if not _SIG_RE.match(approval.signature_hex):
        raise InputError("approval signature_hex must be 128 lower-case hex characters")
    _check_reason(approval.reason)
    created = parse_time(approval.created_at, "approval created_at")
    expires = parse_time(approval.expires_at, "approval expires_at")
    if expires <= created:
        raise InputError("approval expires_at must be after created_at")
    return approval


def build_approval(
    *,
    plan_id: str,
    plan_hash: str,
    policy_hash: str,
    approver_id: str,
    role: str,
    reason: str,
    now: datetime,
    expires_in: timedelta,
    key: SigningKey,
) -> Approval:
    """Build and sign an approval.

    Args:
        plan_id: the plan's id (for file names).
        plan_hash: SHA-256 of the plan being approved.
        policy_hash: SHA-256 of the policy result being approved.
        approver_id: who approves.
        role: the role they approve in.
        reason: why (untrusted text, capped).
        now: creation time (aware UTC).
        expires_in: validity, at most :data:`MAX_APPROVAL_TTL`.
        key: the approver's signing key.

    Raises:
        InputError: a field is malformed or the validity is out of range.
    """
    if expires_in <= timedelta(0) or expires_in > MAX_APPROVAL_TTL:
        raise InputError(
            f"approval validity (--expires-in) must be positive and at most "
            f"{MAX_APPROVAL_TTL.days}d"
        )
    unsigned = Approval(
        schema_version=APPROVAL_SCHEMA,
        plan_id=plan_id,
        plan_hash=plan_hash,
        policy_hash=policy_hash,
        approver_id=approver_id,
        role=role,
        reason=_check_reason(reason),
        created_at=format_time(now),
        expires_at=format_time(now + expires_in),
        public_key_hex=public_hex(key),
        signature_hex="0" * 128,
    )
    body = approval_body(unsigned)
    signed = Approval(**{**body, "signature_hex": sign_canonical(body, key)})
    return _validate(signed)


def approval_from_dict(data: Any) -> Approval:
    """Parse an untrusted approval structure strictly.

    Raises:
        InputError: wrong schema, unknown or missing keys, malformed fields.
    """
    if not isinstance(data, dict) or data.get("schema_version") != APPROVAL_SCHEMA:
        raise InputError(f"not an Aegis approval (schema_version must be {APPROVAL_SCHEMA!r})")
    return _validate(from_dict(Approval, data))


def parse_approval(data: bytes) -> Approval:
    """Parse approval file bytes strictly (size cap, duplicate keys refused).

    Raises:
        InputError: oversized, not JSON, duplicate keys, or malformed.
    """
    return approval_from_dict(loads_strict(data, max_bytes=MAX_APPROVAL_BYTES))


def _reject(
    approval: Approval,
    *,
    plan_hash: str,
    policy_hash: str,
    trusted: Mapping[str, frozenset[str]],
    signer_key_hex: str,
    signer_id: str | None,
    now: datetime,
) -> tuple[RejectReason, str] | None:
    key = approval.public_key_hex.lower()
    # Signature first: nothing else in an unsigned document means anything.
    if not verify_signed_bytes(approval_body_bytes(approval), approval.signature_hex, key):
        return RejectReason.BAD_SIGNATURE, "signature does not verify with its public key"
    # Before trust: the signer's key may also sit among approver keys; it still never counts.
    if key == signer_key_hex.lower():
        return RejectReason.SIGNER_KEY, "signed by the execution signer's own key"
    if signer_id is not None and approval.approver_id == signer_id:
        # Another key of the same person still is the signer approving their own change.
        return RejectReason.SELF_APPROVAL, f"approver {approval.approver_id} is the signer"
    if key not in trusted:
        return RejectReason.UNTRUSTED_KEY, f"key {key[:16]}... is not a trusted approver key"
    if approval.role not in trusted[key]:
        return (
            RejectReason.ROLE_NOT_GRANTED,
            f"key {key[:16]}... is not trusted for role {approval.role!r} "
            f"(it holds: {', '.join(sorted(trusted[key]))})",
        )
    if approval.plan_hash != plan_hash:
        return RejectReason.OTHER_PLAN, f"approves plan {approval.plan_hash[:16]}..., not this one"
    if approval.policy_hash != policy_hash:
        return (
            RejectReason.OTHER_POLICY,
            f"approves policy result {approval.policy_hash[:16]}..., not this one",
        )
    created = parse_time(approval.created_at)
    expires = parse_time(approval.expires_at)
    if created > now + CLOCK_SKEW:
        return RejectReason.NOT_YET_VALID, f"created {approval.created_at}, in the future"
    if expires <= now:
        return RejectReason.EXPIRED, f"expired at {approval.expires_at}"
    if expires - created > MAX_APPROVAL_TTL:
        return RejectReason.EXPIRED, f"validity longer than {MAX_APPROVAL_TTL}"
    return None


def verify_approvals(
    approvals: Iterable[Approval],
    *,
    plan_hash: str,
    policy_hash: str,
    trusted_approver_keys: ApproverKeys,
    signer_key_hex: str,
    now: datetime,
    signer_id: str | None = None,
) -> ApprovalVerdict:
    """Decide which approvals count.

    Args:
        approvals: parsed approvals (from files, the store, or an execution plan).
        plan_hash: the plan they must approve.
        policy_hash: the policy result they must approve.
        trusted_approver_keys: trusted approver keys, with the roles each is granted
            (see :func:`approver_grants`).
        signer_key_hex: the execution signer's public key; its approvals never count.
        now: the time to check validity windows at (aware UTC).
        signer_id: the execution signer's identity; an approval under it never counts.

    Returns:
        The counted approvals (one per key) and every rejected one with its reason.
    """
    trusted = approver_grants(trusted_approver_keys)
    counted: list[Approval] = []
    rejected: list[RejectedApproval] = []
    seen: set[str] = set()
    for approval in approvals:
        why = _reject(
            approval,
            plan_hash=plan_hash,
            policy_hash=policy_hash,
            trusted=trusted,
            signer_key_hex=signer_key_hex,
            signer_id=signer_id,
            now=now,
        )
        if why is None and approval.public_key_hex.lower() in seen:
            why = RejectReason.DUPLICATE, "this key already approved; it counts once"
        if why is not None:
            rejected.append(RejectedApproval(approval, why[0], why[1]))
            continue
        seen.add(approval.public_key_hex.lower())
        counted.append(approval)
    return ApprovalVerdict(tuple(counted), tuple(rejected))


APPROVAL_FIELDS = tuple(f.name for f in fields(Approval))
