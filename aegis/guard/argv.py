"""The vocabulary of the guard's rules: :class:`Match`, and getopt-style argument reading.

Pure: no I/O.

Example:
    >>> split_options(["-y", "-o", "A=1", "install", "x"], frozenset({"-o"}))
    (['-y', '-o'], ['install', 'x'])
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Collection, Sequence

TYPE_CHECKING = False  # not typing's: importing typing costs the hook's start-up time
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from aegis.guard.tuples import NamedTuple


class Match(NamedTuple):
    """One rule that an argv breaks."""

    rule: str
    """Stable rule id, e.g. ``apt.mutation``."""
    reason: str
    """Why it is refused, in one line (our own words)."""
    instead: str
    """The Aegis command (or step) to use instead."""


RuleFn = Callable[[Sequence[str]], Match | None]
"""A rule: the arguments after the tool's name -> a match, or None when allowed."""

NO_DIRECT = (
    "Aegis plans apt, pip install, npm install, go get/install, cargo install and image pulls today"
)
ASK_OPERATOR = (
    f"{NO_DIRECT}: ask the operator to review and make this change, or use a Debian "
    "package instead (aegis apt install <package> --plan)"
)
PLAN_NPM = (
    "plan it instead: aegis npm install <package> --project DIR --plan, or --global for "
    "the Aegis-managed prefix (read-only; then "
    "review, policy, sign and aegisd apply it)"
)
PLAN_PIP = (
    "plan it instead: aegis pip install <requirement> --venv DIR --plan, or --target DIR "
    "or --managed NAME (read-only; then "
    "review, policy, sign and aegisd apply it)"
)
PLAN_CARGO = (
    "plan it instead: aegis cargo install <crate> --registry-dir DIR --plan (read-only; then "
    "review, policy, sign and aegisd apply it)"
)
PLAN_GO = (
    "plan it instead: aegis go get <module>@<version> --module DIR --plan, or aegis go "
    "install <package>@<version> --plan (read-only; then review, policy, sign and aegisd "
    "apply it)"
)
_MAX_SHOWN = 10


def split_options(
    args: Sequence[str], value_opts: frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """Split ``args`` into options and operands, the way getopt-style tools read them.

    Short clusters (``-sy``) become one option per letter; an option in ``value_opts``
    takes the rest of its cluster or the next argument as its value (never an operand).
    ``--name=value`` is the option ``--name``; everything after ``--`` is an operand.

    Args:
        args: the arguments after the tool's name.
        value_opts: options that take a value (``-o``, ``--option``).

    Returns:
        (options, operands), each in order.
    """
    options: list[str] = []
    operands: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            operands.extend(args[i:])
            break
        if arg.startswith("--"):
            name = arg.split("=", 1)[0]
            options.append(name)
            if "=" not in arg and name in value_opts:
                i += 1
        elif arg.startswith("-") and len(arg) > 1:
            for pos, letter in enumerate(arg[1:], start=1):
                options.append(f"-{letter}")
                if f"-{letter}" in value_opts:
                    if pos == len(arg) - 1:
                        i += 1  # the value is the next argument
                    break
        else:
            operands.append(arg)
    return options, operands


def operand_indices(args: Sequence[str], value_opts: frozenset[str] = frozenset()) -> list[int]:
    """Indices in ``args`` of the operands, read as :func:`split_options` reads them."""
    found: list[int] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return found + list(range(i + 1, len(args)))
        if arg.startswith("--"):
            i += 2 if "=" not in arg and arg in value_opts else 1
        elif arg.startswith("-") and len(arg) > 1:
            i += 1
            for pos, letter in enumerate(arg[1:], start=1):
                if f"-{letter}" in value_opts:
                    i += 1 if pos == len(arg) - 1 else 0
                    break
        else:
            found.append(i)
            i += 1
    return found


def find_verb(
    operands: Sequence[str], verbs: Collection[str], read_only: Collection[str]
) -> int | None:
    """Index in ``operands`` of the verb a tool acts on, read so that it fails closed.

    The first operand is the verb when the options were read right. An option nobody
    listed as taking a value shifts it (``npm --omit dev install``), so unless the first
    operand is a known read-only verb, the first later operand that is a mutating verb
    counts (``npm view install`` stays read-only).

    Args:
        operands: the operands, in order.
        verbs: the mutating verbs.
        read_only: verbs known to change nothing.

    Returns:
        The index of the mutating verb, or None.
    """
    if not operands or operands[0] in read_only:
        return None
    return next((i for i, o in enumerate(operands) if o in verbs), None)


def quoted(words: Sequence[str]) -> str:
    """Shell-quote words for a hint, showing at most ten."""
    shown = [shlex.quote(w) for w in words[:_MAX_SHOWN]]
    if len(words) > _MAX_SHOWN:
        shown.append("...")
    return " ".join(shown)


# Patterns kept as text: re compiles (and caches) them on first use, so the guard hook
# does not compile at start-up what most command lines never need.
_PACKAGE = r"[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?([=/][A-Za-z0-9+.~:-]+)?"
"""A Debian package name, optionally with :arch, =version or /release (for hints only)."""


def plan(verb: str, packages: Sequence[str] = ()) -> str:
    """The ``aegis apt VERB ... --plan`` command for a hint (``<package>`` when unsure)."""
    if verb in ("upgrade", "update", "full-upgrade"):
        return f"aegis apt {verb} --plan"
    if not packages or not all(re.fullmatch(_PACKAGE, p) for p in packages):
        return f"aegis apt {verb} <package> --plan"
    target = f" {quoted(packages)}"
    return f"aegis apt {verb}{target} --plan"
