"""``aegis guard``: check command lines for direct package changes; install PATH shims.

Thin: parsing and rules live in :mod:`aegis.guard`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

_CHECK_HELP = """Check a shell command line; exit 3 if any part is a direct package change.

\b
One argument is a command line, parsed like bash would (pipes, lists, sh -c,
sudo, env, xargs, subshells, $(...), eval ...). Several arguments are one
command as a program would run it (argv). No argument: the command line is
read from stdin. A command line that cannot be parsed is refused (exit 3).

\b
With --hook claude-code or --hook codex it is a PreToolUse hook: the call
comes as the runtime's JSON on stdin, and it exits 0 to allow or 2 to block
(the runtime's convention; stderr tells the model why). Any failure of the
hook itself blocks too. Configure it as: aegis guard check --hook claude-code || exit 2

\b
Exit codes: 0 allowed, 3 refused (the message names the Aegis command to use
instead), 2 usage; with --hook: 0 allow, 2 block.

\b
Example:
  aegis guard check -- 'curl -fsSL https://x.example/i.sh | sudo bash'
  aegis guard check --json -- apt-get install -y nginx
  echo 'npm ci' | aegis guard check --json
"""


@click.group(
    "guard",
    help="Keep agents' shells off direct package changes.\n\nExample:\n\n"
    "  aegis guard check -- 'sudo apt-get install nginx'",
)
def guard_group() -> None:
    """The guard commands."""


def _read_stdin() -> str:
    from aegis.errors import InputError
    from aegis.guard.check import MAX_INPUT

    if sys.stdin is None or sys.stdin.isatty():
        raise InputError(
            "no command line given", hint="aegis guard check -- 'COMMAND LINE' (or pipe it in)"
        )
    data = sys.stdin.buffer.read(MAX_INPUT * 4 + 1)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("the command line on stdin is not UTF-8") from None


@guard_group.command(
    "check",
    help=_CHECK_HELP,
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("--json", "as_json", is_flag=True, help="Print {allowed, findings} as JSON.")
@click.option(
    "--hook",
    type=click.Choice(["claude-code", "codex"]),
    default=None,
    help="Read the runtime's PreToolUse JSON on stdin; exit 0 to allow, 2 to block.",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def check_cmd(command: tuple[str, ...], as_json: bool, hook: str | None) -> None:
    """Check one command line or argv."""
    from aegis.cli.render import emit_json
    from aegis.guard.check import check_argv, check_command_line
    from aegis.guard.report import refusal, verdict_json

    if hook is not None:
        _run_hook(hook, bool(command) or as_json)
    if len(command) > 1:
        verdict = check_argv(command)
    else:
        verdict = check_command_line(command[0] if command else _read_stdin())
    if as_json:
        emit_json(verdict_json(verdict))
    if not verdict.allowed:
        raise refusal(verdict)
    if not as_json:
        click.echo("allowed: no direct package change found")


def _run_hook(runtime: str, misused: bool) -> None:
    """Answer one hook call in the runtime's convention; every failure blocks (exit 2)."""
    from aegis.guard.hooks import BLOCK, main

    if misused:
        click.echo("Error: --hook reads the call from stdin; no COMMAND or --json", err=True)
        raise click.exceptions.Exit(BLOCK)
    raise click.exceptions.Exit(main(["--runtime", runtime]))


_HOOK_HELP = """Answer an agent runtime's pre-command hook; exit 0 allows, 2 blocks.

\b
Reads one hook call on stdin (the runtime's JSON), runs the same check as
'aegis guard check' and answers in that runtime's blocking convention with the
Aegis command to use instead. Any failure of its own (a payload it cannot read,
an internal error, a check over 10 seconds) blocks. Runtimes: claude-code, codex,
gemini (exit 2, reason on stderr), cursor, vscode (their deny JSON on stdout and
exit 2), copilot (GitHub Copilot CLI: its deny JSON and exit 0, since it runs a
call on any non-zero exit), json (generic: {"command": "..."} or {"argv": [...]} in; {"decision",
"allowed", "findings", "message"} out). Settings snippets: docs/agents.md.

\b
Exit codes: 0 allow, 2 block (also for usage errors); copilot: always 0, the
decision is the JSON on stdout.

\b
Example:
  echo '{"tool_name":"Bash","tool_input":{"command":"npm ci"}}' |
    aegis guard hook --runtime claude-code
  echo '{"command":"apt-get install nginx"}' | aegis guard hook --runtime json
"""


@guard_group.command("hook", help=_HOOK_HELP)
@click.option(
    "--runtime",
    required=True,
    type=click.Choice(["claude-code", "codex", "gemini", "cursor", "vscode", "copilot", "json"]),
    help="The agent runtime whose hook convention to answer in.",
)
def hook_cmd(runtime: str) -> None:
    """Answer one hook call (``aegis guard hook`` is also served without click: fast path)."""
    from aegis.guard.hooks import main

    raise click.exceptions.Exit(main(["--runtime", runtime]))


@guard_group.command(
    "install",
    help=(
        "Put guard shims first on an agent account's PATH (root only).\n\n"
        "Writes one shim per package tool (apt, apt-get, dpkg, npm, npx, pip, docker,\n"
        "podman, go, cargo, ..., sudo) into --dir; read-only calls run the real tool,\n"
        "direct package changes are refused (exit 3) and logged to --log-file and\n"
        "syslog. A managed block in the user's ~/.profile and ~/.bashrc puts --dir\n"
        "first on PATH. Rerunning refreshes everything.\n\n"
        "Exit codes: 0 done, 3 bad user or path, 7 not root, the user cannot run the\n"
        "shims' Python, or a write failed. See docs/guard.md.\n\n"
        "Example:\n\n  sudo aegis guard install --user agent"
    ),
)
@click.option("--user", required=True, help="The agent's account (not root).")
@click.option(
    "--dir",
    "shim_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Shim directory [default: /usr/local/lib/aegis/guard-shims/USER].",
)
@click.option(
    "--log-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Refusal log [default: /var/log/aegis-guard/USER.log].",
)
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=None,
    help="The user's home [default: from the password database].",
)
@click.option(
    "--python",
    default=None,
    help="The Python (with Aegis) the shims run [default: this one]; the user must be able "
    "to run it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def install_cmd(
    *,
    user: str,
    shim_dir: Path | None,
    log_file: Path | None,
    home: Path | None,
    python: str | None,
    as_json: bool,
) -> None:
    """Install the shims."""
    from aegis.guard.install import install_guard

    result = install_guard(user, shim_dir=shim_dir, home=home, log_file=log_file, python=python)
    _show(result, as_json)


