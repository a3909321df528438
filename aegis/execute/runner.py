"""Running the signed argv of any ecosystem (dpkg's facts: :mod:`aegis.ecosystems.apt.dpkg`).

The command runs with no shell, an absolute program path, stdin from /dev/null
and a clean fixed environment (``DEBIAN_FRONTEND=noninteractive``, ``LANG=C``,
``LC_ALL=C``, a fixed ``PATH``, and ``APT_CONFIG`` only when it names a root-owned
file from aegisd's own configuration). Its output goes to files in aegisd's
root-only run directory, not to pipes: if aegisd is killed mid-run the child is
in its own session and keeps writing, so dpkg is never cut off half-way by a
SIGPIPE (the unit's ``KillMode=process`` semantics). Afterwards the output is
read back capped, and the SHA-256 of the full streams goes into the audit event.

Example:
    >>> res = run_argv(("/usr/bin/apt-get", "install", "--trivial-only", "--", "x=1"),
    ...                env=child_env(None), timeout_s=600,
    ...                out_dir=Path("/var/lib/aegis/aegisd/runs"), name="ex-1")
    >>> res.exit_status
    0
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import stat
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aegis.errors import EnvironmentFailure, InputError, TrustError

FIXED_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
OUTPUT_CAP = 64 * 1024
"""Bytes of each stream kept in the answer and the audit event (the hash covers all)."""


@dataclass(frozen=True)
class RunResult:
    """What one run produced."""

    exit_status: int
    """Exit code, or -N when killed by signal N (a timeout kills with SIGKILL)."""
    timed_out: bool
    duration_ms: int
    stdout_sha256: str
    stderr_sha256: str
    stdout_bytes: int
    stderr_bytes: int
    stdout_tail: str
    """The last OUTPUT_CAP bytes of stdout (untrusted text; render through aegis.text)."""
    stderr_tail: str


def check_root_owned(path: Path) -> None:
    """Refuse a configuration file a non-root user could have written.

    Only enforced when aegisd runs as root (tests as root exercise it too): the file
    and its directory must belong to root and not be group- or world-writable.

    Raises:
        TrustError: the file or its directory is writable by someone other than root.
    """
    if os.geteuid() != 0:
        return
    for p in (path, path.parent):
        try:
            st = p.stat()
        except FileNotFoundError as e:
            raise TrustError(f"configured file {p} does not exist") from e
        if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise TrustError(
                f"{p} is not root-owned or is writable by others; aegisd refuses to use it"
            )


def check_regular_file(path: Path) -> None:
    """Refuse a configuration path that is missing or not a regular file.

    apt only warns about an unreadable APT_CONFIG (a FIFO, a directory, a missing file) and
    then reads the host's own configuration: the run would not be the one that was planned.

    Raises:
        TrustError: the path is not a regular file.
    """
    try:
        st = path.stat()
    except OSError as e:
        raise TrustError(f"configured file {path} cannot be read: {e.strerror}") from e
    if not stat.S_ISREG(st.st_mode):
        raise TrustError(f"configured file {path} is not a regular file; aegisd refuses to use it")


def child_env(apt_config: Path | None) -> dict[str, str]:
    """The fixed environment of every command aegisd runs (nothing inherited)."""
    env = {
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C",
        "LC_ALL": "C",
        "PATH": FIXED_PATH,
        "APT_LISTCHANGES_FRONTEND": "none",
        "NEEDRESTART_MODE": "l",
    }
    if apt_config is not None:
        check_regular_file(apt_config)
        check_root_owned(apt_config)
        env["APT_CONFIG"] = str(apt_config)
    return env


def check_argv(argv: Sequence[str]) -> None:
    """Refuse an argv that is empty, relative or carries NUL bytes.

    Raises:
        InputError: what is wrong with it.
    """
    if not argv:
        raise InputError("empty argv")
    if not os.path.isabs(argv[0]):
        raise InputError(f"program {argv[0]!r} is not an absolute path")
    if any("\x00" in a for a in argv):
        raise InputError("argv contains a NUL byte")


def _hash_and_tail(path: Path, cap: int) -> tuple[str, int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(65536), b""):
            digest.update(block)
            size += len(block)
        f.seek(max(0, size - cap))
        tail = f.read(cap)
    return digest.hexdigest(), size, tail.decode("utf-8", "replace")


def run_argv(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout_s: float,
    out_dir: Path,
    name: str,
    cap: int = OUTPUT_CAP,
) -> RunResult:
    """Run ``argv`` (no shell) to completion or timeout; return exit status and output hashes.

    Raises:
        InputError: the argv is not acceptable.
        EnvironmentFailure: the program cannot be started.
    """
    return finish(start(argv, env=env, out_dir=out_dir, name=name), timeout_s, cap=cap)


@dataclass
class Started:
    """A started run: its process and where its output goes (:func:`finish` ends it)."""

    proc: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    began: float
    """``time.monotonic()`` at the start; :func:`finish` measures the duration from it."""


def start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    out_dir: Path,
    name: str,
    pass_fds: tuple[int, ...] = (),
) -> Started:
    """Start ``argv`` as :func:`run_argv` does; ``pass_fds``: descriptors it inherits.

    Raises:
        InputError: the argv is not acceptable.
        EnvironmentFailure: the program cannot be started.
    """
    check_argv(argv)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    out_path, err_path = out_dir / f"{name}.stdout", out_dir / f"{name}.stderr"
    began = time.monotonic()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=dict(env),
                cwd="/",
                close_fds=True,
                pass_fds=pass_fds,
                start_new_session=True,  # outlives aegisd; a client disconnect never reaches it
            )
        except OSError as e:
            raise EnvironmentFailure(f"cannot start {argv[0]}: {e.strerror}") from e
    return Started(proc, out_path, err_path, began)


def finish(started: Started, timeout_s: float, *, cap: int = OUTPUT_CAP) -> RunResult:
    """Wait for a started run (killed after ``timeout_s``); its exit status and output."""
    proc = started.proc
    timed_out = False
    try:
        status = _wait(proc, timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        status = proc.wait()
    duration = int((time.monotonic() - started.began) * 1000)
    out_hash, out_size, out_tail = _hash_and_tail(started.out_path, cap)
    err_hash, err_size, err_tail = _hash_and_tail(started.err_path, cap)
    return RunResult(
        exit_status=status,
        timed_out=timed_out,
        duration_ms=duration,
        stdout_sha256=out_hash,
        stderr_sha256=err_hash,
        stdout_bytes=out_size,
        stderr_bytes=err_size,
        stdout_tail=out_tail,
        stderr_tail=err_tail,
    )


def _wait(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    """``proc.wait(timeout_s)``, woken by the exit itself rather than by polling.

    ``Popen.wait`` with a timeout sleeps in steps of up to 50 ms between checks, so each
    run ended on average 25 ms after the program did; a pidfd becomes readable the moment
    the process exits. Falls back to ``Popen.wait`` where pidfds are missing.

    Raises:
        subprocess.TimeoutExpired: still running after ``timeout_s``.
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return proc.wait(timeout=timeout_s)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout_s)
            poller.poll(int(left * 1000) + 1)
    finally:
        os.close(fd)
    return proc.returncode
