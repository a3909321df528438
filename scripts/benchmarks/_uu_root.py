"""A throwaway Debian root with Debian's ``unattended-upgrades``, for the unattended figure.

``unattended-upgrade`` cannot be pointed at a root through APT_CONFIG alone: it builds its
``apt.Cache`` with ``rootdir="/"``, which resets ``Dir`` and ``Dir::State::status`` to the
running system's. So it runs where it is made to run, in a chroot: the cached fresh root
(``/var/cache/aegis-ci/<codename>-apt.tar``, scripts/ci-roots) extracted under /var/tmp,
in a private mount and PID namespace, with ``unattended-upgrades`` installed into it by
its own apt (the .deb files come from the CI cache when there, else from the mirror).
Nothing of the host's package state is read or changed.

The root's Debian sources are then removed, so the only upgrade it sees is the test
security repository's, copied into ``/srv``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CACHE = Path("/var/cache/aegis-ci")
ENV = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LANG=C.UTF-8",
    "DEBIAN_FRONTEND=noninteractive",
]
_INNER = """
root=$1; shift
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
exec chroot "$root" /usr/bin/env -i "$@"
"""


def _codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    raise RuntimeError("no VERSION_CODENAME in /etc/os-release")


class UURoot:
    """The chroot; ``sh`` runs one shell command string inside it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.root = work / "root"

    def sh(self, command: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork"]
        argv += ["--kill-child", "--", "/bin/sh", "-euc", _INNER, "inner", str(self.root)]
        proc = subprocess.run(
            [*argv, *ENV, "/bin/sh", "-euc", command],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"in the root: {command!r}: {proc.stdout[-2000:]}{proc.stderr}")
        return proc

    def version(self, package: str) -> str:
        return self.sh(f"dpkg-query -W -f '${{Version}}' {package}").stdout.strip()

    def remove(self) -> None:
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.work)], check=False)


def _link_debs(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for deb in src.glob("*.deb"):
        target = dest / deb.name
        if not target.exists():
            try:
                target.hardlink_to(deb)
            except OSError:
                shutil.copyfile(deb, target)


def make_uu_root(repos: list[Any], pattern: str) -> UURoot:
    """Extract the cached root, install unattended-upgrades, point apt at ``repos`` only.

    ``pattern``: the ``Unattended-Upgrade::Origins-Pattern`` entry that allows the
    security repository (and nothing else: Debian's own entries match no source left).

    Raises:
        RuntimeError: no cached root (scripts/ci-roots builds it) or a step failed.
    """
    suite = _codename()
    tarball = CACHE / f"{suite}-apt.tar"
    if not tarball.is_file():
        raise RuntimeError(f"{tarball} is missing: run scripts/ci-roots {suite}")
    work = Path(tempfile.mkdtemp(prefix="aegis-bench-uu-", dir="/var/tmp"))
    uu = UURoot(work)
    try:
        uu.root.mkdir()
        subprocess.run(["tar", "-C", str(uu.root), "-xf", str(tarball)], check=True)
        shutil.copyfile("/etc/resolv.conf", uu.root / "etc/resolv.conf")
        # Never start a service from a maintainer script in here.
        rc = uu.root / "usr/sbin/policy-rc.d"
        rc.write_text("#!/bin/sh\nexit 101\n")
        rc.chmod(0o755)
        debs = CACHE / f"{suite}-apt-archives"
        if debs.is_dir():
            _link_debs(debs, uu.root / "var/cache/apt/archives")
        uu.sh(
            "apt-get update -qq && apt-get install -y -qq --no-install-recommends"
            " unattended-upgrades python3-apt lsb-release >/dev/null"
        )
        if debs.is_dir():
            _link_debs(uu.root / "var/cache/apt/archives", debs)
        _only_test_sources(uu, repos, pattern)
    except BaseException:
        uu.remove()
        raise
    return uu


def _only_test_sources(uu: UURoot, repos: list[Any], pattern: str) -> None:
    apt = uu.root / "etc/apt"
    (apt / "sources.list").unlink(missing_ok=True)
    for old in (apt / "sources.list.d").glob("*"):
        old.unlink()
    (apt / "keyrings").mkdir(exist_ok=True)
    stanzas = []
    for repo in repos:
        name = repo.path.name
        shutil.copytree(repo.path, uu.root / "srv" / name)
        shutil.copyfile(repo.key_path, apt / "keyrings" / f"{name}.gpg")
        stanzas.append(
            f"Types: deb\nURIs: file:/srv/{name}\nSuites: {repo.suite}\n"
            f"Components: {repo.component}\nSigned-By: /etc/apt/keyrings/{name}.gpg\n"
        )
    (apt / "sources.list.d/aegis-bench.sources").write_text("\n".join(stanzas))
    (apt / "apt.conf.d/51aegis-bench").write_text(
        f'Unattended-Upgrade::Origins-Pattern {{ "{pattern}"; }};\n'
    )
    uu.sh("rm -rf /var/lib/apt/lists/* && apt-get update -qq")
