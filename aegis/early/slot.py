"""Read-only tool runs started ahead of the code that reads them, each kept for one exact claim.

A fresh one-shot process spends its first tenth of a second or more importing, and only then
starts the tool it mostly waits for. So the console entry point starts that tool first:
``aegis npm|pip install ... --plan`` its resolution (:mod:`aegis.cli.early_plan`, from the
words it was given, with the planner's own checks and argv builders), ``aegis unattended
run`` apt's first calls (:mod:`aegis.unattended.early`, through :mod:`process` and
:mod:`scratch`). Then click parses the arguments as always and stays the only source of
truth: the code that would start the tool claims it with the exact key it would start its
own with (:func:`claim`), at most once. A run nobody claimed is killed with its scratch
space when :func:`discard` runs (the planners call it once they have their run; the
unattended pass at its end; at exit in any case), and nothing it wrote is ever read. Only
commands that change nothing belong here.

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
        """A started run: :meth:`kill` stops it and removes what it wrote."""

        def kill(self) -> None:
            """Kill the run's process group and remove its scratch space."""


_LOCK = threading.Lock()  # the apt analysis claims from several threads
_held: dict[object, Tool] = {}


def put(key: object, tool: Tool) -> None:
    """Keep ``tool`` for one claim with exactly ``key`` (an earlier one for it is killed)."""
    with _LOCK:
        earlier = _held.pop(key, None)
        _held[key] = tool
    if earlier is not None:
        earlier.kill()


def claim(key: object) -> Tool | None:
    """The run started for exactly ``key``, handed out once; None otherwise."""
    with _LOCK:
        return _held.pop(key, None)


def pending() -> tuple[Tool, ...]:
    """The runs started and not claimed yet, oldest first."""
    with _LOCK:
        return tuple(_held.values())


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
    """Kill every run nobody claimed (a refused or failed plan, a pass that took another way)."""
    with _LOCK:
        left = list(_held.values())
        _held.clear()
    for tool in left:
        tool.kill()


atexit.register(discard)
atexit.register(settle)
