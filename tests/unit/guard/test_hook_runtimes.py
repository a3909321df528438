"""``aegis guard hook``: every runtime's payload shapes and blocking convention, fail closed.

Each command line of the guard's table is fed to each runtime as that runtime sends it;
the call is blocked (exit 2, the runtime's deny answer) exactly when ``aegis guard check``
refuses it. Malformed, oversized and unreadable payloads, unknown runtimes and a check
that outlasts the watchdog block too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aegis.guard import check as guard_check
from aegis.guard.check import check_command_line
from aegis.guard.hooks import MAX_PAYLOAD, RUNTIMES, respond
from aegis.guard.lr_tables import TABLES
from tests.unit.guard.test_check_table import ALLOWED, HEREDOCS, REFUSED

REPO = Path(__file__).resolve().parents[3]
LINES = [line for _, line, _ in REFUSED] + [line for _, line in ALLOWED if line]


def payload(runtime: str, command: Any) -> bytes:
    """The hook call as each runtime sends it (recorded shapes)."""
    event: dict[str, Any]
    if runtime == "claude-code":
        event = {
            "session_id": "abc123",
            "transcript_path": "/home/agent/.claude/projects/x/abc123.jsonl",
            "cwd": "/home/agent",
            "permission_mode": "default",
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": command, "description": "run it", "timeout": 120000},
        }
    elif runtime == "codex":
        event = {
            "hook_event_name": "PreToolUse",
            "tool_name": "shell",
            "tool_input": {"command": ["bash", "-lc", command]},
            "cwd": "/srv",
        }
    elif runtime == "gemini":
        event = {
            "hook_event_name": "BeforeTool",
            "tool_name": "run_shell_command",
            "tool_input": {"command": command, "description": "x"},
        }
    elif runtime == "cursor":
        event = {
            "hook_event_name": "beforeShellExecution",
            "conversation_id": "c-1",
            "generation_id": "g-1",
            "command": command,
            "cwd": "/srv",
            "workspace_roots": ["/srv"],
        }
    elif runtime == "vscode":
        event = {
            "hookEventName": "PreToolUse",
            "tool_name": "run_in_terminal",
            "tool_input": {"command": command, "explanation": "x", "isBackground": False},
        }
    elif runtime == "copilot":
        # Copilot CLI's camelCase preToolUse; its bash tool's arguments as a JSON string.
        event = {
            "sessionId": "s-1",
            "timestamp": 1765100000000,
            "cwd": "/srv",
            "toolName": "bash",
            "toolArgs": json.dumps({"command": command, "description": "x"}),
        }
    else:
        event = {"command": command}
    return json.dumps(event).encode()


def blocked(runtime: str, code: int, out: str, err: str) -> bool:
    """Whether the answer blocks the call in ``runtime``'s own convention."""
    if runtime == "json":
        doc = json.loads(out)
        assert doc["decision"] == ("allow" if code == 0 else "deny")
        assert doc["allowed"] is (code == 0)
    elif runtime == "cursor" and code:
        assert json.loads(out)["permission"] == "deny"
    elif runtime == "vscode" and code:
        assert json.loads(out)["hookSpecificOutput"]["permissionDecision"] == "deny"
    elif runtime == "copilot":
        assert code == 0  # Copilot CLI runs the call on any non-zero exit
        if not out:
            return False
        assert json.loads(out)["permissionDecision"] == "deny"
        return True
    if code:
        assert code == 2
        assert err or runtime == "json"
        return True
    return False


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_every_line_of_the_guard_table_through_every_runtime(runtime: str) -> None:
    for line in LINES:
        code, out, err = respond(runtime, payload(runtime, line))
        refused = not check_command_line(line).allowed
        assert blocked(runtime, code, out, err) is refused, (runtime, line, out, err)
        if refused and runtime != "json":
            assert "instead:" in (err or out)  # the Aegis command to use instead


