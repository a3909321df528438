"""npm's read-only resolution as a started process: its argv, environment and scratch copy.

Small and light on imports on purpose: the CLI starts it before click and the planner are
imported (:mod:`aegis.cli.early_plan`), and the planner starts it the same way otherwise
(:mod:`aegis.ecosystems.npm.resolve`). Claimed through :mod:`aegis.early.slot`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from pathlib import Path

from aegis.early import slot

NPM = "/usr/bin/npm"
NPM_TIMEOUT_S = 300.0
MAX_PROJECT_FILE = 4 * 1024 * 1024
PROJECT_FILES = ("package.json", "package-lock.json")

NO_GLOBAL_CONFIG = "/proc/aegis-no-npmrc"
"""npm's global config path: missing, and no one (not even root) can create a file in /proc.
npm refuses the same file as user and global config, so /dev/null serves only as the user's."""

Files = dict[str, str | None]


def npm_env(home: str) -> dict[str, str]:
    """Npm's environment: no user configuration, no colour, no update check."""
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": home,
            "NO_UPDATE_NOTIFIER": "1", "npm_config_update_notifier": "false"}  # fmt: skip


def lock_only_argv(registry: str, cache: str, targets: tuple[str, ...]) -> tuple[str, ...]:
    """The read-only resolution (run in a scratch copy; also the bench's raw baseline)."""
    return (NPM, "install", "--package-lock-only", "--ignore-scripts", "--no-audit",
            "--no-fund", "--userconfig", os.devnull, "--globalconfig", NO_GLOBAL_CONFIG,
            "--registry", registry, "--cache", cache, "--", *targets)  # fmt: skip


def read_project_file(path: Path) -> str | None:
    """The text of a project file, None when missing (bounded: the project is a user's).

    Raises:
        OSError: unreadable or larger than :data:`MAX_PROJECT_FILE`.
    """
    try:
        with path.open("rb") as f:
            data = f.read(MAX_PROJECT_FILE + 1)
    except FileNotFoundError:
        return None
    if len(data) > MAX_PROJECT_FILE:
        raise OSError(f"{path} is larger than {MAX_PROJECT_FILE} bytes")
    return data.decode("utf-8")


class Resolution:
    """npm started at once in a scratch copy, so the planner's own work overlaps it.

    ``copied``: each project file as the scratch copy holds it (None: not copied).

    Raises:
        OSError: a project file cannot be read or the scratch copy written.
    """

    def __init__(
        self, project: Path, registry: str, targets: tuple[str, ...], restore: Files
    ) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="aegis-npm-")
        self.work = Path(self.tmp.name) / "project"
        self.work.mkdir()
        self.copied: Files = {}
        for name in PROJECT_FILES:
            text: str | None = None
            if restore:  # a rollback: the signed files, never the project's current ones
                text = restore.get(name)
            elif (project / name).is_file() and not (project / name).is_symlink():
                text = read_project_file(project / name)
            if text is not None:
                (self.work / name).write_text(text, encoding="utf-8")
            self.copied[name] = text
        self.error = ""
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self.proc = subprocess.Popen(
                lock_only_argv(registry, str(Path(self.tmp.name) / "cache"), targets),
                cwd=self.work, env=npm_env(self.tmp.name), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
        except OSError as e:
            self.error = f"npm did not run: {e}"

    def wait(self) -> tuple[int, str, Files]:
        """(exit status, stderr, {file: new text}); the group is killed on timeout."""
        try:
            if self.proc is None:
                return -1, self.error, {}
            try:
                _, err = self.proc.communicate(timeout=NPM_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._kill_group()
                return -1, f"npm timed out after {NPM_TIMEOUT_S} s", {}
            files = {n: read_project_file(self.work / n) for n in PROJECT_FILES}
            return self.proc.returncode, err[-65536:].decode("utf-8", "replace"), files
        finally:
            slot.remove_later(self.tmp.cleanup)

    def _kill_group(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()

    def kill(self) -> None:
        """Kill npm's process group and remove the scratch copy (an unclaimed early start)."""
        try:
            self._kill_group()
        finally:
            self.tmp.cleanup()
