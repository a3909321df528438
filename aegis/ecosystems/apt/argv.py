"""The one derivation of the argv that applies a plan (``command_preview``).

Used by the analyzer, by ``aegisctl sign`` and by aegisd. Pure: the plan in, a tuple out.

Rules (docs/design.md "Trust"):

- every package to install is named by the file aegisd fetched and verified for it:
  ``<plan.deb_dir>/<name>_<version>_<arch>_<sha256>.deb`` (:func:`planned_deb_path`),
  from the plan's provenance (URI, SHA-256, size of the build apt's own resolution
  picked), and apt runs with :func:`files_only` options: no source list, so apt can
  install nothing but these files (docs/apt-trust.md "One file from plan to install").
  A package to install without provenance, or a plan without ``deb_dir``: ``()``.
- install / upgrade deltas of only installs, upgrades and reinstalls:
  ``/usr/bin/apt-get <files-only> install --trivial-only -- FILE ...`` listing the
  file of every package of the delta. apt applies exactly that set inside its own
  lock and refuses (exit 100) if its resolution would add anything.
- ``remove`` / ``purge`` requests whose delta only removes:
  ``/usr/bin/apt-get -y remove|purge -- pkg ...`` (every removed package named).
- any other delta (an install that also removes or downgrades, a rollback):
  ``/usr/bin/apt-get <files-only> -y [--allow-downgrades] [--purge] install -- FILE ...
  pkg- ...``:
  removals use apt's ``pkg-`` suffix so the whole delta is one command. These are
  never trivial, so they run with ``-y`` only after aegisd re-derived the plan and
  found it equal to the signed one; essential packages are never allowed
  (no ``--allow-remove-essential``), so apt refuses such a removal itself.
- ``update``: ``/usr/bin/apt-get update``.
- ``recover``: ``/usr/bin/dpkg --configure -a`` (``dpkg_root`` adds ``--root=R
  --force-script-chrootless`` for throwaway test roots: dpkg has no APT_CONFIG).
- a failed analysis, an empty delta, or direct path / URL targets: ``()`` (nothing runs).
- a rollback target no repository serves any more is named by the absolute path of
  the .deb kept in its snapshot (``plan.snapshot_debs``, checked by the analyzer
  against aegisd's manifest); a snapshot .deb that did not verify, belongs to
  another snapshot, or appears outside a rollback: ``()``.

Removal operands are package names; a package whose architecture is not ``all`` is
written ``name:arch`` so multi-arch hosts remove exactly the planned package.
No caller option ever reaches the argv: every element comes from this function.
"""

from __future__ import annotations

import re
from pathlib import Path

from aegis.bounds import HEX64_RE as _SHA256
from aegis.model import Action, Operation, PackageChange, Plan, Provenance

APT_GET = "/usr/bin/apt-get"
DPKG = "/usr/bin/dpkg"

# Debian's grammars (Policy 5.6.1, 5.6.12; dpkg-architecture), ASCII only: a file name
# built from them stays inside its directory and never starts with '-'.
_NAME = re.compile(r"\A[a-z0-9][a-z0-9+.-]*\Z", re.ASCII)
_VERSION = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9.+~:-]*\Z", re.ASCII)
_ARCH = re.compile(r"\A[a-z0-9][a-z0-9-]*\Z", re.ASCII)

_PLAIN = (Action.INSTALL, Action.UPGRADE, Action.REINSTALL)
_REMOVING = (Action.REMOVE, Action.PURGE)


def _operand(name: str, arch: str) -> str:
    return name if arch in ("", "all") else f"{name}:{arch}"


def planned_deb_path(deb_dir: str, prov: Provenance) -> str | None:
    """Where aegisd keeps the verified file of ``prov`` and the argv names it. Pure.

    The SHA-256 is part of the name: two builds of one version are two files. None
    when a field is outside its grammar: such a name could leave ``deb_dir`` or read
    as an option, so it names no file.
    """
    if not (
        _NAME.match(prov.package)
        and _VERSION.match(prov.version)
        and _ARCH.match(prov.arch)
        and _SHA256.match(prov.sha256)
        and deb_dir.startswith("/")
    ):
        return None
    version = prov.version.replace(":", "%3a")
    return f"{deb_dir}/{prov.package}_{version}_{prov.arch}_{prov.sha256}.deb"


