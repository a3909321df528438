"""A host-install layout in a temp dir, and Aegis run as other users through ``setpriv``.

Host semantics (modes, group, umask 007) apply when ``AEGIS_HOME`` is unset, so the
layout is relocated with ``AEGIS_STATE_DIR``/``AEGIS_LOG_DIR``/``AEGIS_RUN_DIR``/
``AEGIS_ETC_DIR``; the group is a free gid named by number (``AEGIS_GROUP``), so the
host's /etc/group is never touched. The checkout may live under /root where other
users cannot read: the ``aegis`` package, its shipped data and its runtime
dependencies are copied into a world-readable temp dir and run with the system
Python, whose version the .venv shares.
"""

from __future__ import annotations

import grp
import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_root

REPO = Path(__file__).resolve().parents[3]
SYSTEM_PYTHON = "/usr/bin/python3"
RUNTIME_MODULES = (
    "click",
    "nacl",
    "cffi",
    "_cffi_backend",
    "pycparser",
    "sqlite_utils",
    "sqlite_fts4",
    "tabulate",
    "dateutil",
    "six",
    "click_default_group",
    "pluggy",
    "debian",
    "transitions",
    "rich",
    "markdown_it",
    "mdurl",
    "pygments",
    "zstandard",
)
MEMBER = 65534
OTHER_MEMBER = 65533


def _runtime_modules() -> set[str]:
    """Top-level modules of aegis's runtime dependencies, followed transitively.

    Read from the installed distributions, so a dependency another change adds is copied
    too; :data:`RUNTIME_MODULES` stays as the floor.
    """
    from importlib import metadata

    from packaging.requirements import Requirement

    names: set[str] = set(RUNTIME_MODULES)
    todo = [r for r in metadata.requires("aegis") or [] if "extra ==" not in r]
    seen: set[str] = set()
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = req.name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        for file in dist.files or []:
            top = file.parts[0]
            if top.endswith((".dist-info", ".pth")) or top in ("..", "__pycache__", "bin"):
                continue
            names.add(top.removesuffix(".py").split(".")[0])
        todo += _needed(dist.requires or [], req.extras)
    return names


def _needed(requires: list[str], extras: set[str]) -> list[str]:
    """The requirements a distribution needs, with the extras asked of it (pyjwt[crypto])."""
    from packaging.requirements import Requirement

    out = []
    for r in requires:
        req = Requirement(r)
        if "extra ==" not in r:
            out.append(r)
        elif req.marker is not None and any(req.marker.evaluate({"extra": e}) for e in extras):
            wanted = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
            out.append(f"{req.name}{wanted}{req.specifier}")  # asked for: no marker left
    return out


def _dist_infos() -> list[Path]:
    """The ``*.dist-info`` folders of aegis's runtime dependencies, followed transitively."""
    from importlib import metadata

    from packaging.requirements import Requirement

    found: dict[str, Path] = {}
    todo = [r for r in metadata.requires("aegis") or [] if "extra ==" not in r]
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = req.name.lower().replace("_", "-")
        if key in found:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        infos = {f.parts[0] for f in dist.files or [] if f.parts[0].endswith(".dist-info")}
        found[key] = Path(str(dist.locate_file(next(iter(infos))))) if infos else Path()
        todo += _needed(dist.requires or [], req.extras)
    return [p for p in found.values() if p.name.endswith(".dist-info") and p.is_dir()]


def _copy_module(name: str, site: Path) -> None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return
    if spec is not None and spec.origin is None and spec.submodule_search_locations:
        # A namespace package (opentelemetry, which the mcp SDK imports): each portion.
        for location in spec.submodule_search_locations:
            shutil.copytree(
                location,
                site / name,
                ignore=shutil.ignore_patterns("__pycache__"),
                dirs_exist_ok=True,
            )
        return
    if spec is None or spec.origin is None:
        return  # optional here (e.g. zstandard on an older branch)
    origin = Path(spec.origin)
    if spec.submodule_search_locations:
        shutil.copytree(
            origin.parent, site / origin.parent.name, ignore=shutil.ignore_patterns("__pycache__")
        )
    else:
        shutil.copy2(origin, site / origin.name)


