"""Hook adapters: answer an agent runtime's pre-command hook in its own blocking convention.

``aegis guard hook --runtime NAME`` reads one hook call on stdin, runs the same check as
``aegis guard check`` and answers the way that runtime blocks a call:

- ``claude-code``, ``codex``, ``gemini``: a ``PreToolUse``/``BeforeTool`` event
  (``{"tool_name": "Bash", "tool_input": {"command": "..."}}``; Codex also sends an argv
  list); exit 2 blocks and the reason goes to stderr, which the model reads;
- ``cursor``: ``beforeShellExecution`` (``{"command": "...", "cwd": ...}``) or
  ``preToolUse``; a ``{"permission": "deny", "user_message", "agent_message"}`` answer on
  stdout, and exit 2 (Cursor blocks on either);
- ``vscode`` (GitHub Copilot agent hooks, Claude Code's format): a ``PreToolUse`` answer
  ``{"hookSpecificOutput": {"permissionDecision": "deny", ...}}`` on stdout, and exit 2;
- ``copilot`` (GitHub Copilot CLI, ``preToolUse``): ``{"toolName": "bash", "toolArgs": ...}``
  (the arguments an object or a JSON string), or its VS Code compatible ``PreToolUse``
  form; ``{"permissionDecision": "deny", "permissionDecisionReason"}`` on stdout and exit
  0, because this runtime logs every non-zero exit and runs the call;
- ``json``, for everything else: ``{"command": "..."}`` or ``{"argv": [...]}`` in,
  ``{"decision": "allow"|"deny", "allowed", "findings", "message"}`` out; exit 0 only
  for allow.

These runtimes run a call when the hook fails any other way (1, 127, a crash; Copilot CLI any
non-zero exit),
so the adapter fails closed by construction: :func:`decide` never raises and blocks
input it cannot read (not JSON, no command, wrong types, over :data:`MAX_PAYLOAD`), and
:func:`main` blocks on any error of its own and, from a watchdog thread, when the check
takes longer than :data:`TIMEOUT` seconds. A payload that carries a command under any tool
name is checked (an unknown shell tool's name must not let it through); other tools are
not ours and are allowed.

Imports stay lazy (no click, no rich): a runtime calls this before every command.

Example:
    >>> decide("claude-code", b'{"tool_name": "Bash", "tool_input": {"command": "npm ci"}}')[0]
    2
"""

from __future__ import annotations

import json
import os
import sys

TYPE_CHECKING = False  # not typing's: every import costs the hook's start-up time
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

SHELL_TOOLS: dict[str, frozenset[str]] = {
    "claude-code": frozenset({"Bash"}),
    "codex": frozenset({"Bash", "shell", "exec_command", "local_shell", "container.exec"}),
    "gemini": frozenset({"run_shell_command"}),
    "cursor": frozenset({"Shell", "terminal", "run_terminal_cmd"}),
    "vscode": frozenset({"run_in_terminal", "runInTerminal", "runTerminalCommand", "Bash"}),
    "copilot": frozenset({"bash", "powershell"}),
    "json": frozenset(),
}
"""Runtime -> the tool names that run shell commands; any tool whose input has a command
string or argv list is checked as well."""
RUNTIMES = tuple(SHELL_TOOLS)
_ANY_SHELL_TOOL = frozenset().union(*SHELL_TOOLS.values())
ALLOW = 0
BLOCK = 2
"""The exit code the runtimes read as "block this call" (Copilot CLI: see :func:`answer`)."""
MAX_PAYLOAD = 1024 * 1024
TIMEOUT = 10.0
"""Seconds before the watchdog blocks a check that has not finished."""
_READ_FAILED = "aegis guard could not check this tool call"


class _Unreadable(ValueError):
    """The payload is not a hook call this adapter can read."""


def _command(runtime: str, event: Any) -> str | list[str] | None:
    """The command of a hook event (a command line or an argv list); None: not a shell call."""
    if not isinstance(event, dict):
        raise _Unreadable("the hook payload is not a JSON object")
    # Copilot CLI's own form names its fields in camelCase; its VS Code form does not.
    if runtime == "copilot" and "toolName" in event:
        event = {"tool_name": event.get("toolName"), "tool_input": event.get("toolArgs")}
    # Cursor's beforeShellExecution and the generic form carry the command on top.
    top_level = "tool_input" not in event and runtime in ("cursor", "json")
    tool_input = event if top_level else event.get("tool_input")
    if isinstance(tool_input, str) and tool_input.startswith("{"):
        # Copilot CLI and Cursor's MCP events may send the arguments as a JSON string.
        try:  # noqa: SIM105 - contextlib is one more import on the hook's hot start
            tool_input = json.loads(tool_input)
        except ValueError:
            pass  # judged below as the string it is
    command = tool_input.get("command") if isinstance(tool_input, dict) else None
    if command is None and runtime == "json" and isinstance(tool_input, dict):
        command = tool_input.get("argv")
    if isinstance(command, str):
        return command
    if isinstance(command, list) and command and all(isinstance(a, str) for a in command):
        return list(command)
    # A shell tool of any runtime without a readable command: block, never guess.
    if command is not None or top_level or event.get("tool_name") in _ANY_SHELL_TOOL:
        raise _Unreadable("the hook payload has no command string or argv list")
    return None  # another tool (Read, Edit, ...): not ours to judge