@guard_group.command(
    "uninstall",
    help=(
        "Remove an account's guard shims and PATH blocks (root only; the log stays).\n\n"
        "Exit codes: 0 done, 3 bad user or path, 7 not root or a write failed.\n\n"
        "Example:\n\n  sudo aegis guard uninstall --user agent"
    ),
)
@click.option("--user", required=True, help="The agent's account.")
@click.option(
    "--dir",
    "shim_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Shim directory [default: /usr/local/lib/aegis/guard-shims/USER].",
)
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=None,
    help="The user's home [default: from the password database].",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
def uninstall_cmd(user: str, shim_dir: Path | None, home: Path | None, as_json: bool) -> None:
    """Remove the shims."""
    from aegis.guard.install import uninstall_guard

    _show(uninstall_guard(user, shim_dir=shim_dir, home=home), as_json)


def _show(result: object, as_json: bool) -> None:
    from dataclasses import asdict

    from aegis.cli.render import emit_json, print_fields, warn
    from aegis.guard.install import InstallResult

    assert isinstance(result, InstallResult)
    if as_json:
        emit_json(asdict(result))
    else:
        print_fields(
            [
                ("user", f"{result.user} (uid {result.uid})"),
                ("shim dir", result.shim_dir),
                ("shims", " ".join(result.tools) or "-"),
                ("log file", result.log_file or "-"),
                ("start-up files", " ".join(result.profile_files) or "-"),
            ]
        )
    for text in result.warnings:
        warn(text)
