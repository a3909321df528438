"""Stage interfaces and the registry that plugs implementations into the lifecycle.

Each stage is a Protocol; an implementation lives beside its stage
(``aegis/review``, ``aegis/policy``, ``aegis/execute``, ``aegis/audit``) and is
registered with ONE line in :data:`STAGES`: ``"name": "module:factory"``, where
``factory(cfg: Config)`` returns the implementation. Until a stage is
registered, asking for it raises :class:`StageUnavailableError` ("not
available", exit 6). No fake is registered by default.

``aegis resume`` uses: ``reviewer`` (analyzed -> reviewed), ``policy``
(reviewed -> policy | denied), ``auditor`` (applied -> audited) and, for
``applying``, only ``executor_status``, which *queries* aegisd's ledger and dpkg
and never re-runs anything; for ``policy`` and ``signed``, ``expiry`` (expire what is
past its time). ``aegis cancel`` of a signed request needs
``revoker``.

Tests may plug in fakes of these Protocols with
``AEGIS_UNSAFE_STAGES="name=module:factory,..."`` (``name=`` disables one); it prints
a warning. ``aegis/devtools/unsafe_fake_stages.py`` holds such fakes.

Example:
    STAGES = {"policy": "aegis.policy.stage:make_evaluator", ...}
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from aegis.errors import StageUnavailableError

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.workflow.records import RequestRecord

UNSAFE_ENV = "AEGIS_UNSAFE_STAGES"

STAGE_NAMES = (
    "analyzer",
    "reviewer",
    "policy",
    "signer",
    "executor",
    "executor_status",
    "revoker",
    "auditor",
    "expiry",
)

STAGES: dict[str, str] = {
    "reviewer": "aegis.review.stage:make_reviewer",
    "policy": "aegis.policy.stage:make_evaluator",
    "executor_status": "aegis.execute.stage:make_status",
    "revoker": "aegis.execute.stage:make_revoker",
    "auditor": "aegis.audit.stage:make_auditor",
    "expiry": "aegis.sign.stage:make_expiry",
}
"""Registered stages: name -> "module:factory" (factory(cfg) -> implementation)."""


@dataclass(frozen=True)
class StageOutcome:
    """What a stage produced: the trigger to fire and the artifact it wrote."""

    trigger: str
    artifact_kind: str | None = None
    artifact: bytes | None = None
    artifact_path: str | None = None
    """Where the stage wrote its result file (e.g. ``reviews/<plan_id>.review.json``)."""
    evidence: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    """One line for the resume report."""


class Analyzer(Protocol):
    """Stage 1: turns an intent into a plan (read-only)."""

    def analyze(self, request: RequestRecord) -> StageOutcome:
        """Return trigger ``analyze`` with the plan artifact."""


class Reviewer(Protocol):
    """Stage 2: the local model review (advisory, signed by aegis-reviewd)."""

    def review(self, request: RequestRecord, plan: bytes) -> StageOutcome:
        """Return trigger ``review`` with the review artifact (file already written)."""


class PolicyEvaluator(Protocol):
    """Stage 3: the deterministic decision."""

    def evaluate(
        self, request: RequestRecord, plan: bytes, review: bytes | None, now: datetime
    ) -> StageOutcome:
        """Return ``decide`` or ``deny`` with the policy artifact (file already written)."""


class Signer(Protocol):
    """Stage 4: signs an execution plan with a human's key (never run by resume)."""

    def sign(self, request: RequestRecord) -> StageOutcome:
        """Return trigger ``sign`` with the execution-plan artifact."""


class Executor(Protocol):
    """Stage 5: submits a signed execution plan to aegisd (never run by resume)."""

    def submit(self, request: RequestRecord, execution_plan: bytes) -> StageOutcome:
        """Return ``finish`` or ``fail`` with the executor-result artifact."""


class ExecutorStatus(Protocol):
    """For ``applying``: ask aegisd's ledger and dpkg what happened; never re-run."""

    def status(self, request: RequestRecord, execution_plan: bytes | None) -> StageOutcome | None:
        """Return ``finish``/``fail`` (executor-result) or ``interrupt``; None while running."""


class Revoker(Protocol):
    """Burns a signed request's execution id in aegisd's ledger."""

    def revoke(self, request: RequestRecord, execution_plan: bytes) -> None:
        """Revoke, or raise an AegisError."""


class Auditor(Protocol):
    """Verifies the request's audit events (applied -> audited)."""

    def verify(self, request: RequestRecord) -> StageOutcome | None:
        """Return trigger ``audit`` when the events verify; None when not yet verifiable."""


class Expiry(Protocol):
    """For ``policy`` and ``signed``: says when evidence or a signed plan has expired."""

    def check(self, request: RequestRecord, now: datetime) -> StageOutcome | None:
        """Return trigger ``expire`` with evidence ``{"reason": ...}``, or None if still valid."""


def _unsafe_overrides(env: dict[str, str] | None = None) -> dict[str, str]:
    text = (env if env is not None else os.environ).get(UNSAFE_ENV, "")
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, target = item.partition("=")
        if name in STAGE_NAMES and (":" in target or target == ""):
            out[name] = target  # "" disables the stage (tests of "not available")
    return out


def stage_target(name: str) -> str | None:
    """The "module:factory" registered for ``name`` (unsafe overrides first), or None."""
    if name not in STAGE_NAMES:
        raise RuntimeError(f"unknown stage {name!r}")
    override = _unsafe_overrides().get(name)
    if override is not None:
        sys.stderr.write(f"Warning: {UNSAFE_ENV} replaces stage {name!r} with {override!r}\n")
        return override or None
    return STAGES.get(name)


def available(name: str) -> bool:
    """True when a stage is registered for ``name``."""
    return stage_target(name) is not None


def get_stage(name: str, cfg: Config) -> Any:
    """Build the implementation of stage ``name``.

    Raises:
        StageUnavailableError: nothing is registered for it (exit 6).
    """
    target = stage_target(name)
    if target is None:
        raise StageUnavailableError(
            f"the {name} stage is not available in this build",
            hint="it is registered in aegis/workflow/stages.py once implemented",
        )
    module_name, _, attr = target.partition(":")
    try:
        factory: Callable[[Config], Any] = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise StageUnavailableError(f"the {name} stage is not available: {e}") from e
    return factory(cfg)
