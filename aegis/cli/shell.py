"""The lazy click group both CLIs use, and the one top-level error handler.

Subcommands come from the tables in :mod:`aegis.cli.commands` and are imported
only when needed. Every :class:`~aegis.errors.AegisError` that escapes a command
is printed once as ``Error: <message>`` on stderr and the process exits with the
error's stable exit code (docs/design.md "Errors and exit codes"). Any other
exception is an internal bug: exit 1 with a one-line message; the traceback only
with ``--debug`` (or ``AEGIS_DEBUG=1``).

Example:
    $ aegis show r-doesnotexist
    Error: no change request 'r-doesnotexist'
      hint: list them with 'aegis requests'
    $ echo $?
    3
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import click

from aegis.errors import AegisError

EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def _debug_requested(args: Sequence[str]) -> bool:
    """True when ``--debug`` appears among the top-level options, or AEGIS_DEBUG is set."""
    if os.environ.get("AEGIS_DEBUG", "") not in ("", "0"):
        return True
    for arg in args:
        if arg == "--debug":
            return True
        if not arg.startswith("-"):
            return False  # the subcommand name: later arguments are not ours
    return False


def _inert(text: str) -> str:
    from aegis.text import inert_block

    return inert_block(text)


def report_error(err: AegisError) -> int:
    """Print ``err`` as ``Error: ...`` on stderr and return its exit code."""
    # Continuation lines are indented, so text inside a message can never start a line of
    # its own that looks like another error or a decision.
    lines = _inert(err.diagnostics()).split("\n")
    body = "\n".join([lines[0], *(f"  {line}" if line[:2] != "  " else line for line in lines[1:])])
    click.echo(f"Error: {body}", err=True)
    return err.exit_code


class LazyGroup(click.Group):
    """A click group whose subcommands are imported from a name -> "module:attr" table."""

    def __init__(
        self,
        *args: Any,
        table: Mapping[str, str],
        refuse_tools: frozenset[str] = frozenset(),
        prog: str = "",
        **kwargs: Any,
    ) -> None:
        """Build the group; ``*args`` and ``**kwargs`` go to :class:`click.Group`.

        Args:
            *args: Passed to :class:`click.Group`.
            table: Command name -> ``"module:attr"``; the module is imported on first use,
                so ``--help`` and each command load only what they need.
            refuse_tools: Names such as ``apt-get`` that are refused with the plan-flow hint
                (exit 3) instead of click's "no such command".
            prog: The program name that keys each command's exit codes
                (:data:`aegis.cli.exits.COMMAND_EXITS`), whatever name it was run under.
            **kwargs: Passed to :class:`click.Group`.
        """
        super().__init__(*args, **kwargs)
        self._table = table
        self._refuse_tools = refuse_tools
        self._prog = prog

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Refuse package-manager-shaped commands no module handles (exit 3, plan flow)."""
        if args and args[0] in self._refuse_tools and self.get_command(ctx, args[0]) is None:
            from aegis.cli.render import refuse_direct_mutation

            raise refuse_direct_mutation(" ".join(args))
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """All command names, eager ones and table ones, sorted."""
        return sorted(set(super().list_commands(ctx)) | set(self._table))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import the command named ``cmd_name`` on first use."""
        eager = super().get_command(ctx, cmd_name)
        if eager is not None:
            return eager
        target = self._table.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(module_name)
        command = getattr(module, attr)
        if not isinstance(command, click.Command):
            raise RuntimeError(f"{target} is not a click command")
        from aegis.cli.exits import attach

        attach(command, f"{self._prog} {cmd_name}")  # its exit codes, in its --help
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List commands; a module that fails to import is listed, not fatal to --help."""
        rows: list[tuple[str, str]] = []
        for name in self.list_commands(ctx):
            try:
                command = self.get_command(ctx, name)
            except Exception as e:  # one broken module must not hide the rest
                rows.append((name, f"(unavailable: {type(e).__name__})"))
                continue
            if command is None or command.hidden:
                continue
            rows.append((name, command.get_short_help_str(limit=formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> NoReturn:
        """Run the CLI; route every error through the one handler and exit."""
        argv = list(sys.argv[1:] if args is None else args)
        debug = _debug_requested(argv)
        try:
            result = super().main(
                args=argv,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = result if isinstance(result, int) and not isinstance(result, bool) else 0
        except AegisError as err:
            if debug:
                traceback.print_exc()
            code = report_error(err)
        except click.exceptions.Exit as e:
            code = e.exit_code
        except click.ClickException as e:
            e.show()
            code = e.exit_code
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            code = EXIT_INTERRUPTED
        except BrokenPipeError:
            # The reader went away (``aegis requests | head``): not an error worth a message.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            code = EXIT_BROKEN_PIPE
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            code = EXIT_INTERRUPTED
        except Exception as e:  # an internal bug: never a silent success
            if debug:
                traceback.print_exc()
            click.echo(
                f"Error: internal error ({type(e).__name__}: {_inert(str(e))}); "
                "rerun with --debug for the traceback",
                err=True,
            )
            code = EXIT_INTERNAL
        sys.stdout.flush()
        sys.exit(code)


def debug_option(f: Any) -> Any:
    """The top-level ``--debug`` flag (read by :meth:`LazyGroup.main` before parsing)."""
    return click.option(
        "--debug",
        is_flag=True,
        default=False,
        expose_value=False,
        is_eager=True,
        help="Show tracebacks for errors.",
    )(f)
