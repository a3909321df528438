"""The deterministic part of the report (pure: the document and times are arguments)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from aegis_policy_helper import REPORT_SCHEMA
from aegis_policy_helper.trust import Verification, canonical

NOTICE = (
    "Advisory only: this report never approves execution, never generates argv and never "
    "overrides aegis policy. dspy_analysis is untrusted advice; deterministic policy changes "
    "need a separate code change with deny-path tests."
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
MAX_ADVICE_CHARS = 8000


def inert(text: str, limit: int = MAX_ADVICE_CHARS) -> str:
    """Strip control and bidi characters and cap the length of untrusted text."""
    return _CONTROL.sub("", text)[:limit]


def summarize(doc: dict[str, Any]) -> dict[str, Any]:
    """The facts a policy maintainer looks at, taken from the signed plan."""
    policy = doc.get("policy") or {}
    targets = doc.get("targets") or []
    plan = doc.get("plan") or {}
    findings = plan.get("findings") or [] if isinstance(plan, dict) else []
    return {
        "execution_id": doc.get("execution_id"),
        "request_id": doc.get("request_id"),
        "plan_hash": doc.get("plan_hash"),
        "signer_id": doc.get("signer_id"),
        "created_at": doc.get("created_at"),
        "expires_at": doc.get("expires_at"),
        "host": doc.get("host"),
        "decision": policy.get("decision"),
        "policy_version": policy.get("policy_version"),
        "rule_ids": list(policy.get("rule_ids") or []),
        "controls": list(policy.get("controls") or []),
        "required_approvals": policy.get("required_approvals"),
        "required_roles": list(policy.get("required_roles") or []),
        "targets": [
            {k: t.get(k) for k in ("name", "arch", "action", "version")}
            for t in targets
            if isinstance(t, dict)
        ],
        "finding_count": len(findings) if isinstance(findings, list) else 0,
        "argv_sha256": hashlib.sha256(canonical(list(doc.get("argv") or []))).hexdigest(),
    }


def observations(summary: dict[str, Any], verification: Verification) -> list[str]:
    """Deterministic policy-maintenance observations."""
    out = []
    counted = sum(1 for a in verification.approvals if a["counted"])
    required = summary.get("required_approvals") or 0
    if counted > required:
        out.append(f"{counted} approvals counted where {required} were required")
    if summary["decision"] == "allow" and summary["finding_count"]:
        out.append(
            f"decision allow with {summary['finding_count']} finding(s): check the rules "
            "that let them through"
        )
    actions = {t.get("action") for t in summary["targets"]}
    for risky in ("remove", "purge", "downgrade"):
        if risky in actions:
            out.append(f"the delta includes a {risky}; confirm it went through an approval path")
    if not summary["rule_ids"]:
        out.append("no rule ids recorded for this decision")
    return out


def build_report(
    *,
    source_path: str,
    source_sha256: str,
    verification: Verification,
    unsafe_unverified: bool,
    dspy_analysis: dict[str, Any],
    generated_at: str,
) -> dict[str, Any]:
    """Assemble the report document."""
    summary = summarize(verification.document)
    return {
        "schema_version": REPORT_SCHEMA,
        "generated_at": generated_at,
        "notice": NOTICE,
        "execution_plan": {"path": source_path, "sha256": source_sha256},
        "verification": {
            "method": verification.method,
            "execution_signature_verified": verification.signature_ok,
            "execution_signature_detail": verification.signature_detail,
            "approvals": verification.approvals,
            "approvals_verified": verification.approvals_ok,
            "unsafe_unverified_allowed": unsafe_unverified,
        },
        "summary": summary,
        "observations": observations(summary, verification),
        "dspy_analysis": dspy_analysis,
    }
