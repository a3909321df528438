"""A real Debian host booted with systemd-nspawn, for the booted-host tests.

Recipes follow docs/testing.md (booting systemd; Debian 13 beside 12): a root built once
with ``mmdebstrap --variant=important`` (plus systemd, dbus, python3 ...) from the mirror
named in this machine's own apt sources (suite names swapped for trixie), cached as a
tarball under ``/var/cache/aegis-ci`` (CI runs on this same machine); booted with
``systemd-nspawn --boot --register=no --keep-unit`` (there is no machined here); commands
run inside through ``nsenter`` into the container's init, as a login shell of the user.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("AEGIS_CI_CACHE", "/var/cache/aegis-ci"))
INCLUDE = "systemd,systemd-sysv,dbus,python3,python3-venv,git,sudo,ca-certificates"
PREFETCH = "dpkg-repack python3-nacl"
"""Packages install-native.sh must install itself: only downloaded into apt's cache when the
root is built (install-native.sh still installs them; CI does not wait on the mirror)."""
BUILD_OPTIONS = (
    "--variant=important",
    f"--include={INCLUDE}",
    "--skip=cleanup/apt/lists",
    "--skip=cleanup/apt/cache",
    '--customize-hook=chroot "$1" apt-get install --download-only -y -qq'
    f" --no-install-recommends {PREFETCH}",
)
PYTHON = {"bookworm": "3.11", "trixie": "3.13"}
"""The system Python of each release (the wheelhouse is built for it)."""
TOOLS = ("mmdebstrap", "systemd-nspawn", "nsenter", "runuser", "git")


class BootError(RuntimeError):
    """The host could not be built or booted (the log says why)."""


def missing_tools() -> list[str]:
    """The host tools these tests need that are not installed."""
    return [t for t in TOOLS if shutil.which(t) is None]


def debian_sources(release: str) -> str:
    """The Debian stanzas of this machine's deb822 sources, suite names set to ``release``.

    Only stanzas signed by Debian's archive keyring: third-party sources on this machine
    (cloud SDKs, node) do not belong in a Debian root.
    """
    stanzas: list[str] = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            if "debian-archive-keyring" in stanza and "Suites:" in stanza:
                stanzas.append(stanza.strip())
    if not stanzas:
        raise BootError("no Debian deb822 source in /etc/apt/sources.list.d/*.sources")
    text = "\n\n".join(stanzas) + "\n"
    # bookworm, bookworm-updates, bookworm-security -> the same suites of ``release``.
    return re.sub(r"\bbookworm\b", release, text)


def root_tarball(release: str) -> Path:
    """The cached root of ``release``, built when missing (about 3 minutes).

    The name carries a hash of what goes in, so a changed package list builds anew.
    A lock keeps two test processes from building the same tarball at once.
    """
    sources = debian_sources(release)
    digest = hashlib.sha256("\n".join([*BUILD_OPTIONS, sources]).encode()).hexdigest()[:12]
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"{release}-boot-{digest}.tar"
    with (CACHE / f".{release}-boot.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.is_file():
            return tarball
        part = tarball.with_suffix(".part.tar")
        log = CACHE / f"{release}-boot-{digest}.log"
        with log.open("w") as out:
            proc = subprocess.run(
                ["mmdebstrap", *BUILD_OPTIONS, release, str(part), "-"],
                input=sources.encode(),
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=900,
            )
        if proc.returncode != 0:
            part.unlink(missing_ok=True)
            raise BootError(f"mmdebstrap {release} failed (exit {proc.returncode}); see {log}")
        part.rename(tarball)
        # Roots built from an older package list or sources are never used again.
        for old in CACHE.glob(f"{release}-boot-*.tar"):
            if old != tarball:
                old.unlink(missing_ok=True)
        return tarball


def wheelhouse(release: str, pyproject: Path) -> Path:
    """Wheels of Aegis's dependencies for ``release``'s Python, built here once and cached.

    Nothing inside the booted host reaches PyPI: ``install-native.sh --wheelhouse`` installs
    from these. ``pip download --python-version`` needs ``--only-binary=:all:``; pure-Python
    dependencies come as ``py3-none-any`` wheels.
    """
    import tomllib

    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    version = PYTHON[release]
    digest = hashlib.sha256("\n".join([version, *deps]).encode()).hexdigest()[:12]
    dest = CACHE / f"wheels-cp{version.replace('.', '')}-{digest}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f".{dest.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (dest / ".complete").is_file():
            _download_wheels(dest, version, deps)
    return dest


def _download_wheels(dest: Path, version: str, deps: list[str]) -> None:
    part = Path(f"{dest}.part")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    abi = "cp" + version.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q"]
    cmd += ["--dest", str(part), "--only-binary=:all:", "--python-version", version]
    cmd += ["--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none"]
    for platform in ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "any"):
        cmd += ["--platform", platform]
    proc = subprocess.run([*cmd, *deps], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BootError(f"pip download for Python {version} failed: {proc.stderr[-2000:]}")
    (part / ".complete").write_text("\n".join(deps) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    part.rename(dest)


@dataclass
class Result:
    """One command's outcome inside the host."""

    cmd: str
    user: str
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"[{self.user}] {self.cmd}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
        )


