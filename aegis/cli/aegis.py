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
    if sys.argv[1:3] in (["npm", "install"], ["pip", "install"]):
        from aegis.cli.early_plan import start

        start(sys.argv[1], sys.argv[3:])  # the tool first; click decides below, as always
        skip_teardown()  # the planner's store use closes its connection before it returns
    elif sys.argv[1:3] == ["unattended", "run"] and "--help" not in sys.argv:
        _start_unattended_apt()
    from aegis.cli.app import cli

    try:
        cli.main(prog_name="aegis")  # click ends with SystemExit, 0 on success
    except SystemExit as done:
        if _skip_teardown and done.code in (0, None):
            _exit_without_teardown()
        raise


def _start_unattended_apt() -> None:
    """The pass's first apt calls, before click and the analyzer load (aegis/unattended/early.py).

    Best effort: a failure here changes nothing, the analysis then starts them itself.
    """
    try:
        from aegis.unattended.early import start_apt

        start_apt()
    except Exception:  # noqa: S110 - the pass reports any real problem itself
        pass


_skip_teardown = False


def skip_teardown() -> None:
    """Have :func:`main` end the process without the interpreter's teardown on exit 0.

    For a one-shot command whose work is written, synced and closed by then (an npm or pip
    plan; ``aegis unattended run``, which the timer starts as a fresh process each pass):
    tearing down the ~500 modules and the threads' leftovers it loaded costs tens of ms
    and does nothing the files on disk need. Only the console entry point acts on it, so
    tests invoking the click command in-process are never cut short.
    """
    global _skip_teardown  # noqa: PLW0603 - one flag per process, set once by the command
    _skip_teardown = True


def _exit_without_teardown() -> None:
    """``os._exit(0)`` once the output is flushed and nothing is left that exit would wait for.

    Runs nobody claimed are killed and scratch removals finished first (aegis/early/slot.py).
    A store connection still open gets the normal exit: SQLite's last close moves the
    write-ahead log into the database, and that is left to happen, not skipped.
    """
    import threading

    from aegis.early import slot

    slot.discard()
    slot.settle()
    store = sys.modules.get("aegis.workflow.store")
    # A thread may still be importing the store (the pass loads it beside apt): then leave
    # it all to the normal exit, as for an open connection.
    opened = getattr(store, "open_connections", None)
    if store is not None and (opened is None or opened()):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # a closed pipe: leave it to the normal exit, which reports it
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        return  # a normal exit would wait for it: so does this one
    os._exit(0)
    os._exit(0)


def __getattr__(name: str) -> Any:
    """``cli`` and ``MUTATION_TOOLS`` of :mod:`aegis.cli.app`, imported when first asked for."""
    if name in ("cli", "MUTATION_TOOLS"):
        from aegis.cli import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
