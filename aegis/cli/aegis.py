"""``aegis``: the CLI people and agents use to plan, review and inspect changes.

The click group lives in :mod:`aegis.cli.app` (``cli`` here is that group, loaded on first
use). ``aegis guard hook`` is answered before click is even imported: agent runtimes call
it before every command, so it must start about as fast as a bare Python
(``scripts/bench --only mcp``); it is the same function as the click command.
``aegis npm|pip install ... --plan`` starts its tool before click is imported
(:mod:`aegis.cli.early_plan`); click still parses the arguments, and the planner uses that
tool only if it is exactly the one it would have started.

Example:
    $ aegis apt install nginx --plan
    $ aegis requests --stuck --json
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: importing typing costs the hook's start-up time
if TYPE_CHECKING:
    from typing import Any


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:3] == ["guard", "hook"]:
        import gc

        # A one-shot process reading one bounded payload: collecting cycles during its
        # imports costs more than the memory it would free.
        gc.disable()
        from aegis.guard.hooks import BLOCK
        from aegis.guard.hooks import main as hook_main

        try:
            code = hook_main(sys.argv[3:])
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # e.g. a closed pipe: the runtime runs the call unless we block
            code = BLOCK
        # The answer is written and flushed: skip the interpreter's teardown of bashlex and
        # the modules it loaded (~10 ms of a hook the runtime calls before every command).
        os._exit(code)
    planning = sys.argv[1:2] in (["npm"], ["pip"]) and sys.argv[2:3] == ["install"]
    if planning:
        from aegis.cli.early_plan import start

        start(sys.argv[1], sys.argv[3:])  # the tool first; click decides below, as always
    from aegis.cli.app import cli

    if not planning:
        cli.main(prog_name="aegis")
    try:
        cli.main(prog_name="aegis")  # click ends with SystemExit, 0 on success
    except SystemExit as e:
        if e.code not in (0, None):
            raise
        _planned()


def _planned() -> None:
    """End a successful npm or pip plan without the interpreter's teardown (~30 ms).

    The plan file and the request row are written and the store is closed (each store use
    closes its connection); what is left is flushing the output and unloading modules.
    """
    from aegis.early import slot

    slot.discard()
    slot.settle()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # e.g. a closed pipe: let the interpreter report it as always
        raise SystemExit(0) from None
    os._exit(0)


def __getattr__(name: str) -> Any:
    """``cli`` and ``MUTATION_TOOLS`` of :mod:`aegis.cli.app`, imported when first asked for."""
    if name in ("cli", "MUTATION_TOOLS"):
        from aegis.cli import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
