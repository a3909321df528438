"""Read-only tools started ahead of the code that reads them, within one process.

A fresh one-shot process (the unattended pass) spends its first tenths of a second
importing the analyzer, and only then starts apt. :func:`start` runs such a command at
once; the first :func:`take` of exactly the same command (argv and environment, no
working directory, no inherited descriptors) gets the running process and reads it as
if it had started it itself (:func:`aegis.ecosystems.apt.run.run_tool`). It is the same
command's own output, started a moment earlier in the same process; each is handed out
once, and nothing is kept across processes. A command nobody took is killed and reaped
by :func:`discard`.

Only commands that change nothing belong here (apt's simulation, ``apt-config dump``).

Example::

    start(["/usr/bin/apt-config", "dump"], env)
    ...
    proc = take(("/usr/bin/apt-config", "dump"), env)   # the running process, or None
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Mapping, Sequence

_LOCK = threading.Lock()
_STARTED: dict[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], subprocess.Popen[bytes]] = {}


def _key(
    argv: Sequence[str], env: Mapping[str, str]
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    return tuple(argv), tuple(sorted(env.items()))


def start(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Start ``argv`` now as :func:`~aegis.ecosystems.apt.run.run_tool` would (never raises)."""
    key = _key(argv, env)
    with _LOCK:
        if key in _STARTED:
            return
        try:
            proc = subprocess.Popen(
                key[0],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env),
                start_new_session=True,
            )
        except OSError:
            return  # run_tool starts it again and reports why it cannot
        _STARTED[key] = proc


def take(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes] | None:
    """The process :func:`start` began for exactly this command, once; else None."""
    with _LOCK:
        return _STARTED.pop(_key(argv, env), None)


def discard() -> None:
    """Kill and reap what was started and never taken."""
    with _LOCK:
        left = list(_STARTED.values())
        _STARTED.clear()
    for proc in left:
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            proc.communicate(timeout=10)