@dataclass
class Host:
    """A booted container: its root directory and the pid of its init."""

    release: str
    root: Path
    nspawn: subprocess.Popen[bytes]
    init_pid: int
    log: Path

    def run(self, cmd: str, *, user: str = "root", timeout: float = 300) -> Result:
        """Run ``cmd`` in a login shell of ``user`` inside the host (never raises on exit)."""
        argv = ["nsenter", f"--target={self.init_pid}", "--mount", "--uts", "--ipc", "--net"]
        argv += ["--pid", "--cgroup", "--root", "--wd", "--"]
        argv += ["runuser", "-l", user, "-c", cmd]
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        )
        return Result(cmd, user, proc.returncode, proc.stdout, proc.stderr)

    def ok(self, cmd: str, *, user: str = "root", timeout: float = 300) -> Result:
        """Run ``cmd`` and fail loudly (with its output) unless it exits 0."""
        result = self.run(cmd, user=user, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(str(result))
        return result

    def path(self, inside: str) -> Path:
        """The host path of ``inside`` (an absolute path in the container)."""
        return self.root / inside.lstrip("/")


def _init_pid(nspawn_pid: int, deadline: float) -> int:
    """The container's init: the child of systemd-nspawn that has become ``systemd``.

    nspawn forks before it execs the container's init, so its first child can be a
    transient copy of itself; entering that one's namespaces fails once it is gone and the
    boot would look hung (seen under load). Only a child whose command is ``systemd``
    counts.
    """
    children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children")
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            for pid in children.read_text().split():
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
        time.sleep(0.1)
    raise BootError("systemd-nspawn started no init")


@contextlib.contextmanager
def booted(release: str, workdir: Path, *, boot_timeout: float = 300) -> Iterator[Host]:
    """Extract the cached root of ``release`` into ``workdir``, boot it, power it off after."""
    tarball = root_tarball(release)
    root = workdir / "root"
    root.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(root), "-xf", str(tarball)], check=True, timeout=300)
    log = workdir / "nspawn.log"
    name = f"aegis-{release}-{os.getpid()}"
    with log.open("wb") as out:
        nspawn = subprocess.Popen(
            [
                "systemd-nspawn",
                "--boot",
                "-D",
                str(root),
                f"--machine={name}",
                "--register=no",
                "--keep-unit",
                "--console=passive",
                "--resolv-conf=copy-host",
                "--timezone=off",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + boot_timeout
    host: Host | None = None
    try:
        host = Host(release, root, nspawn, _init_pid(nspawn.pid, deadline), log)
        state = ""
        while time.monotonic() < deadline:
            if nspawn.poll() is not None:
                raise BootError(f"systemd-nspawn exited {nspawn.returncode}: {log.read_text()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                state = host.run("systemctl is-system-running", timeout=30).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        else:
            raise BootError(f"{release} did not finish booting ({state!r}): {log.read_text()}")
        yield host
    finally:
        _poweroff(nspawn, host)
        shutil.rmtree(root, ignore_errors=True)


def _poweroff(nspawn: subprocess.Popen[bytes], host: Host | None) -> None:
    if nspawn.poll() is None and host is not None:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            host.run("systemctl poweroff", timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            nspawn.wait(timeout=60)
    if nspawn.poll() is None:
        # The container's init dies with its whole PID namespace; nspawn follows.
        if host is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(host.init_pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            nspawn.kill()
        nspawn.wait(timeout=30)


def quote(*words: str) -> str:
    """``words`` as one shell command line."""
    return shlex.join(words)
