"""Test hook: stop a committing process at a named step so a test can SIGKILL it there.

With ``AEGIS_TEST_PAUSE_AT=<step>`` the process prints ``AEGIS_TEST_PAUSED <step>`` on
stderr and sleeps at that step of :meth:`aegis.workflow.store.Store.commit`. Steps:
``guarded`` (guard passed, nothing begun), ``begun``, ``state``, ``artifact``,
``history`` (all written, not committed). The kill-and-race tests use it to prove a
half transition never survives a crash.

Example:
    >>> pause = pause_point if PAUSE_ENV in os.environ else no_pause
    >>> pause("begun")
"""

from __future__ import annotations

import os
import sys
import time

PAUSE_ENV = "AEGIS_TEST_PAUSE_AT"
PAUSE_STEPS = ("guarded", "begun", "state", "artifact", "history")


def pause_point(step: str) -> None:
    """Stop at ``step`` when AEGIS_TEST_PAUSE_AT names it."""
    if os.environ.get(PAUSE_ENV) == step:
        sys.stderr.write(f"AEGIS_TEST_PAUSED {step}\n")
        sys.stderr.flush()
        time.sleep(3600)


def no_pause(step: str) -> None:
    """The test hook when it is off."""
