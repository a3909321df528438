"""Guards: deterministic checks a transition must pass, named in the workflow file.

A guard looks only at evidence loaded *before* the trigger fires (the request's
recorded artifact kinds, the artifact and evidence supplied with the trigger).
It does no I/O and reads no clock. A guard that cannot decide says no: an
artifact that does not parse, or a policy result without a recognisable
decision, fails the guard.

Example:
    >>> inp = GuardInput(trigger="review", state="analyzed", recorded=frozenset({"plan"}),
    ...                  artifact_kind="review", artifact=b"{}", evidence={})
    >>> GUARDS["supplies_review"].check(inp)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aegis.canonical import loads_strict
from aegis.errors import InputError

ARTIFACT_KINDS = frozenset(
    {"plan", "review", "policy", "approval", "execution-plan", "executor-result", "resolution"}
)
"""Every kind of artifact a request may carry (cross-team contract, COMMON.md)."""

DENY_DECISIONS = frozenset({"deny", "denied"})
"""Values of a policy result's decision that mean deny."""

NON_DENY_DECISIONS = frozenset(
    {
        "allow",
        "allow-with-snapshot",
        "allow_with_snapshot",
        "require-approval",
        "require_approval",
        "approval-required",
    }
)
"""Values of a policy result's decision that let the request go on to signing."""

MAX_REASON_CHARS = 2000


@dataclass(frozen=True)
class GuardInput:
    """Everything a guard may look at."""

    trigger: str
    state: str
    """The request's current state."""
    recorded: frozenset[str]
    """Kinds of artifacts already attached to the request: at least every attached kind the
    transition's guards name in :attr:`Guard.kinds` (the store reads the history back from
    its head only as far as it must to find those)."""
    artifact_kind: str | None
    artifact: bytes | None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    """Small facts given with the trigger (e.g. ``reason``, ``execution_id``)."""
    documents: Mapping[str, bytes] = field(default_factory=dict)
    """The newest recorded artifact of each kind the transition's guards name in
    :attr:`Guard.documents`, hash-checked by the store (e.g. the signed execution plan)."""


@dataclass(frozen=True)
class Guard:
    """A named check with the text shown when it refuses."""

    name: str
    check: Callable[[GuardInput], bool]
    refusal: str
    kinds: frozenset[str] = frozenset()
    """The recorded artifact kinds ``check`` looks at; it reads no other of ``recorded``."""
    documents: frozenset[str] = frozenset()
    """The recorded artifact kinds whose newest bytes ``check`` reads from ``documents``."""


def _supplies(kind: str) -> Callable[[GuardInput], bool]:
    def check(inp: GuardInput) -> bool:
        return inp.artifact_kind == kind and inp.artifact is not None and len(inp.artifact) > 0

    return check


def _has(name: str, refusal: str, *kinds: str) -> Guard:
    def check(inp: GuardInput) -> bool:
        return any(k in inp.recorded for k in kinds)

    return Guard(name, check, refusal, frozenset(kinds))


def policy_decision(artifact: bytes | None) -> str | None:
    """Return the decision named in a policy result document, or None when unclear.

    Accepts a top-level ``decision`` (or ``effect``) string, or one nested as
    ``{"decision": {"effect": ...}}``. Anything else is "cannot decide".
    """
    if not artifact:
        return None

    try:
        data = loads_strict(artifact)
    except InputError:
        return None
    if not isinstance(data, dict):
        return None
    for key in ("decision", "effect"):
        value = data.get(key)
        if isinstance(value, dict):
            value = value.get("effect", value.get("decision"))
        if isinstance(value, str):
            return value.strip().lower()
    return None


def _policy_not_deny(inp: GuardInput) -> bool:
    decision = policy_decision(inp.artifact)
    return decision is not None and decision in NON_DENY_DECISIONS


def _policy_is_deny(inp: GuardInput) -> bool:
    decision = policy_decision(inp.artifact)
    return decision is not None and decision in DENY_DECISIONS


def _gives_reason(inp: GuardInput) -> bool:
    reason = inp.evidence.get("reason")
    return isinstance(reason, str) and 0 < len(reason.strip()) <= MAX_REASON_CHARS


AUTOMATION_SIGNER = "automation"
"""The signer id of the host-local automation key (aegis/unattended/scope.py)."""
AUTOMATION_DECISIONS = frozenset({"allow", "allow-with-snapshot"})


def _execution_plan_doc(inp: GuardInput) -> dict[str, Any] | None:
    if inp.artifact_kind != "execution-plan" or not inp.artifact:
        return None

    try:
        data = loads_strict(inp.artifact)
    except InputError:
        return None
    return data if isinstance(data, dict) else None


