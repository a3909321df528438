"""A plain command started early and kept in :mod:`slot` under its argv and environment.

:func:`aegis.ecosystems.apt.run.run_tool` takes it over (:func:`take`) only when it would
start exactly the same command: same argv, same environment, no working directory, no
inherited descriptors. It then reads the process as if it had started it itself.

Example::

    start(["/usr/bin/apt-config", "dump"], env)
    ...
    proc = take(("/usr/bin/apt-config", "dump"), env)   # the running process, or None
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Mapping, Sequence

from aegis.early import slot


class Started:
    """One started process; :meth:`kill` kills and reaps it."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def kill(self) -> None:
        """Kill the process and wait for it (its pipes are drained, so it cannot block)."""
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            self.proc.communicate(timeout=10)


def _key(argv: Sequence[str], env: Mapping[str, str]) -> object:
    return ("process", tuple(argv), tuple(sorted(env.items())))


def start(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Start ``argv`` now as :func:`~aegis.ecosystems.apt.run.run_tool` would (never raises)."""
    try:
        proc = subprocess.Popen(
            tuple(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    except OSError:
        return  # run_tool starts it again and reports why it cannot
    slot.put(_key(argv, env), Started(proc))


def take(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes] | None:
    """The process :func:`start` began for exactly this command, once; else None."""
    started = slot.claim(_key(argv, env))
    return started.proc if isinstance(started, Started) else None