def test_copilot_cli_forms_of_the_bash_tool_are_all_checked() -> None:
    line = "sudo apt-get install -y nginx"
    shapes = [
        {"toolName": "bash", "toolArgs": {"command": line}},
        {"toolName": "bash", "toolArgs": json.dumps({"command": line})},
        # The VS Code compatible form (event configured as PreToolUse).
        {"hook_event_name": "PreToolUse", "tool_name": "bash", "tool_input": {"command": line}},
        # A tool name Copilot does not list still carries a command: checked.
        {"toolName": "custom-shell", "toolArgs": {"command": line}},
    ]
    for shape in shapes:
        code, out, _ = respond("copilot", json.dumps(shape).encode())
        assert (code, json.loads(out)["permissionDecision"]) == (0, "deny"), shape
    # Arguments that are not readable JSON under a shell tool: blocked, never guessed.
    for args in ("{not json", "apt-get install x", 7):
        code, out, _ = respond(
            "copilot", json.dumps({"toolName": "bash", "toolArgs": args}).encode()
        )
        assert json.loads(out)["permissionDecision"] == "deny", args
    view = {"toolName": "view", "toolArgs": json.dumps({"path": "/etc/apt/sources.list"})}
    assert respond("copilot", json.dumps(view).encode()) == (0, "", "")


def test_other_tools_are_not_judged() -> None:
    read = {"tool_name": "Read", "tool_input": {"file_path": "/etc/apt/sources.list"}}
    assert respond("claude-code", json.dumps(read).encode())[0] == 0
    cursor_read = {"hook_event_name": "preToolUse", "tool_name": "Read", "tool_input": {}}
    assert respond("cursor", json.dumps(cursor_read).encode())[0] == 0
    # A command under a tool name we do not know is still checked.
    unknown = {"tool_name": "mcp__shell__exec", "tool_input": {"command": "npm ci"}}
    assert respond("claude-code", json.dumps(unknown).encode())[0] == 2


MALFORMED = [
    b"",
    b"not json",
    b"[]",
    b"null",
    b'"apt-get install x"',
    b'{"tool_name": "Bash"}',
    b'{"tool_name": "Bash", "tool_input": {"command": 7}}',
    b'{"tool_name": "Bash", "tool_input": {"command": []}}',
    b'{"tool_name": "Bash", "tool_input": {"command": ["ls", 1]}}',
    b'{"tool_name": "Bash", "tool_input": "apt-get install x"}',
    b"\xff\xfe",
    b'{"tool_name": "Bash", "tool_input": {"command": "ls"}',
    b'{"tool_name": "Bash", "tool_input": {"command": "' + b"a" * MAX_PAYLOAD + b'"}}',
    b"[" * 100000,
]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_and_oversized_payloads_block(runtime: str, raw: bytes) -> None:
    code, out, err = respond(runtime, raw)
    assert blocked(runtime, code, out, err), (runtime, raw[:80])
    assert "could not check this tool call" in (err or out)


def test_unknown_runtime_and_bad_usage_block() -> None:
    assert respond("no-such-runtime", payload("json", "ls"))[0] == 2
    for argv in (["--runtime", "nope"], [], ["--runtime"], ["--json", "x"]):
        proc = subprocess.run(
            [sys.executable, "-m", "aegis", "guard", "hook", *argv],
            input=payload("json", "ls"),
            capture_output=True,
            check=False,
            cwd=REPO,
        )
        assert proc.returncode == 2, (argv, proc.stderr)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_real_process_answers_in_the_runtime_convention(runtime: str) -> None:
    for line, refused in (("sudo apt-get install -y nginx", True), ("ls -la", False)):
        proc = subprocess.run(
            [sys.executable, "-I", "-m", "aegis", "guard", "hook", "--runtime", runtime],
            input=payload(runtime, line).decode(),
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
        )
        assert blocked(runtime, proc.returncode, proc.stdout, proc.stderr) is refused


