"""How a guard verdict is told: the refusal error (exit 3) and the ``--json`` document.

``aegis guard check`` and the PATH shims print the same refusal, so an agent learns one
message. Commands come from the agent (untrusted): they pass through :mod:`aegis.text`.

Example:
    >>> from aegis.guard.check import check_command_line
    >>> verdict_json(check_command_line("npm ci"))["allowed"]
    False
"""

from __future__ import annotations

from aegis.errors import InputError
from aegis.guard.check import Verdict
from aegis.text import inert

TYPE_CHECKING = False  # not typing's: importing typing costs the hook's start-up time
if TYPE_CHECKING:
    from typing import Any

_MAX_LISTED = 10


class GuardRefusedError(InputError):
    """A command line holds a direct mutation the operator contract forbids (exit 3)."""


def refusal(verdict: Verdict) -> GuardRefusedError:
    """Build the exit-3 error for a refused verdict (the caller raises it).

    Args:
        verdict: a verdict whose ``allowed`` is False.

    Returns:
        A :class:`GuardRefusedError` listing each finding, with the Aegis ways to do them
        as its hint.
    """
    lines = ["refused by aegis guard: agents on this host make no direct package changes"]
    for f in verdict.findings[:_MAX_LISTED]:
        lines.append(f"- {inert(f.command, max_chars=200)} [{f.rule}]: {inert(f.reason)}")
    if len(verdict.findings) > _MAX_LISTED:
        lines.append(f"- ... and {len(verdict.findings) - _MAX_LISTED} more")
    instead = dict.fromkeys(f.instead for f in verdict.findings[:_MAX_LISTED])
    hint = "\n".join(f"instead: {inert(text)}" for text in instead)
    return GuardRefusedError("\n".join(lines), hint=hint)


def refusal_text(verdict: Verdict) -> str:
    """The refusal exactly as the CLI's error handler prints it (for the shims and hooks).

    They print it themselves to stay light (no click); a test holds the two together.
    """
    lines = refusal(verdict).diagnostics().split("\n")
    rest = [line if line.startswith("  ") else f"  {line}" for line in lines[1:]]
    return "\n".join([f"Error: {lines[0]}", *rest]) + "\n"


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    """The ``--json`` document agent hooks read: ``{"allowed": ..., "findings": [...]}``."""
    return {
        "allowed": verdict.allowed,
        "findings": [
            {"command": f.command, "rule": f.rule, "reason": f.reason, "instead": f.instead}
            for f in verdict.findings
        ],
    }
