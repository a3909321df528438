"""Verify a signed execution plan and its approvals against trusted keys.

Uses :mod:`aegis.sign` when it and PyNaCl are importable (the same parser and checks
aegisd uses); otherwise (the contract's stock system ``python3``) falls back to its own
strict parse and Ed25519 verification (:mod:`aegis_policy_helper.ed25519`: PyNaCl
only, Debian's python3-nacl on the system Python) over canonical JSON (sorted keys, compact
separators, UTF-8), which is the same definition of the signed bytes
(``aegis/canonical.py``): the signature covers every field but ``signature_hex``; an
approval's covers every field of the approval but its own.

Approvals are judged at the execution plan's creation time: the report is about what
the signer relied on, possibly long after the approvals expired.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class TrustFailure(Exception):
    """The execution plan or an approval does not verify with the trusted keys."""


@dataclass
class Verification:
    """What was verified, and how."""

    method: str
    """``aegis.sign`` or ``fallback/pynacl``."""
    signature_ok: bool
    signature_detail: str
    approvals: list[dict[str, Any]] = field(default_factory=list)
    document: dict[str, Any] = field(default_factory=dict)

    @property
    def approvals_ok(self) -> bool:
        """True when every included approval counts."""
        return all(a["counted"] for a in self.approvals)


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise TrustFailure(f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def _reject_float(text: str) -> Any:
    raise TrustFailure(f"floats are not allowed ({text[:16]!r})")


def parse_strict(data: bytes) -> dict[str, Any]:
    """Parse JSON refusing duplicate keys, floats and NaN."""
    try:
        doc = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_dupes,
            parse_float=_reject_float,
            parse_constant=_reject_float,
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TrustFailure(f"execution plan is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise TrustFailure("execution plan is not a JSON object")
    return doc


def canonical(value: Any) -> bytes:
    """Canonical JSON bytes (the bytes Aegis signs)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _ed25519_ok(body: Any, sig_hex: str, pub_hex: str) -> bool:
    from aegis_policy_helper.ed25519 import verify

    try:
        key, sig = bytes.fromhex(pub_hex), bytes.fromhex(sig_hex)
    except (ValueError, TypeError):
        return False
    return verify(key, canonical(body), sig)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


DEFAULT_ROLE = "approver"


def approver_grants(approval_keys: list[str]) -> dict[str, set[str]]:
    """``HEX`` or ``ROLE:HEX`` arguments -> key -> roles (every key holds ``approver``)."""
    grants: dict[str, set[str]] = {}
    for value in approval_keys:
        role, _, key = value.strip().rpartition(":")
        roles = grants.setdefault(key.lower(), {DEFAULT_ROLE})
        if role:
            roles.add(role)
    return grants


def verify_with_aegis(data: bytes, exec_key: str, approval_keys: list[str]) -> Verification:
    """Verify with the project's own code (aegis.sign)."""
    from aegis.errors import InputError
    from aegis.sign.approvals import verify_approvals
    from aegis.sign.checks import check_signature
    from aegis.sign.execution_plan import execution_plan_to_dict, parse_execution_plan
    from aegis.sign.times import parse_time

    try:
        ep = parse_execution_plan(data)
    except InputError as e:
        raise TrustFailure(f"execution plan refused: {e.message}") from e
    refusal = check_signature(ep, [exec_key])
    at = parse_time(ep.created_at)
    verdict = verify_approvals(
        ep.approvals,
        plan_hash=ep.plan_hash,
        policy_hash=ep.policy.result_hash,
        trusted_approver_keys=approver_grants(approval_keys),
        signer_key_hex=ep.signer_public_key_hex,
        now=at,
        signer_id=ep.signer_id,
    )
    rows = [
        {"approver_id": a.approver_id, "role": a.role, "counted": True, "reason": "counts"}
        for a in verdict.counted
    ]
    rows += [
        {
            "approver_id": r.approval.approver_id,
            "role": r.approval.role,
            "counted": False,
            "reason": f"{r.reason.value}: {r.detail}",
        }
        for r in verdict.rejected
    ]
    return Verification(
        "aegis.sign",
        refusal is None,
        "trusted signer key" if refusal is None else str(refusal),
        rows,
        execution_plan_to_dict(ep),
    )


