"""Throwaway apt roots: a private ``APT_CONFIG`` pointing at test repositories, and apt runs.

Part of :mod:`aegis.devtools.testrepo` (which re-exports :class:`AptRoot`,
:func:`make_root`, :func:`apt_env`, :func:`run_apt`, :func:`apt_update` and
:data:`SIGNED_BY_FORMS`). Recipes follow docs/testing.md "Private apt configuration"
and "Throwaway roots": the private configuration never reads the host's apt
configuration, and dpkg acts on the throwaway root (``DPkg::Options { "--root=R";
... }``), so nothing touches the host.

Example::

    root = make_root(tmp / "root", [repo], signed_by_form="armored-path")
    apt_update(root)
    run_apt(root, "install", "-y", "aegis-tool")
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aegis.devtools.testrepo_keys import CHILD_ENV_KEEP
from aegis.devtools.testrepo_repos import Repo

SIGNED_BY_FORMS = (
    "keyring-path",
    "armored-path",
    "fingerprint",
    "embedded",
    "trusted-parts",
    "none",
)
"""How a source names its key. ``trusted-parts``: no Signed-By, key dropped into
``trusted.gpg.d`` (works, weakly bound). ``none``: no Signed-By and no key."""


@dataclass(frozen=True)
class AptRoot:
    """A throwaway root with its private apt configuration."""

    root: Path
    apt_config: Path
    sources_dir: Path
    status: Path
    keyrings_dir: Path
    trusted_parts: Path
    preferences_dir: Path
    conf_parts: Path
    lists_dir: Path
    repos: tuple[Repo, ...] = ()


def _embedded_block(armored: Path) -> str:
    lines = armored.read_text().strip("\n").splitlines()
    return "\n".join(" " + (ln if ln.strip() else ".") for ln in lines)


def make_root(
    dest: Path | str,
    repos: Sequence[Repo],
    *,
    signed_by_form: str | Sequence[str] = "keyring-path",
    status: str | Path | None = None,
    source_format: str = "deb822",
    architecture: str = "amd64",
    extra_config: str = "",
) -> AptRoot:
    """Create a throwaway root ``dest`` with a private apt.conf pointing at ``repos``.

    ``signed_by_form`` is one form for all repos or one per repo (see
    :data:`SIGNED_BY_FORMS`); a repo's ``signed_by_override`` wins. ``status`` seeds
    the dpkg status file (text or a file to copy). ``source_format`` is ``deb822``
    or ``one-line`` (``embedded`` needs deb822).
    """
    root = Path(dest).resolve()
    etc = root / "etc/apt"
    sources = etc / "sources.list.d"
    parts = etc / "apt.conf.d"
    trusted = etc / "trusted.gpg.d"
    keyrings = etc / "keyrings"
    prefs = etc / "preferences.d"
    lists = root / "var/lib/apt/lists"
    dpkg_dir = root / "var/lib/dpkg"
    for d in _ROOT_DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    status_file = dpkg_dir / "status"
    if status is None:
        status_file.touch()
    elif isinstance(status, Path):
        shutil.copyfile(status, status_file)
    else:
        status_file.write_text(status)
    (dpkg_dir / "available").touch()

    forms = (
        [signed_by_form] * len(repos) if isinstance(signed_by_form, str) else list(signed_by_form)
    )
    if len(forms) != len(repos):
        raise ValueError("one signed_by_form per repo")
    used_names: set[str] = set()
    for index, (repo, requested) in enumerate(zip(repos, forms, strict=True)):
        form = repo.signed_by_override or requested
        if form not in SIGNED_BY_FORMS:
            raise ValueError(f"unknown signed_by_form {form!r}")
        name = repo.name if repo.name not in used_names else f"{repo.name}-{index}"
        used_names.add(name)
        if form == "embedded" and source_format != "deb822":
            raise ValueError("embedded Signed-By needs deb822 sources")
        signed_by = _install_key(repo, form, name, keyrings=keyrings, trusted=trusted)
        _write_source(sources, name, repo, signed_by, source_format)
    for p in (*keyrings.iterdir(), *trusted.iterdir()):
        p.chmod(0o644)

    conf = root / "aegis-apt.conf"
    conf.write_text(_apt_conf(root, architecture) + extra_config)
    return AptRoot(
        root=root,
        apt_config=conf,
        sources_dir=sources,
        status=status_file,
        keyrings_dir=keyrings,
        trusted_parts=trusted,
        preferences_dir=prefs,
        conf_parts=parts,
        lists_dir=lists,
        repos=tuple(repos),
    )


_ROOT_DIRS = (
    "etc/apt/sources.list.d",
    "etc/apt/apt.conf.d",
    "etc/apt/trusted.gpg.d",
    "etc/apt/keyrings",
    "etc/apt/preferences.d",
    "var/lib/apt/lists/partial",
    "var/cache/apt/archives/partial",
    "var/log/apt",
    "var/lib/dpkg/info",
    "var/lib/dpkg/updates",
    "var/lib/dpkg/triggers",
    "etc/dpkg/dpkg.cfg.d",
    "tmp",
)
"""Directories apt and dpkg expect under a throwaway root."""


def _install_key(repo: Repo, form: str, name: str, *, keyrings: Path, trusted: Path) -> str | None:
    """Put ``repo``'s key where ``form`` says; return the Signed-By value, if any."""
    if form == "keyring-path":
        kp = keyrings / f"{name}.gpg"
        shutil.copyfile(repo.key_path, kp)
        return str(kp)
    if form == "armored-path":
        kp = keyrings / f"{name}.asc"
        shutil.copyfile(repo.armored_key_path, kp)
        return str(kp)
    if form == "fingerprint":
        shutil.copyfile(repo.key_path, trusted / f"{name}.gpg")
        return repo.fingerprint
    if form == "embedded":
        return "\n" + _embedded_block(repo.armored_key_path)
    if form == "trusted-parts":
        shutil.copyfile(repo.key_path, trusted / f"{name}.gpg")
    return None


