"""dpkg's locks, held by aegisd from re-derivation to the end of the run.

A run must apply exactly what aegisd re-derived and compared with the signed plan, so
nothing else may change dpkg's state in between. apt and dpkg share two locks in dpkg's
admin directory (``fcntl`` write locks, as apt's ``GetLock`` takes them):

- ``lock-frontend``: held by a frontend (apt, aptitude, unattended-upgrades) for its
  whole run; dpkg >= 1.19.1 takes it too unless ``DPKG_FRONTEND_LOCKED`` says its
  parent holds it;
- ``lock``: dpkg's database lock, held by dpkg itself while it works.

aegisd takes both without waiting (a busy lock is the refusal ``refused:dpkg-locked``,
before anything is spent), re-derives and checks the plan, then lets go of ``lock``
only (dpkg needs it) and keeps ``lock-frontend`` through the run and the status read
after it. apt-get cannot take a frontend lock its parent holds (it has no equivalent of
dpkg's ``DPKG_FRONTEND_LOCKED``), so aegisd runs it with its locking turned off
(``Debug::NoLocking``, from a configuration file aegisd writes, never from a client):
the frontend lock aegisd holds is the one apt would have taken, and apt still starts
dpkg with ``DPKG_FRONTEND_LOCKED=1`` so dpkg takes only ``lock``. docs/design.md
"dpkg's lock" has the reasoning.

Example:
    >>> with DpkgLocks(admin_dir(cfg.dpkg_root)) as locks:
    ...     rederive()
    ...     locks.release_database()
    ...     run()
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from aegis.errors import EnvironmentFailure
from aegis.model import Tool

if TYPE_CHECKING:
    from aegis.sign.execution_plan import ExecutionPlan

REFUSED_DPKG_LOCKED = "refused:dpkg-locked"
FRONTEND = "lock-frontend"
DATABASE = "lock"


class DpkgLocked(EnvironmentFailure):
    """Another package manager holds dpkg's lock; nothing was spent, retry later."""


def admin_dir(dpkg_root: Path | None) -> Path:
    """Dpkg's admin directory of the target root (``/var/lib/dpkg`` on a host)."""
    return (dpkg_root or Path("/")) / "var/lib/dpkg"


def _holder(fd: int) -> int | None:
    """The pid holding a conflicting write lock on ``fd`` (F_GETLK), when known."""
    # struct flock: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid.
    fmt = "hhqqi"
    try:
        got = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(fmt, fcntl.F_WRLCK, 0, 0, 0, 0))
        l_type, _, _, _, pid = struct.unpack(fmt, got[: struct.calcsize(fmt)])
    except (OSError, struct.error):
        return None
    return pid if l_type != fcntl.F_UNLCK and pid > 0 else None


def _take(path: Path) -> int:
    """Open and write-lock ``path`` without waiting; return the descriptor.

    Raises:
        DpkgLocked: another process holds it.
        EnvironmentFailure: it cannot be opened.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
    except OSError as e:
        raise EnvironmentFailure(f"cannot open dpkg's lock {path}: {e.strerror}") from e
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        pid = _holder(fd)
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EACCES):
            by = f" by process {pid}" if pid else ""
            raise DpkgLocked(
                f"{path} is held{by}: another package manager is running; nothing was "
                "spent, the request stays signed",
                hint="retry once it has finished (aegisctl apply again)",
            ) from e
        raise EnvironmentFailure(f"cannot lock {path}: {e.strerror}") from e
    return fd


class DpkgLocks:
    """dpkg's frontend and database locks, taken together (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        """Name the admin directory; nothing is locked until the ``with`` block."""
        self.directory = directory
        self._frontend = -1
        self._database = -1

    def __enter__(self) -> DpkgLocks:
        """Take both locks (:meth:`take`)."""
        self.take()
        return self

    def take(self) -> None:
        """Take both locks, in apt's order (frontend first).

        Raises:
            DpkgLocked: either is held by another process.
        """
        self._frontend = _take(self.directory / FRONTEND)
        try:
            self._database = _take(self.directory / DATABASE)
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def take_for(self, plan: ExecutionPlan) -> None:
        """Take both locks for an apt plan; other ecosystems do not touch dpkg's database.

        npm, pip, images, Go and Cargo runs change no package state of dpkg's, so holding
        its locks would only refuse them while an unrelated apt runs.
        """
        if plan.intent.tool is Tool.APT:
            self.take()

    @property
    def held(self) -> bool:
        """Whether the frontend lock is held (an apt plan's run)."""
        return self._frontend >= 0

    def release_database(self) -> None:
        """Let go of dpkg's database lock (dpkg takes it itself); keep the frontend lock."""
        if self._database >= 0:
            fd, self._database = self._database, -1
            os.close(fd)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release both (closing the descriptor drops an fcntl lock)."""
        self.release_database()
        if self._frontend >= 0:
            fd, self._frontend = self._frontend, -1
            with contextlib.suppress(OSError):
                os.close(fd)


def probe(directory: Path) -> str | None:
    """Whether another process holds dpkg's locks right now (for ping).

    Asks the kernel (``F_GETLK``) without taking anything: a probe must never make a
    package manager that starts at that moment fail to get its lock. aegisd's own locks
    do not count (fcntl locks belong to the process).

    Returns:
        None when both are free (or cannot be looked at), else who holds which.
    """
    for name in (FRONTEND, DATABASE):
        try:
            fd = os.open(directory / name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue  # no lock file: nobody holds it; aegisd creates it when it locks
        try:
            pid = _holder(fd)
        finally:
            os.close(fd)
        if pid is not None:
            return (
                f"{directory / name} is held by process {pid}: another package manager is "
                "running; nothing was spent, the request stays signed"
            )
    return None


APT_NO_LOCKING = 'Debug::NoLocking "true";\n'


def run_apt_config(own_dir: Path, configured: str | None) -> Path:
    """Write the configuration apt-get runs with under aegisd's frontend lock; return it.

    It includes the configured ``APT_CONFIG`` (already checked root-owned) and turns apt's
    own locking off: aegisd holds the frontend lock apt would take (module docstring).
    """
    lines = []
    if configured:
        lines.append(f'#include "{configured}";\n')
    lines.append(APT_NO_LOCKING)
    body = "".join(lines)
    path = own_dir / "apt-run.conf"
    try:
        if path.read_text(encoding="utf-8") == body:
            return path
    except OSError:
        pass
    tmp = own_dir / ".apt-run.conf.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(body)
    os.replace(tmp, path)
    return path
