r"""The one subprocess runner planning uses (apt-get, apt-cache, apt-config, gpgv, dpkg).

Every child gets an argv list (never a shell), an explicit minimal environment
(``LANG=C``/``LC_ALL=C`` so output parses the same everywhere, ``APT_CONFIG`` from
Aegis's own configuration so tests and production run identical argv), a timeout
(the child's process group is killed when it passes) and a cap on captured output.
Failures are values (:class:`RunResult`) the analyzer turns into plan evidence;
:meth:`RunResult.check` raises :class:`ToolFailedError` carrying stderr.

Example:
    >>> r = run_tool(["/bin/echo", "hi"], apt_config=None, timeout_s=5)
    >>> (r.returncode, r.stdout)
    (0, 'hi\n')
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aegis.early import process
from aegis.errors import EnvironmentFailure
from aegis.planning_env import SAFE_PATH, child_env

__all__ = ["SAFE_PATH", "RunResult", "ToolFailedError", "child_env", "run_tool"]

MAX_OUTPUT_BYTES = 64 * 1024 * 1024
"""Cap on each of stdout and stderr; apt's full host upgrade output is far smaller."""


class ToolFailedError(EnvironmentFailure):
    """A planning tool exited non-zero, timed out, or could not start."""

    def __init__(self, result: RunResult) -> None:
        """Describe the failure from ``result``; the tail of stderr is the useful part."""
        what = "timed out" if result.timed_out else f"exited {result.returncode}"
        super().__init__(f"{result.argv[0]} {what}: {result.stderr.strip()[-2000:]}")
        self.result = result


@dataclass(frozen=True)
class RunResult:
    """What a child did."""

    argv: tuple[str, ...]
    returncode: int
    """Exit status; -1 when it timed out or could not start."""
    stdout: str
    stderr: str
    timed_out: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """True when the child exited 0 within its timeout."""
        return self.returncode == 0 and not self.timed_out

    def check(self) -> RunResult:
        """Return self, or raise :class:`ToolFailedError` (with stderr) on failure."""
        if not self.ok:
            raise ToolFailedError(self)
        return self


def _decode(data: bytes) -> tuple[str, bool]:
    cut = len(data) > MAX_OUTPUT_BYTES
    return data[:MAX_OUTPUT_BYTES].decode("utf-8", errors="replace"), cut


def run_tool(
    argv: Sequence[str],
    *,
    apt_config: Path | str | None,
    timeout_s: float,
    extra_env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    pass_fds: Sequence[int] = (),
) -> RunResult:
    """Run ``argv`` with the planning environment; never raises for tool failures.

    Args:
        argv: absolute tool path and arguments (a list, never a shell string).
        apt_config: passed as ``APT_CONFIG``; None leaves apt's default.
        timeout_s: wall-clock limit; the whole process group is killed after it.
        extra_env: additional variables (e.g. ``GNUPGHOME`` for gpgv).
        cwd: working directory.
        pass_fds: descriptors the tool inherits (files handed over as ``/dev/fd/N``).
    """
    args = tuple(argv)
    env = child_env(apt_config, extra_env)
    # The same command, when this process started it ahead of its reader (aegis/early/process.py).
    early = process.take(args, env) if cwd is None and not pass_fds else None
    try:
        proc = early or subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    except OSError as exc:
        return RunResult(args, -1, "", f"cannot start {args[0]}: {exc}")
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        # Kill the group: apt forks helpers (methods, dpkg) that would outlive it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        so, c1 = _decode(out)
        se, c2 = _decode(err)
        return RunResult(args, -1, so, se + f"\ntimed out after {timeout_s} s", True, c1 or c2)
    so, c1 = _decode(out)
    se, c2 = _decode(err)
    return RunResult(args, proc.returncode, so, se, False, c1 or c2)
