"""``aegis``: the CLI people and agents use to plan, review and inspect changes.

The click group lives in :mod:`aegis.cli.app` (``cli`` here is that group, loaded on first
use). ``aegis guard hook`` is answered before click is even imported: agent runtimes call
it before every command, so it must start about as fast as a bare Python
(``scripts/bench --only mcp``); it is the same function as the click command.

Example:
    $ aegis apt install nginx --plan
    $ aegis requests --stuck --json
"""

from __future__ import annotations

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
        from aegis.guard.hooks import main as hook_main

        raise SystemExit(hook_main(sys.argv[3:]))
    from aegis.cli.app import cli

    cli.main(prog_name="aegis")


def __getattr__(name: str) -> Any:
    """``cli`` and ``MUTATION_TOOLS`` of :mod:`aegis.cli.app`, imported when first asked for."""
    if name in ("cli", "MUTATION_TOOLS"):
        from aegis.cli import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