def _automation_scope(inp: GuardInput) -> bool:
    """The automation key's plan: its signer, allow only, upgrades only, no approvals.

    The structural half of the scope, read from the signed document itself; the sources,
    deny list, size and kernel half is checked by the signer and again by aegisd.
    """
    doc = _execution_plan_doc(inp)
    if doc is None or doc.get("signer_id") != AUTOMATION_SIGNER:
        return False
    policy, intent, targets = doc.get("policy"), doc.get("intent"), doc.get("targets")
    if not isinstance(policy, dict) or policy.get("decision") not in AUTOMATION_DECISIONS:
        return False
    if not isinstance(intent, dict) or intent.get("operation") != "upgrade":
        return False
    if doc.get("approvals") or not isinstance(targets, list) or not targets:
        return False
    return all(isinstance(t, dict) and t.get("action") == "upgrade" for t in targets)


def _signed_by_operator(inp: GuardInput) -> bool:
    doc = _execution_plan_doc(inp)
    return doc is not None and doc.get("signer_id") != AUTOMATION_SIGNER


def _recorded_plan(inp: GuardInput) -> dict[str, Any] | None:
    body = inp.documents.get("execution-plan")
    if not body:
        return None

    try:
        data = loads_strict(body)
    except InputError:
        return None
    return data if isinstance(data, dict) else None


# Health probes (issue 15). The signed execution plan says whether the change is held to a
# verification: its ``verification`` member (probes and deadline) is present only then (the
# plan omits it otherwise). These read that one member of the recorded, hash-checked plan the
# signer produced, not the whole schema (aegis/sign/execution_plan.py parses it in full
# before signing and aegisd again before running), so a request with a plan that does not
# parse as a JSON object passes neither: it can be neither audited nor verified.
def _plan_unverified(inp: GuardInput) -> bool:
    doc = _recorded_plan(inp)
    return doc is not None and doc.get("verification") is None


def _plan_verifies(inp: GuardInput) -> bool:
    doc = _recorded_plan(inp)
    return doc is not None and isinstance(doc.get("verification"), dict)


def _verification_passed(inp: GuardInput) -> bool:
    return inp.evidence.get("verification") == "passed"


def _guards() -> dict[str, Guard]:
    table = [
        Guard("supplies_plan", _supplies("plan"), "the trigger must supply the plan artifact"),
        Guard("supplies_review", _supplies("review"), "the trigger must supply a review"),
        Guard("supplies_policy", _supplies("policy"), "the trigger must supply a policy result"),
        Guard(
            "supplies_execution_plan",
            _supplies("execution-plan"),
            "the trigger must supply the signed execution plan",
        ),
        Guard(
            "supplies_executor_result",
            _supplies("executor-result"),
            "the trigger must supply the executor's result",
        ),
        Guard(
            "supplies_resolution",
            _supplies("resolution"),
            "the trigger must supply the operator's resolution record",
        ),
        _has("has_plan", "the request has no plan", "plan"),
        _has("has_policy", "the request has no policy result", "policy"),
        _has("has_execution_plan", "the request has no signed execution plan", "execution-plan"),
        _has(
            "has_executor_result_or_resolution",
            "the request has neither an executor result nor a resolution",
            "executor-result",
            "resolution",
        ),
        Guard(
            "policy_not_deny",
            _policy_not_deny,
            "the policy result's decision is deny or unreadable (use 'deny')",
        ),
        Guard(
            "policy_is_deny",
            _policy_is_deny,
            "the policy result's decision is not deny (use 'decide')",
        ),
        Guard("gives_reason", _gives_reason, "a non-empty reason (evidence 'reason') is required"),
        Guard(
            "automation_scope",
            _automation_scope,
            "only an allow, upgrade-only plan without approvals, signed as 'automation'",
        ),
        Guard(
            "plan_unverified",
            _plan_unverified,
            "the signed execution plan holds the change to health probes: it is audited only "
            "through 'verify' and 'verified', once aegisd's verification passed",
            frozenset({"execution-plan"}),
            frozenset({"execution-plan"}),
        ),
        Guard(
            "plan_verifies",
            _plan_verifies,
            "the signed execution plan names no health probes (use 'audit')",
            frozenset({"execution-plan"}),
            frozenset({"execution-plan"}),
        ),
        Guard(
            "verification_passed",
            _verification_passed,
            "aegisd's verification has not passed (evidence 'verification' must be 'passed')",
        ),
        Guard(
            "signed_by_operator",
            _signed_by_operator,
            "the automation signer signs only through 'sign_automation'",
        ),
    ]
    return {g.name: g for g in table}


GUARDS: Mapping[str, Guard] = _guards()
"""Every guard a workflow file may name."""
