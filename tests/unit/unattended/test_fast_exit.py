"""``aegis unattended run`` ends without the interpreter's teardown only when nothing waits.

The teardown is skipped with ``os._exit`` (aegis/cli/aegis.py): a normal exit runs the
``atexit`` handlers, so a handler that prints shows which exit happened.
"""

from __future__ import annotations

import os
import subprocess
import sys

_SCRIPT = """
import atexit, sys, threading
from aegis.cli import aegis
atexit.register(lambda: print("teardown", flush=True))
if sys.argv[1] == "thread":
    go = threading.Event()
    threading.Thread(target=go.wait, args=(2,)).start()  # not a daemon: exit waits for it
aegis.skip_teardown()
print("done", end="")  # left in the buffer: the fast exit must flush it
aegis._exit_without_teardown()
"""


def _run(mode: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, check=True, env=env
    )
    return proc.stdout


def test_fast_exit_flushes_and_skips_the_teardown() -> None:
    assert _run("plain") == "done"


def test_a_running_thread_gets_the_normal_exit() -> None:
    assert _run("thread") == "doneteardown\n"