def _check(command: str | Sequence[str]) -> tuple[bool, str, list[dict[str, str]]]:
    from aegis.guard.check import check_argv, check_command_line

    verdict = check_command_line(command) if isinstance(command, str) else check_argv(command)
    if verdict.allowed:
        return True, "", []
    from aegis.guard.report import refusal_text, verdict_json  # only a refusal needs them

    return False, refusal_text(verdict), verdict_json(verdict)["findings"]


def answer(
    runtime: str, allowed: bool, reason: str, findings: list[dict[str, str]]
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a decision, in ``runtime``'s convention."""
    code = ALLOW if allowed else BLOCK
    if runtime == "json":
        doc = {
            "decision": "allow" if allowed else "deny",
            "allowed": allowed,
            "findings": findings,
            "message": reason,
        }
        return code, json.dumps(doc, sort_keys=True) + "\n", ""
    if allowed:
        return ALLOW, "", ""
    if runtime == "cursor":
        doc = {"permission": "deny", "user_message": reason, "agent_message": reason}
        return BLOCK, json.dumps(doc, sort_keys=True) + "\n", reason
    if runtime == "copilot":
        # Exit 0: Copilot CLI reads a decision only then and runs the call on any other.
        doc = {"permissionDecision": "deny", "permissionDecisionReason": reason}
        return ALLOW, json.dumps(doc, sort_keys=True) + "\n", reason
    if runtime == "vscode":
        specific = {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
        return BLOCK, json.dumps({"hookSpecificOutput": specific}) + "\n", reason
    return BLOCK, "", reason


def failure(runtime: str, why: str) -> tuple[int, str, str]:
    """The blocking answer for a failure of the adapter itself."""
    from aegis.text import inert

    reason = f"Error: {_READ_FAILED} ({inert(why, max_chars=300)}); blocked\n"
    return answer(runtime, False, reason, [])


def decide(runtime: str, payload: bytes) -> tuple[int, str]:
    """Decide one hook call; never raises (the exit code and the text for stderr).

    Args:
        runtime: one of :data:`RUNTIMES`.
        payload: the JSON the runtime wrote on the hook's stdin.

    Returns:
        (0, "") to let the call run; (2, the reason) to block it.
    """
    code, _, err = respond(runtime, payload)
    return code, err


def respond(runtime: str, payload: bytes) -> tuple[int, str, str]:
    """Decide one hook call: (exit code, stdout, stderr) in the runtime's convention."""
    try:
        if runtime not in SHELL_TOOLS:
            raise _Unreadable(f"unknown runtime {runtime!r}")
        if len(payload) > MAX_PAYLOAD:
            raise _Unreadable(f"the hook payload is larger than {MAX_PAYLOAD} bytes")
        event = json.loads(payload.decode("utf-8"))
        command = _command(runtime, event)
        if command is None:
            return answer(runtime, True, "", [])
        return answer(runtime, *_check(command))
    except Exception as e:  # every failure of the adapter blocks: the runtime would fail open
        return failure(runtime, f"{type(e).__name__}: {e}")


USAGE = (
    "usage: aegis guard hook --runtime {" + ",".join(RUNTIMES) + "}\n"
    "  reads one hook call on stdin; exit 0 allows it, 2 blocks it (docs/guard.md)\n"
)


def main(argv: Sequence[str], stdin: Any = None) -> int:
    """``aegis guard hook --runtime NAME``: answer one call, failing closed (exit 2).

    Any error, bad argument or a check that outlasts :data:`TIMEOUT` blocks the call.
    """
    import _thread  # not threading: one lock and one thread, without its import cost

    args = list(argv)
    runtime = "json"
    if len(args) == 2 and args[0] == "--runtime":  # noqa: PLR2004 - the one valid shape
        runtime = args[1]
    elif len(args) == 1 and args[0].startswith("--runtime="):
        runtime = args[0].split("=", 1)[1]
    elif args in (["--help"], ["-h"]):
        sys.stdout.write(USAGE)
        return 0
    else:
        return _emit(failure("json", "usage: aegis guard hook --runtime NAME"), USAGE)
    if runtime not in SHELL_TOOLS:
        return _emit(failure("json", f"unknown runtime {runtime!r}"), USAGE)

    done = _thread.allocate_lock()
    done.acquire()

    def watchdog() -> None:
        # Released by the main thread when it has answered: then nothing to do.
        if done.acquire(timeout=TIMEOUT):
            return
        code, out, err = failure(runtime, f"the check took longer than {TIMEOUT:g} seconds")
        sys.stdout.write(out)
        sys.stderr.write(err)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    _thread.start_new_thread(watchdog, ())
    try:
        source = stdin if stdin is not None else sys.stdin.buffer
        result = respond(runtime, source.read(MAX_PAYLOAD + 1))
    except BaseException as e:  # a crash would let the call run: block instead
        result = failure(runtime, type(e).__name__)
    done.release()
    return _emit(result)


def _emit(result: tuple[int, str, str], extra_err: str = "") -> int:
    code, out, err = result
    sys.stdout.write(out)
    sys.stderr.write(err + extra_err)
    sys.stdout.flush()
    sys.stderr.flush()
    return code
