"""Hook adapters: answer an agent runtime's pre-command hook in its own convention.

Claude Code and Codex call a ``PreToolUse`` hook with JSON on stdin
(``{"tool_name": "Bash", "tool_input": {"command": "..."}}``) and block the call when
the hook exits 2, showing the hook's stderr to the model. Any other non-zero exit is a
mere warning there and the call runs, so an adapter must block on every failure of its
own: :func:`decide` never raises, and returns exit 2 for input it cannot read.

Example:
    >>> decide("claude-code", b'{"tool_name": "Bash", "tool_input": {"command": "npm ci"}}')[0]
    2
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aegis.text import inert

RUNTIMES: dict[str, frozenset[str]] = {
    "claude-code": frozenset({"Bash"}),
    "codex": frozenset({"Bash", "shell", "exec_command", "local_shell", "container.exec"}),
}
"""Runtime -> the tool names that run shell commands (other tools are not ours)."""
ALLOW = 0
BLOCK = 2
"""The exit code both runtimes read as "block this call"."""
MAX_PAYLOAD = 1024 * 1024


def _command(event: Any) -> str | list[str]:
    """The command of a hook event: a command line, or an argv list (Codex's shell tool)."""
    if not isinstance(event, dict):
        raise TypeError("the hook payload is not a JSON object")
    tool_input = event.get("tool_input")
    command = tool_input.get("command") if isinstance(tool_input, dict) else None
    if isinstance(command, str):
        return command
    if isinstance(command, list) and command and all(isinstance(a, str) for a in command):
        return list(command)
    raise TypeError("the hook payload has no tool_input.command string or argv list")


def _check(command: str | Sequence[str]) -> tuple[int, str]:
    from aegis.guard.check import check_argv, check_command_line
    from aegis.guard.report import refusal_text

    verdict = check_command_line(command) if isinstance(command, str) else check_argv(command)
    if verdict.allowed:
        return ALLOW, ""
    return BLOCK, refusal_text(verdict)


def decide(runtime: str, payload: bytes) -> tuple[int, str]:
    """Decide one hook call; never raises.

    Args:
        runtime: a key of :data:`RUNTIMES`.
        payload: the JSON the runtime wrote on the hook's stdin.

    Returns:
        (exit code, stderr text): 0 and "" to let the call run, 2 and the reason to block.
    """
    try:
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"the hook payload is larger than {MAX_PAYLOAD} bytes")
        event = json.loads(payload.decode("utf-8"))
        if not isinstance(event, dict):
            raise TypeError("the hook payload is not a JSON object")
        if event.get("tool_name") not in RUNTIMES[runtime]:
            return ALLOW, ""
        return _check(_command(event))
    except Exception as e:  # every failure of the adapter blocks: the runtime would fail open
        reason = inert(f"{type(e).__name__}: {e}", max_chars=300)
        return BLOCK, f"Error: aegis guard could not check this tool call ({reason}); blocked\n"
