"""pip's read-only resolution as a started process: its argv and environment.

Small and light on imports on purpose: the CLI starts it before click and the planner are
imported (:mod:`aegis.cli.early_plan`), and the planner starts it the same way otherwise
(:mod:`aegis.ecosystems.pip.resolve`). Claimed through :mod:`aegis.early.slot`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile

from aegis.early.pip_names import SYSTEM_PYTHON

PIP_TIMEOUT_S = 300.0
MAX_REPORT = 32 * 1024 * 1024


def pip_env(home: str) -> dict[str, str]:
    """The environment of every pip child: no user or site configuration reaches it."""
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "HOME": home,
        "PIP_CONFIG_FILE": os.devnull,
        "PYTHONNOUSERSITE": "1",
        "PIP_NO_INPUT": "1",
    }


def dry_run_argv(
    venv: str,
    index: str,
    targets: tuple[str, ...],
    *,
    target: bool = False,
    head: tuple[str, ...] = (),
) -> tuple[str, ...]:
    """The read-only resolution (also the bench's raw baseline).

    ``--only-binary=:all:``: reading an sdist's metadata means running its build backend,
    which planning must never do; a project with only an sdist fails analysis. ``target``:
    ``venv`` is a ``--target`` directory, resolved for the system interpreter. ``head``:
    the interpreter and pip when neither (:func:`aegis.ecosystems.pip.pip_head`).
    """
    python = head or (SYSTEM_PYTHON if target else f"{venv}/bin/python", "-m", "pip")
    return (
        *python, "--isolated",
        "--disable-pip-version-check",
        "--no-input", "install", "--dry-run", "--ignore-installed", "--quiet",
        "--no-cache-dir", "--only-binary=:all:", "--report", "-", "--index-url", index,
        "--", *targets,
    )  # fmt: skip


class PipRun:
    """pip started at once, so the planner's own work overlaps pip's resolution."""

    def __init__(self, argv: tuple[str, ...]) -> None:
        self.home = tempfile.TemporaryDirectory(prefix="aegis-pip-")
        try:
            self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=pip_env(self.home.name),
                start_new_session=True,
            )
            self.error = ""
        except OSError as e:
            self.proc, self.error = None, f"cannot start {argv[0]}: {e}"

    def wait(self) -> tuple[int, str, str]:
        """Exit status, stdout and stderr (bounded); the process group is killed on timeout."""
        try:
            if self.proc is None:
                return -1, "", self.error
            try:
                out, err = self.proc.communicate(timeout=PIP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.communicate()
                return -1, "", f"pip timed out after {PIP_TIMEOUT_S} s"
            text = out[:MAX_REPORT].decode("utf-8", "replace")
            return self.proc.returncode, text, err[-65536:].decode("utf-8", "replace")
        finally:
            self.home.cleanup()

    def kill(self) -> None:
        """Kill pip's process group and remove its HOME (an unclaimed early start)."""
        try:
            if self.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.communicate()
        finally:
            self.home.cleanup()