def test_a_check_that_hangs_is_blocked_by_the_watchdog() -> None:
    code = (
        "import sys, time\n"
        "import aegis.guard.hooks as h\n"
        "h.TIMEOUT = 0.3\n"
        "class Stuck:\n"
        "    def read(self, n):\n"
        "        time.sleep(30)\n"
        "sys.exit(h.main(['--runtime', 'cursor'], Stuck()))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["permission"] == "deny"
    assert "longer than" in proc.stderr


def test_a_crash_inside_the_check_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(text: str) -> Any:
        raise RecursionError("deep")

    monkeypatch.setattr(guard_check, "check_command_line", boom)
    code, _, err = respond("claude-code", payload("claude-code", "ls"))
    assert code == 2
    assert "RecursionError" in err


def test_the_plain_fast_path_agrees_with_the_parser() -> None:
    # A plain command line is checked as its argv without bashlex: the verdict must be
    # the parser's, for every line of the table and for every keyword-led variant.
    extra = ["coproc apt-get install x", "time apt-get install x", "X=1 apt-get install x"]
    extra += ["env X=1 apt-get install x", "if apt-get install x", "nice -n 5 npm ci"]
    for line in [*LINES, *extra, *(text for _, text, _ in HEREDOCS)]:
        walker = guard_check._Walker()
        walker.script(line, 0)
        parsed = {(f.rule, f.command) for f in walker.findings.values()}
        fast = {(f.rule, f.command) for f in check_command_line(line).findings}
        assert fast == parsed, line


def test_shipped_parse_tables_equal_what_bashlex_builds() -> None:
    code = (
        "import json\n"
        "from aegis.guard import lr_tables\n"
        "lr_tables.import_bashlex(record=True)\n"
        "print(json.dumps(lr_tables.RECORDED, sort_keys=True))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert json.loads(proc.stdout) == json.loads(Path(TABLES).read_text()), (
        "bashlex's grammar changed: run python -m aegis.guard.lr_tables"
    )
    # And the patched import uses them: the parser's tables are the shipped ones.
    code = (
        "import json\n"
        "from aegis.guard import lr_tables\n"
        "lr_tables.import_bashlex()\n"
        "import bashlex.parser as p\n"
        "print(json.dumps({str(k): v for k, v in p.yaccparser.action.items()}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert json.loads(proc.stdout) == json.loads(Path(TABLES).read_text())["action"]


def test_the_shipped_parser_skips_yacc_and_a_changed_grammar_is_built_as_before(
    tmp_path: Path,
) -> None:
    # Shipped: yacc's grammar reader (and inspect, which it imports) never runs.
    code = (
        "import sys\n"
        "from aegis.guard import lr_tables\n"
        "lr_tables.import_bashlex()\n"
        "import bashlex\n"
        "print('inspect' in sys.modules, len(bashlex.parse('a | b && c')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert proc.stdout.split() == ["False", "1"]
    # A file recorded from another grammar (one rule's text differs) is not used: bashlex
    # builds its own tables, which equal the true ones.
    stale = json.loads(Path(TABLES).read_text())
    stale["grammar"]["rules"][0][2][0].append("WORD")
    stale["action"]["0"] = {}
    (tmp_path / "lr.json").write_text(json.dumps(stale))
    code = (
        "import json, sys\n"
        "from aegis.guard import lr_tables\n"
        f"lr_tables.TABLES = {str(tmp_path / 'lr.json')!r}\n"
        "lr_tables.import_bashlex()\n"
        "import bashlex, bashlex.parser as p\n"
        "assert len(bashlex.parse('a | b && c')) == 1\n"
        "print(json.dumps({str(k): v for k, v in p.yaccparser.action.items()}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert json.loads(proc.stdout) == json.loads(Path(TABLES).read_text())["action"]


def _documented_hook_commands() -> dict[str, str]:
    """Each runtime's hook command line as docs/agents.md tells operators to configure it."""
    text = (REPO / "docs/agents.md").read_text()
    found: dict[str, str] = {}
    for block in re.findall(r"```(?:json|toml)\n(.*?)```", text, re.S):
        for line in re.findall(
            r'(?:"command"|"bash"|command) ?[:=] ?"(aegis guard hook .*)"', block
        ):
            command = line.replace('\\"', '"')
            found[re.search(r"--runtime (\S+)", command)[1]] = command  # type: ignore[index]
    return found


@pytest.mark.parametrize("installed", [True, False], ids=["installed", "aegis-missing"])
def test_the_documented_hook_commands_block_even_without_aegis(
    installed: bool, tmp_path: Path
) -> None:
    # Run each snippet's command through a real shell, as the runtime would: with aegis on
    # PATH the refusal is the adapter's; with no aegis at all the fallback must still block.
    commands = _documented_hook_commands()
    assert set(commands) == {"claude-code", "codex", "gemini", "cursor", "copilot"}
    bindir = tmp_path / "bin"
    bindir.mkdir()
    if installed:
        (bindir / "aegis").symlink_to(Path(sys.executable).parent / "aegis")
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    for runtime, line in commands.items():
        proc = subprocess.run(
            ["/bin/sh", "-c", line],
            input=payload(runtime, "sudo apt-get install -y nginx"),
            capture_output=True,
            env=env,
            check=False,
        )
        out, err = proc.stdout.decode(), proc.stderr.decode()
        if runtime == "copilot":
            assert proc.returncode == 0, err
            assert json.loads(out)["permissionDecision"] == "deny", out
        else:
            assert proc.returncode == 2, (runtime, err)
        if installed:
            assert "instead:" in (err or out), runtime