def _write_source(
    sources: Path, name: str, repo: Repo, signed_by: str | None, source_format: str
) -> None:
    """Write one sources file for ``repo`` in ``source_format``."""
    if source_format == "deb822":
        text = f"Types: deb\nURIs: {repo.uri}\nSuites: {repo.suite}\nComponents: {repo.component}\n"
        if signed_by is not None:
            text += f"Signed-By:{'' if signed_by.startswith(chr(10)) else ' '}{signed_by}\n"
        (sources / f"{name}.sources").write_text(text)
    elif source_format == "one-line":
        opt = f" [signed-by={signed_by}]" if signed_by else ""
        (sources / f"{name}.list").write_text(
            f"deb{opt} {repo.uri} {repo.suite} {repo.component}\n"
        )
    else:
        raise ValueError(f"unknown source_format {source_format!r}")


def _apt_conf(root: Path, architecture: str) -> str:
    r = str(root)
    return f"""// Private apt configuration of an Aegis throwaway root (docs/testing.md).
Dir::Etc "{r}/etc/apt/";
Dir::Etc::main "/dev/null";
Dir::Etc::parts "{r}/etc/apt/apt.conf.d/";
Dir::Etc::sourcelist "/dev/null";
Dir::Etc::sourceparts "{r}/etc/apt/sources.list.d/";
Dir::Etc::trusted "/dev/null";
Dir::Etc::trustedparts "{r}/etc/apt/trusted.gpg.d/";
Dir::Etc::preferences "{r}/etc/apt/preferences";
Dir::Etc::preferencesparts "{r}/etc/apt/preferences.d/";
Dir::State "{r}/var/lib/apt/";
Dir::State::status "{r}/var/lib/dpkg/status";
Dir::Cache "{r}/var/cache/apt/";
Dir::Cache::pkgcache "{r}/var/cache/apt/pkgcache.bin";
Dir::Cache::srcpkgcache "{r}/var/cache/apt/srcpkgcache.bin";
Dir::Log "{r}/var/log/apt/";
APT::Architecture "{architecture}";
APT::Architectures {{ "{architecture}"; }};
APT::Sandbox::User "root";
Acquire::Languages "none";
DPkg::Options {{ "--root={r}"; "--log={r}/var/log/dpkg.log"; "--force-script-chrootless";
  "--force-confdef"; "--force-confold"; }};
"""


def apt_env(root: AptRoot) -> dict[str, str]:
    """The child environment for apt in ``root``: PATH, LANG=C, APT_CONFIG."""
    env = {k: os.environ[k] for k in CHILD_ENV_KEEP if k in os.environ}
    env.update(
        {
            "LANG": "C",
            "LC_ALL": "C",
            "APT_CONFIG": str(root.apt_config),
            "DEBIAN_FRONTEND": "noninteractive",
        }
    )
    return env


def run_apt(
    root: AptRoot,
    *args: str,
    check: bool = True,
    tool: str = "/usr/bin/apt-get",
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run an apt tool (default apt-get) inside ``root``'s private configuration."""
    proc = subprocess.run(
        [tool, *args],
        env=apt_env(root),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def apt_update(root: AptRoot, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``apt-get update`` in ``root``; raises RuntimeError on failure when ``check``."""
    return run_apt(root, "update", check=check)
