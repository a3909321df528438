"""Test hook: stop a committing process at a named step so a test can SIGKILL it there.

With ``AEGIS_TEST_PAUSE_AT=<step>`` in its environment when it starts, the process prints
``AEGIS_TEST_PAUSED <step>`` on stderr and sleeps at that step of
:meth:`aegis.workflow.store.Store.commit` or :meth:`~aegis.workflow.store.Store.transition`.
Steps: ``guarded`` (guards passed, nothing written), ``begun`` (transaction begun, nothing
written; a guarded transition begins before it reads back and runs its guards, a plain
commit after), ``state``, ``artifact``, ``history`` (all written, not committed). The
kill-and-race tests use it to prove a half transition never survives a crash.

Example:
    >>> pause = commit_pause()
    >>> pause("begun")
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

PAUSE_ENV = "AEGIS_TEST_PAUSE_AT"
PAUSE_STEPS = ("guarded", "begun", "state", "artifact", "history")
# Read once, at import: looking the variable up costs more than some of a transition's
# statements (os.environ raises and catches a KeyError when it is absent). The tests start
# the process they kill with it set.
_HOOKED = PAUSE_ENV in os.environ


def pause_point(step: str) -> None:
    """Stop at ``step`` when AEGIS_TEST_PAUSE_AT names it."""
    if os.environ.get(PAUSE_ENV) == step:
        sys.stderr.write(f"AEGIS_TEST_PAUSED {step}\n")
        sys.stderr.flush()
        time.sleep(3600)


def no_pause(step: str) -> None:
    """The test hook when it is off."""


def commit_pause() -> Callable[[str], None]:
    """:func:`pause_point` when the process started with the hook set, else :func:`no_pause`."""
    return pause_point if _HOOKED else no_pause
