"""Named refusals of execution-plan checks, and the error each one raises (pure).

Every check of an execution plan (``aegis/sign/checks.py``) has a stable
step name and, when it fails, a stable refusal code such as ``refused:signature``.
aegisd puts the code into its answer and the audit event; ``aegisctl verify``
prints one row per step. The codes are API: tests, operators and log searches
match on them, so they never change once released.

Each refusal maps to one error class with its exit code (docs/design.md "Errors and exit codes"):
malformed/oversized -> 3, policy -> 5, replayed/revoked -> 6, everything else
(signature, host, time, approvals, re-derivation, argv) -> 4.

Example:
    >>> r = Refusal(RefusalCode.HOST, "signed for host db1, this is web2")
    >>> str(r)
    'refused:host: signed for host db1, this is web2'
    >>> r.error().exit_code
    4
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aegis.errors import AegisError, InputError, PolicyDenied, StateError, TrustError


class RefusalCode(StrEnum):
    """Stable refusal names."""

    MALFORMED = "refused:malformed"
    OVERSIZED = "refused:oversized"
    SIGNATURE = "refused:signature"
    HOST = "refused:host"
    EXPIRED = "refused:expired"
    NOT_YET_VALID = "refused:not-yet-valid"
    REPLAYED = "refused:replayed"
    REVOKED = "refused:revoked"
    APPROVALS = "refused:approvals"
    REDERIVATION = "refused:rederivation"
    POLICY = "refused:policy"
    ARGV = "refused:argv"
    AUTOMATION_SCOPE = "refused:automation-scope"
    COHORT = "refused:cohort"


class CheckStep(StrEnum):
    """Check steps, in aegisd's order (docs/design.md "Trust")."""

    PARSE = "parse"
    SIGNATURE = "signature"
    HOST = "host"
    TIME_WINDOW = "time-window"
    EXECUTION_ID = "execution-id"
    APPROVALS = "approvals"
    REDERIVATION = "rederivation"
    POLICY = "policy"
    ARGV = "argv"
    AUTOMATION_SCOPE = "automation-scope"
    COHORT = "cohort"


CHECK_ORDER: tuple[CheckStep, ...] = tuple(
    s for s in CheckStep if s not in (CheckStep.AUTOMATION_SCOPE, CheckStep.COHORT)
)
"""The fixed order; a later step never runs when an earlier one refused. aegisd adds
``automation-scope`` after ``argv`` only for a plan the automation key signed
(aegis/unattended/trust.py), and ``cohort`` after ``policy`` only for a plan carrying
cohort approvals (its own derivation must be of the approved cohort)."""


@dataclass(frozen=True)
class Refusal:
    """A failed check: its stable code and a human detail (no secrets, no untrusted text)."""

    code: RefusalCode
    detail: str

    def __str__(self) -> str:
        """Render as ``refused:<step>: detail``, the form printed and audited."""
        return f"{self.code.value}: {self.detail}"

    def error(self) -> RefusedError:
        """Return the error to raise for this refusal (docs/design.md "Trust")."""
        cls = _ERROR_CLASS.get(self.code, ExecutionPlanRefusedError)
        return cls(self)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one step, for tables and audit events."""

    step: CheckStep
    ok: bool | None
    """True passed, False refused, None not checked here (said why in ``detail``)."""
    detail: str
    refusal: Refusal | None = None


class RefusedError(AegisError):
    """Base of every execution-plan refusal; ``refusal`` holds the named reason."""

    def __init__(self, refusal: Refusal) -> None:
        """Raise ``refusal`` as an error; the message is its ``code: detail`` text."""
        super().__init__(str(refusal))
        self.refusal = refusal


class ExecutionPlanRefusedError(RefusedError, TrustError):
    """Signature, host, time window, approvals, re-derivation or argv refused (exit 4)."""


class MalformedExecutionPlanError(RefusedError, InputError):
    """The document is oversized or malformed (exit 3)."""


class ReplayRefusedError(RefusedError, StateError):
    """The execution id was already used or revoked (exit 6)."""


class PolicyRefusedError(RefusedError, PolicyDenied):
    """The decision is deny, or re-evaluation is stricter than what was signed (exit 5)."""


_ERROR_CLASS: dict[RefusalCode, type[RefusedError]] = {
    RefusalCode.MALFORMED: MalformedExecutionPlanError,
    RefusalCode.OVERSIZED: MalformedExecutionPlanError,
    RefusalCode.REPLAYED: ReplayRefusedError,
    RefusalCode.REVOKED: ReplayRefusedError,
    RefusalCode.POLICY: PolicyRefusedError,
}