def source_parts_option(deb_dir: str) -> str:
    """The ``-o`` value of :func:`files_only` that names ``deb_dir`` (aegisd creates it)."""
    return f"Dir::Etc::SourceParts={deb_dir}/"


def files_only(deb_dir: str) -> tuple[str, ...]:
    """The options under which apt installs only the named .deb files.

    With any source configured, apt merges a local .deb with the repository build of
    the same hashes and unpacks the repository's copy instead of the verified file;
    with no source it can only unpack the files it is given. Its package cache is not
    written (it would describe a system without sources). ``deb_dir`` is the (empty of
    source files) directory apt reads as its sources directory.
    """
    return (
        "-o",
        "Dir::Etc::SourceList=/dev/null",
        "-o",
        source_parts_option(deb_dir),
        "-o",
        "Dir::Cache::pkgcache=",
        "-o",
        "Dir::Cache::srcpkgcache=",
    )


def _snapshot_paths(plan: Plan) -> dict[tuple[str, str], str] | None:
    """(name, version) -> kept .deb path; None when a snapshot .deb may not be used."""
    debs = plan.snapshot_debs
    if not debs:
        return {}
    rollback_of = plan.intent.rollback_of
    if plan.intent.operation is not Operation.ROLLBACK or not rollback_of:
        return None
    if any(not d.verified or d.snapshot_id != rollback_of for d in debs):
        return None
    return {(d.package, d.version): d.path for d in debs}


def _install_files(
    plan: Plan, changes: list[PackageChange], local: dict[tuple[str, str], str]
) -> list[str] | None:
    """The file of every package to install; None when one has no exact file.

    Naming such a package only by its version would be a guess: two builds of one
    version are two different files.
    """
    files = {(p.package, p.arch, p.version): p for p in plan.provenance}
    out: list[str] = []
    for c in changes:
        if c.action in _REMOVING:
            continue
        version = c.candidate_version or ""
        path = local.get((c.name, version))
        prov = files.get((c.name, c.arch, version))
        if path is None and prov is not None and plan.deb_dir:
            path = planned_deb_path(plan.deb_dir, prov)
        if path is None:
            return None
        out.append(path)
    return out


def derive_argv(plan: Plan, *, dpkg_root: Path | None = None) -> tuple[str, ...]:
    """The exact argv that applies ``plan``; ``()`` when nothing may run.

    Args:
        plan: the operation plan.
        dpkg_root: throwaway root for ``recover`` in tests (dpkg ignores APT_CONFIG).
    """
    op = plan.intent.operation
    if plan.failure is not None:
        return ()
    if op is Operation.UPDATE:
        return (APT_GET, "update")
    if op is Operation.RECOVER:
        if dpkg_root is not None:
            return (DPKG, f"--root={dpkg_root}", "--force-script-chrootless", "--configure", "-a")
        return (DPKG, "--configure", "-a")
    changes = [c for c in plan.changes if c.action is not Action.HELD_BACK]
    local = _snapshot_paths(plan)
    if not changes or local is None:
        return ()
    removing = [c for c in changes if c.action in _REMOVING]
    if len(removing) == len(changes) and op in (Operation.REMOVE, Operation.PURGE):
        purge = any(c.action is Action.PURGE for c in changes)
        names = sorted(_operand(c.name, c.arch) for c in changes)
        return (APT_GET, "-y", "purge" if purge else "remove", "--", *names)
    installs = _install_files(plan, changes, local)
    if installs is None or not plan.deb_dir:
        return ()
    apt = (APT_GET, *files_only(plan.deb_dir))
    if not removing and all(c.action in _PLAIN for c in changes):
        return (*apt, "install", "--trivial-only", "--", *sorted(installs))
    opts: list[str] = ["-y"]
    if any(c.action is Action.DOWNGRADE for c in changes):
        opts.append("--allow-downgrades")
    if any(c.action is Action.PURGE for c in changes):
        opts.append("--purge")
    removals = sorted(_operand(c.name, c.arch) + "-" for c in removing)
    return (*apt, *opts, "install", "--", *sorted(installs), *removals)
