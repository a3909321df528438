"""Exit codes in ``--help``: the full table for the CLIs, and per command the codes it uses.

Both are generated from :mod:`aegis.errors` (codes and meanings), so help text cannot
drift from what the code exits with. Each command lists the error classes it can raise
in :data:`COMMAND_EXITS` (a command's own errors are subclasses of these bases); the
lazy group attaches the epilog when it loads the command (a command both CLIs share,
such as ``requests``, is one object: its line is the same in both). 1 (internal bug) and
2 (usage) can happen anywhere and are named once, in ``aegis --help``.

Example:
    $ aegisctl sign --help | tail -3
    Exit codes: 0 success, 3 input rejected, 4 trust failure, 5 policy denied, 6 state
      conflict, 7 environment, 8 approval required (1 internal bug, 2 usage; every code:
      aegis --help).
"""

from __future__ import annotations

import click

from aegis.errors import (
    AegisError,
    ApprovalRequired,
    EnvironmentFailure,
    ExecutionFailed,
    InputError,
    OutcomeUnknown,
    PolicyDenied,
    StateError,
    TrustError,
    exit_codes_of,
    exit_label,
    exit_table_text,
)

Errors = tuple[type[AegisError], ...]

# Reading configuration and the store: a malformed config or argument (3), a store row
# that fails its hash check (4), a store that is locked, unreadable or missing its
# directory (7). Every command below that opens the store can exit with these.
_READS: Errors = (InputError, TrustError, EnvironmentFailure)
# Recording a step adds the lost race / illegal transition of the state machine (6).
_RECORDS: Errors = (*_READS, StateError)

COMMAND_EXITS: dict[str, Errors] = {
    "aegis apt install": _RECORDS,
    "aegis apt remove": _RECORDS,
    "aegis apt purge": _RECORDS,
    "aegis apt upgrade": _RECORDS,
    "aegis apt full-upgrade": _RECORDS,
    "aegis apt dist-upgrade": _RECORDS,
    "aegis apt update": _RECORDS,
    "aegis pip install": _RECORDS,
    "aegis npm install": _RECORDS,
    "aegis docker pull": _RECORDS,
    "aegis podman pull": _RECORDS,
    "aegis container pull": _RECORDS,
    "aegis cargo install": _RECORDS,
    "aegis go get": _RECORDS,
    "aegis go install": _RECORDS,
    "aegis audit verify": _READS,
    "aegis audit checkpoint": (*_READS, StateError),
    "aegis cancel": _RECORDS,
    "aegis doctor": (InputError, EnvironmentFailure),
    "aegis drift": (InputError, EnvironmentFailure),
    "aegis unattended run": (
        *_RECORDS,
        PolicyDenied,
        ApprovalRequired,
        ExecutionFailed,
        OutcomeUnknown,
    ),
    "aegis fleet plan": (*_RECORDS, PolicyDenied),
    "aegis fleet cohort": (*_RECORDS, PolicyDenied),
    "aegis guard check": (InputError,),
    # Only 0 (allow) and 2 (block: the runtimes' code, also for its own failures).
    "aegis guard hook": (),
    "aegis guard install": (InputError, EnvironmentFailure),
    "aegis guard uninstall": (InputError, EnvironmentFailure),
    "aegis mcp": (EnvironmentFailure,),
    "aegis monitor": _RECORDS,
    "aegis policy": (*_RECORDS, PolicyDenied, ApprovalRequired),
    "aegis policy evaluate": (*_RECORDS, PolicyDenied, ApprovalRequired),
    "aegis policy check": (InputError,),
    "aegis policy init": (InputError, EnvironmentFailure),
    "aegis policy rules": (InputError,),
    "aegis policy sources": (InputError, TrustError, EnvironmentFailure),
    "aegis requests": _READS,
    "aegis resume": _RECORDS,
    "aegis review": _RECORDS,
    "aegis show": _READS,
    "aegis vulndb import": (InputError, EnvironmentFailure),
    "aegis vulndb status": (InputError, EnvironmentFailure),
    "aegis vulndb report": (InputError, EnvironmentFailure),
    "aegis workflow check": (InputError,),
    "aegis workflow graph": (InputError,),
    # 7 also for aegisd's retryable refusals (refused:dpkg-locked, refused:audit-log: nothing
    # ran, the request stays signed) and for a run whose audit events could not be written.
    "aegisctl apply": (
        *_RECORDS,
        PolicyDenied,
        ApprovalRequired,
        ExecutionFailed,
        OutcomeUnknown,
    ),
    "aegisctl approve": (*_RECORDS, PolicyDenied),
    "aegisctl audit-path": (InputError,),
    "aegisctl confirm": (*_RECORDS, ExecutionFailed),
    "aegisctl keygen": (InputError, EnvironmentFailure),
    "aegisctl recover": _RECORDS,
    "aegisctl requests": _READS,
    "aegisctl resolve": _RECORDS,
    "aegisctl resume": _RECORDS,
    "aegisctl revoke": _RECORDS,
    "aegisctl rollback": _RECORDS,
    "aegisctl sign": (*_RECORDS, PolicyDenied, ApprovalRequired),
    "aegisctl snapshot check": (InputError, EnvironmentFailure),
    "aegisctl verify": (InputError, TrustError, PolicyDenied, StateError),
}
"""Command path -> the error bases it can raise (0 is always possible)."""


def command_epilog(path: str) -> str | None:
    """``Exit codes: 0 success, 3 input rejected, ...`` for ``path``; None if unlisted."""
    errors = COMMAND_EXITS.get(path)
    if errors is None:
        return None
    listed = ", ".join(f"{c} {exit_label(c)}" for c in exit_codes_of(errors))
    return f"Exit codes: {listed} (1 internal bug, 2 usage; every code: aegis --help)."


def full_table() -> str:
    """The table as a click epilog (``\\b`` keeps click from re-wrapping it)."""
    return "\b\n" + exit_table_text("Exit codes:")


def attach(command: click.Command, path: str) -> None:
    """Append the exit codes of ``path`` (and of its subcommands) to their help."""
    epilog = command_epilog(path)
    if epilog is not None and "Exit codes: 0" not in (command.epilog or ""):
        command.epilog = f"{command.epilog}\n\n{epilog}" if command.epilog else epilog
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            attach(sub, f"{path} {name}")
