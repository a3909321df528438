"""Rendering for people (rich tables) and agents (``--json``).

Everything that came from outside Aegis's own code (package text, request fields
read back from the store, model output) is shown only through :mod:`aegis.text`:
table cells are built as ``rich.text.Text`` objects from inert strings, so rich
never parses them as markup and no control or bidi character reaches the
terminal. rich is imported lazily (``aegis --help`` must stay fast).

Example:
    >>> print_table("Requests", ["id", "state"], [["r-1", "analyzed"]])
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aegis.errors import InputError
from aegis.text import inert, rich_text

if TYPE_CHECKING:
    from rich.console import Console


class DirectMutationRefusedError(InputError):
    """A mutation-shaped command ran without ``--plan``: Aegis never mutates directly."""


PLAN_FLOW = (
    "Aegis never changes packages directly. Plan the change, then let it walk the chain:\n"
    "1. aegis {example} --plan   (read-only; prints plans/<plan_id>.json)\n"
    "2. aegis review <plan.json>   (advisory model review)\n"
    "3. aegis policy <plan.json>   (deterministic decision)\n"
    "4. aegisctl sign --plan <plan.json> --key FILE --signer ID\n"
    "5. aegisctl apply --execution-plan <file> --public-key-hex KEY"
)

PLANNED_TOOLS = frozenset({"apt", "pip", "npm", "docker", "podman", "container", "cargo", "go"})
"""Tools Aegis can plan today."""


def refuse_direct_mutation(command: str) -> InputError:
    """Return the refusal for a mutation-shaped command given without ``--plan``.

    Raise the result: ``raise refuse_direct_mutation("apt install nginx")`` (exit 3).

    Args:
        command: the command as typed after ``aegis`` (e.g. ``"apt install nginx"``).
    """
    safe = inert(command, max_chars=200)
    tool = safe.split(" ", 1)[0]
    if tool not in PLANNED_TOOLS:
        return DirectMutationRefusedError(
            f"refusing to run 'aegis {safe}': Aegis never mutates directly, and it plans "
            f"only {', '.join(sorted(PLANNED_TOOLS))} changes today",
            hint=PLAN_FLOW.format(example="apt install <package>"),
        )
    return DirectMutationRefusedError(
        f"refusing to run 'aegis {safe}' without --plan",
        hint=PLAN_FLOW.format(example=safe),
    )


PEOPLE = ("rich.console", "rich.text")  # third-party only: see api_agent.RECORDING_MODULES
"""What printing for people imports (preloaded while a planner waits for its tool)."""


def console(*, stderr: bool = False) -> Console:
    """A rich console for people; plain (no colour) when not a terminal."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output (logs, agents, tests) is not folded at 80 columns: hashes stay whole.
    width = None if stream.isatty() else 200
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout (sorted keys, UTF-8, escapes kept)."""
    # ensure_ascii=True: control and bidi characters leave as \\u escapes, inert in a terminal.
    click.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=True))


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    stderr: bool = False,
) -> None:
    """Print a table; every cell is made inert and shown as plain text.

    Args:
        title: trusted title (our own words), or None.
        columns: trusted column headers.
        rows: cells of any type; each is converted with :func:`aegis.text.inert`.
        stderr: print to stderr instead of stdout.
    """
    from rich.table import Table

    table = Table(title=title, show_lines=False, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(rich_text(cell) for cell in row))
    console(stderr=stderr).print(table)


def print_fields(fields: Sequence[tuple[str, object]]) -> None:
    """Print ``label: value`` lines; values are untrusted and made inert."""
    from rich.text import Text

    out = console()
    width = max((len(label) for label, _ in fields), default=0)
    for label, value in fields:
        line = Text(f"{label.ljust(width)}  ", style="bold")
        line.append_text(rich_text(value))
        out.print(line)


def print_line(text: object, *, style: str = "") -> None:
    """Print one untrusted line inertly."""
    console().print(rich_text(text, style=style))


def print_path(label: str, path: Path) -> None:
    """Print a written file's path (every command that writes a file prints it)."""
    click.echo(f"{label}: {inert(str(path))}")


def warn(message: str) -> None:
    """Print a warning on stderr (message made inert)."""
    click.echo(f"Warning: {inert(message)}", err=True)


def is_tty() -> bool:
    """True when stdout is a terminal."""
    return sys.stdout.isatty()