def verify_fallback(data: bytes, exec_key: str, approval_keys: list[str]) -> Verification:
    """Verify without the aegis package: strict parse plus Ed25519 (PyNaCl).

    Raises:
        TrustFailure: the document is not strict canonical JSON.
        MissingVerifier: PyNaCl is not installed (nothing is verified).
    """
    from aegis_policy_helper.ed25519 import backend

    method = f"fallback/{backend()}"  # no PyNaCl: refuse before judging anything
    doc = parse_strict(data)
    if data.rstrip(b"\n") != canonical(doc):
        raise TrustFailure("execution plan is not in canonical form")
    sig = doc.get("signature_hex")
    signer = str(doc.get("signer_public_key_hex", "")).lower()
    body = {k: v for k, v in doc.items() if k != "signature_hex"}
    if signer != exec_key.lower():
        ok, detail = False, f"signer key {signer[:16]}... is not the trusted execution key"
    elif not isinstance(sig, str) or not _ed25519_ok(body, sig, signer):
        ok, detail = False, "signature does not verify (document changed)"
    else:
        ok, detail = True, "trusted signer key"
    trusted = approver_grants(approval_keys)
    raw_policy = doc.get("policy")
    policy: dict[str, Any] = raw_policy if isinstance(raw_policy, dict) else {}
    at = _parse_time(str(doc.get("created_at")))
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in doc.get("approvals") or []:
        if not isinstance(item, dict):
            raise TrustFailure("approval is not an object")
        key = str(item.get("public_key_hex", "")).lower()
        reason = _approval_reason(
            item,
            key,
            signer=signer,
            signer_id=doc.get("signer_id"),
            trusted=trusted,
            plan_hash=doc.get("plan_hash"),
            policy_hash=policy.get("result_hash"),
            signed_at=at,
            seen=seen,
        )
        seen.add(key)
        rows.append(
            {
                "approver_id": item.get("approver_id"),
                "role": item.get("role"),
                "counted": reason == "counts",
                "reason": reason,
            }
        )
    return Verification(method, ok, detail, rows, doc)


def _approval_reason(
    item: dict[str, Any],
    key: str,
    *,
    signer: str,
    signer_id: object,
    trusted: dict[str, set[str]],
    plan_hash: object,
    policy_hash: object,
    signed_at: datetime,
    seen: set[str],
) -> str:
    """Say why one approval does not count, or ``"counts"``; same order as aegis.sign."""
    body = {k: v for k, v in item.items() if k != "signature_hex"}
    if key == signer:
        return "signer-key: the signer's own key"
    if signer_id is not None and item.get("approver_id") == signer_id:
        return "self-approval: the approver is the signer"
    if key not in trusted:
        return "untrusted-key"
    if item.get("role") not in trusted[key]:
        return "role-not-granted"
    if not _ed25519_ok(body, str(item.get("signature_hex", "")), key):
        return "bad-signature"
    if item.get("plan_hash") != plan_hash:
        return "other-plan"
    if item.get("policy_hash") != policy_hash:
        return "other-policy"
    if not _parse_time(str(item["created_at"])) <= signed_at < _parse_time(str(item["expires_at"])):
        return "expired or not yet valid when the plan was signed"
    if key in seen:
        return "duplicate-approver"
    return "counts"


def verify_execution_plan(
    data: bytes, exec_key: str, approval_keys: list[str], *, prefer_aegis: bool = True
) -> Verification:
    """Verify with aegis.sign when it and its dependencies import, else with the fallback.

    ``python3 -m`` from the checkout puts ``aegis`` on the path even under a system
    Python without the venv's packages; importing PyNaCl as well proves aegis.sign can
    actually verify instead of failing halfway through.
    """
    if prefer_aegis:
        try:
            import nacl.signing  # noqa: F401

            import aegis.sign.checks  # noqa: F401
        except ImportError:
            pass
        else:
            return verify_with_aegis(data, exec_key, approval_keys)
    return verify_fallback(data, exec_key, approval_keys)
