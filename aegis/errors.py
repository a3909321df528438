"""The AegisError tree and its stable exit codes.

Every error a user can reach derives from :class:`AegisError` and carries an
``exit_code`` that never changes once released (STYLE.md section 3). Each layer
subclasses one of the bases below; the CLI's single handler prints
``Error: <message>`` and exits with the code. A refusal never exits 0.

Example:
    >>> raise InputError("bad package name 'x;y'")  # exits 3 from the CLI
"""

from __future__ import annotations


class AegisError(Exception):
    """Base of every error Aegis reports to a user."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        """Keep the message and an optional hint apart so the CLI can format both.

        Args:
            message: What went wrong, in one line.
            hint: What the user can do about it; shown on its own line.
        """
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """Return the full text shown to the user, hint included."""
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class InputError(AegisError):
    """Input rejected: malformed, bad name, unknown key, too large."""

    exit_code = 3


class TrustError(AegisError):
    """Trust failure: signature, hash, expiry, key."""

    exit_code = 4


class PolicyDenied(AegisError):
    """The deterministic policy denied the change."""

    exit_code = 5


class StateError(AegisError):
    """State conflict: stale plan, illegal transition, replay, lost race."""

    exit_code = 6


class EnvironmentFailure(AegisError):
    """Environment: daemon down, tool failed, database locked, read-only path."""

    exit_code = 7


class ApprovalRequired(AegisError):
    """Human approval required by policy, or approvals missing at signing."""

    exit_code = 8


class ExecutionFailed(AegisError):
    """The change ran and the executor reported a non-zero exit."""

    exit_code = 9


class OutcomeUnknown(AegisError):
    """The outcome is unknown (interrupted); needs ``aegisctl resolve``."""

    exit_code = 10


class StageUnavailableError(StateError):
    """A lifecycle stage has no implementation registered yet."""


EXIT_CODES: dict[type[AegisError], int] = {
    InputError: 3,
    TrustError: 4,
    PolicyDenied: 5,
    StateError: 6,
    EnvironmentFailure: 7,
    ApprovalRequired: 8,
    ExecutionFailed: 9,
    OutcomeUnknown: 10,
}