@pytest.fixture(scope="session")
def public_tree() -> Iterator[Path]:
    """World-readable copy of aegis, workflows/, state/ and the runtime dependencies."""
    base = Path(tempfile.mkdtemp(prefix="aegis-public-"))
    base.chmod(0o755)
    src = base / "src"
    site = base / "site"
    site.mkdir()
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__")
    for part in ("aegis", "workflows", "state"):
        shutil.copytree(REPO / part, src / part, ignore=ignore)
    for name in sorted(_runtime_modules()):
        _copy_module(name, site)
    for info in _dist_infos():
        # Some packages read their own metadata at import (httpx2: version("httpx2")).
        shutil.copytree(info, site / info.name, dirs_exist_ok=True)
    for path in [base, *base.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def run_public(
    public: Path,
    base_env: dict[str, str],
    uid: int | None,
    *argv: str,
    groups: tuple[int, ...] = (),
    gid: int | None = None,
    umask: int = 0o022,
    python: tuple[str, ...] = ("-m", "aegis"),
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the public copy of aegis as ``uid`` (None: root) with ``groups`` and ``umask``."""
    env = {
        **base_env,
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": f"{public / 'site'}:{public / 'src'}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/",
    }
    cmd = ["sh", "-c", f'umask {umask:03o}; exec "$@"', "sh", SYSTEM_PYTHON, *python, *argv]
    if uid is not None:
        primary = gid if gid is not None else uid
        group_opt = f"--groups={','.join(str(g) for g in groups)}" if groups else "--clear-groups"
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={primary}", group_opt, *cmd]
    return subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd="/", check=False
    )


def free_gid() -> int:
    """A gid no group on this machine has (the tests' group aegis, named by number)."""
    for gid in range(47000, 48000):
        try:
            grp.getgrgid(gid)
        except KeyError:
            return gid
    raise AssertionError("no free gid")


@dataclass
class Host:
    """A relocated host layout and a way to run aegis as another user."""

    root: Path
    gid: int
    env: dict[str, str]
    public: Path

    @property
    def state(self) -> Path:
        return Path(self.env["AEGIS_STATE_DIR"])

    @property
    def log(self) -> Path:
        return Path(self.env["AEGIS_LOG_DIR"])

    @property
    def etc(self) -> Path:
        return Path(self.env["AEGIS_ETC_DIR"])

    @property
    def run(self) -> Path:
        return Path(self.env["AEGIS_RUN_DIR"])

    def run_as(
        self,
        uid: int | None,
        *argv: str,
        groups: tuple[int, ...] = (),
        gid: int | None = None,
        umask: int = 0o022,
        python: tuple[str, ...] = ("-m", "aegis"),
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m aegis ARGV`` (or ``python`` args) as ``uid`` (None: root)."""
        return run_public(
            self.public,
            self.env,
            uid,
            *argv,
            groups=groups,
            gid=gid,
            umask=umask,
            python=python,
            timeout=timeout,
        )

    def member(self, *argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
        """As uid 65534 with group aegis as a supplementary group (an agent)."""
        return self.run_as(MEMBER, *argv, groups=(self.gid,), **kw)  # type: ignore[arg-type]


@pytest.fixture
def host(public_tree: Path) -> Iterator[Host]:
    """A host layout: state 3770 root:aegis, log 0750 root:aegis, aegisd 0700 root."""
    require_root("needs root to create other users' files and drop privileges")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} is missing")
    root = Path(tempfile.mkdtemp(prefix="aegis-host-", dir="/tmp"))
    root.chmod(0o755)
    gid = free_gid()
    dirs = {
        "state": (root / "var/lib/aegis", 0o3770, gid),
        "aegisd": (root / "var/lib/aegis/aegisd", 0o700, 0),
        "log": (root / "var/log/aegis", 0o750, gid),
        "etc": (root / "etc/aegis", 0o755, 0),
        "run": (root / "run/aegis", 0o755, 0),
    }
    for path, mode, group in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, 0, group)
        path.chmod(mode)
    for p in [root / "var", root / "var/lib", root / "var/log", root / "etc", root / "run"]:
        p.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_") and k != "PYTHONPATH"}
    env.update(
        {
            "AEGIS_STATE_DIR": str(dirs["state"][0]),
            "AEGIS_LOG_DIR": str(dirs["log"][0]),
            "AEGIS_RUN_DIR": str(dirs["run"][0]),
            "AEGIS_ETC_DIR": str(dirs["etc"][0]),
            "AEGIS_GROUP": str(gid),
            "AEGIS_HOST_ID": "test-host",
            "AEGIS_AUDIT_SYSLOG": "0",
        }
    )
    yield Host(root, gid, env, public_tree)
    shutil.rmtree(root, ignore_errors=True)
