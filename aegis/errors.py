"""The AegisError tree and its stable exit codes.

Every error a user can reach derives from :class:`AegisError` and carries an
``exit_code`` that never changes once released (docs/design.md "Errors and exit codes"). Each layer
subclasses one of the bases below; the CLI's single handler prints
``Error: <message>`` and exits with the code. A refusal never exits 0.

Example:
    >>> raise InputError("bad package name 'x;y'")  # exits 3 from the CLI
"""

from __future__ import annotations


class AegisError(Exception):
    """Base of every error Aegis reports to a user."""

    exit_code: int = 1
    meaning: str = "internal bug: a one-line message; the traceback with --debug"
    """``label: details`` for the exit-code tables of ``--help`` and the docs."""

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
    meaning = "input rejected: malformed, bad name, unknown id, too large"


class TrustError(AegisError):
    """Trust failure: signature, hash, expiry, key."""

    exit_code = 4
    meaning = "trust failure: signature, hash, expiry, key; a corrupted store row"


class PolicyDenied(AegisError):
    """The deterministic policy denied the change."""

    exit_code = 5
    meaning = "policy denied: the deterministic policy refused the change"


class StateError(AegisError):
    """State conflict: stale plan, illegal transition, replay, lost race."""

    exit_code = 6
    meaning = "state conflict: illegal step, stale plan, replay, lost race, stage not available"


class EnvironmentFailure(AegisError):
    """Environment: daemon down, tool failed, database locked, read-only path."""

    exit_code = 7
    meaning = "environment: daemon down, tool failed, store locked or read-only, no access"


class ApprovalRequired(AegisError):
    """Human approval required by policy, or approvals missing at signing."""

    exit_code = 8
    meaning = "approval required: by the policy decision, or approvals missing at signing"


class ExecutionFailed(AegisError):
    """The change ran and the executor reported a non-zero exit."""

    exit_code = 9
    meaning = "execution failed: the change ran and the executor reported a non-zero exit"


class OutcomeUnknown(AegisError):
    """The outcome is unknown (interrupted); needs ``aegisctl resolve``."""

    exit_code = 10
    meaning = "outcome unknown: interrupted; settle it with 'aegisctl resolve'"


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


GENERAL_EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "success"),
    (1, AegisError.meaning),
    (2, "usage: unknown command or option, missing argument"),
)
"""The codes no error class carries: success, an internal bug, click's usage errors."""


def exit_code_table() -> tuple[tuple[int, str], ...]:
    """Every exit code and its meaning, in order.

    The one source of the tables in ``aegis --help``, ``aegisctl --help``, the daemons'
    ``--help`` and the docs (a test holds the docs to it).
    """
    rows = [*GENERAL_EXIT_CODES]
    rows += [(code, cls.meaning) for cls, code in EXIT_CODES.items()]
    return tuple(sorted(rows))


def exit_label(code: int) -> str:
    """The short name of ``code`` (the meaning up to its colon), e.g. ``policy denied``."""
    return dict(exit_code_table())[code].split(":", 1)[0]


def exit_codes_of(errors: tuple[type[AegisError], ...]) -> list[int]:
    """0 and the exit codes of ``errors``, sorted and without duplicates."""
    return sorted({0, *(e.exit_code for e in errors)})


def exit_table_text(title: str) -> str:
    """``title``, then every exit code with its meaning, one a line (for ``--help``)."""
    rows = [f"  {code:>2}  {meaning}" for code, meaning in exit_code_table()]
    return "\n".join([title, *rows])


def daemon_epilog(prog: str, example: str, errors: tuple[type[AegisError], ...]) -> str:
    """A daemon's argparse epilog: its example, the codes it exits with, the full table."""
    used = ", ".join(map(str, exit_codes_of(errors)))
    return f"{example}\n\n{exit_table_text(f'{prog} exits with {used}. Exit codes:')}"
