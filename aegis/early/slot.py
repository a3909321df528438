"""A planning tool started before the CLI has parsed its arguments, kept for one exact claim.

``aegis npm|pip install ... --plan`` spends most of its time waiting for the tool's
resolution, so the CLI starts that tool first (:mod:`aegis.cli.early_plan`: from the words
it was given, with the same checks and the same argv builders the planner uses) and only
then imports click and parses the arguments as always. The normal parse stays the only
source of truth: the planner claims the started tool with the exact key it would start its
own with (:func:`claim`); any other key, or no claim at all, kills the tool's process group
and removes its scratch directory, and nothing the tool did is ever read. A killed tool
ran only a read-only resolution in a scratch directory.

Example:
    slot.put(("pip", argv), PipRun(argv))         # the CLI, before click is imported
    ...
    pip = slot.claim(("pip", argv)) or PipRun(argv)   # the planner
"""

from __future__ import annotations

import atexit
import threading

TYPE_CHECKING = False  # not typing's: importing typing would delay the tool's start
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class Tool(Protocol):
        """A started resolution: :meth:`kill` stops it and removes what it wrote."""

        def kill(self) -> None:
            """Kill the tool's process group and remove its scratch directory."""


_slot: list[tuple[object, Tool]] = []


def put(key: object, tool: Tool) -> None:
    """Keep ``tool`` for a claim with ``key`` (one at a time: any earlier one is killed)."""
    discard()
    _slot.append((key, tool))


def claim(key: object) -> Tool | None:
    """The tool started for exactly ``key``; None (and the started one killed) otherwise."""
    if not _slot:
        return None
    (held, tool) = _slot.pop()
    if held == key:
        return tool
    tool.kill()
    return None


_removals: list[threading.Thread] = []


def remove_later(remove: Callable[[], object]) -> None:
    """Run ``remove`` (a finished tool's scratch removal) in a thread, off the plan's path.

    Under I/O load removing npm's scratch cache took 20-80 ms after npm ended; the plan
    needs only the files already read. :func:`settle` waits for it (at exit, and before
    the CLI's fast exit).
    """
    _removals[:] = [t for t in _removals if t.is_alive()]
    thread = threading.Thread(target=remove, name="aegis-scratch-removal")
    thread.start()
    _removals.append(thread)


def settle() -> None:
    """Wait for every scratch removal started so far."""
    while _removals:
        _removals.pop().join()


def discard() -> None:
    """Kill a tool no one claimed (also at exit: a refused or failed plan)."""
    while _slot:
        _slot.pop()[1].kill()


atexit.register(discard)
atexit.register(settle)
