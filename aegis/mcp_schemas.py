"""The output schemas of the ``aegis mcp`` tools: the CLI's ``--json`` documents, typed.

pydantic derives each tool's ``outputSchema`` from these and checks every structured
result against it. Nested plan, review and policy records stay objects here: their own
schemas are the canonical formats (docs/design.md), and the top-level keys are what an
agent navigates by. Documents that carry publisher- or model-written text list those
fields in ``untrusted`` (:mod:`aegis.agent_text`).
"""

from __future__ import annotations

from typing import Any, NotRequired

# pydantic derives the output schemas, and on Python < 3.12 it needs this TypedDict.
from typing_extensions import TypedDict


class PlanDoc(TypedDict):
    """``aegis <ecosystem> <verb> ... --plan --json``."""

    plan: dict[str, Any]
    plan_path: str
    plan_hash: str
    request_id: str
    untrusted: list[str]


class ReviewDoc(TypedDict):
    """``aegis review PLAN --json``."""

    request_id: str
    state: str
    path: str
    recorded: bool
    reviewer_unavailable: str | None
    advisory: bool
    review: dict[str, Any]
    untrusted: list[str]


class PolicyDoc(TypedDict):
    """``aegis policy PLAN --json``."""

    request_id: str | None
    state: str | None
    path: str | None
    recorded: bool
    result: dict[str, Any]
    explain: NotRequired[dict[str, Any]]
    untrusted: list[str]


class ShowDoc(TypedDict):
    """``aegis show ID --json``."""

    request: dict[str, Any]
    history: list[dict[str, Any]]
    artifacts: list[dict[str, Any]]
    next_triggers: list[str]
    untrusted: list[str]


class RequestsDoc(TypedDict):
    """``aegis requests --json``."""

    requests: list[dict[str, Any]]
    corrupt: NotRequired[list[str]]
    untrusted: list[str]


class RulesDoc(TypedDict):
    """``aegis policy rules [RULE_ID] --json``, as an object: ``{"rules": [...]}``."""

    rules: list[dict[str, Any]]


class GuardFinding(TypedDict):
    """One refused part of a command line."""

    command: str
    rule: str
    reason: str
    instead: str


class VerdictDoc(TypedDict):
    """``aegis guard check --json``."""

    allowed: bool
    findings: list[GuardFinding]


class DoctorCheck(TypedDict):
    """One readiness check."""

    name: str
    status: str
    detail: str


class DoctorDoc(TypedDict):
    """``aegis doctor --json``."""

    ok: bool
    checks: list[DoctorCheck]


class AuditDoc(TypedDict):
    """``aegis audit verify --json``."""

    ok: bool
    path: str
    segments: list[str]
    lines: int
    events: int
    head_seq: int
    head_hash: str
    checkpoints: int
    last_checkpoint_seq: int
    covered_seq: int
    witness_seq: int | None
    problems: list[dict[str, Any]]
    warnings: list[str]
    witness: str | None
    witness_status: str
    tail_checked: bool


class SourcesDoc(TypedDict):
    """``aegis policy sources --json``."""

    policy_path: str
    policy_error: str | None
    sources: list[dict[str, Any]]
