"""The one derivation of the argv that applies a plan (``command_preview``).

Used by the analyzer, by ``aegisctl sign`` and by aegisd. Pure: the plan in, a tuple out.

Rules (docs/design.md "Trust"):

- install / upgrade deltas of only installs, upgrades and reinstalls:
  ``/usr/bin/apt-get install --trivial-only -- pkg=ver ...`` listing every package
  of the delta at its exact version. apt applies exactly that set inside its own
  lock and refuses (exit 100) if its resolution would add anything.
- ``remove`` / ``purge`` requests whose delta only removes:
  ``/usr/bin/apt-get -y remove|purge -- pkg ...`` (every removed package named).
- any other delta (an install that also removes or downgrades, a rollback):
  ``/usr/bin/apt-get -y [--allow-downgrades] [--purge] install -- pkg=ver ... pkg- ...``:
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

Operands are ``name=version``; a package whose architecture is not ``all`` is
written ``name:arch=version`` so multi-arch hosts get exactly the planned package.
No caller option ever reaches the argv: every element comes from this function.
"""

from __future__ import annotations

from pathlib import Path

from aegis.model import Action, Operation, PackageChange, Plan

APT_GET = "/usr/bin/apt-get"
DPKG = "/usr/bin/dpkg"

_PLAIN = (Action.INSTALL, Action.UPGRADE, Action.REINSTALL)
_REMOVING = (Action.REMOVE, Action.PURGE)


def _operand(name: str, arch: str, version: str | None) -> str:
    base = name if arch in ("", "all") else f"{name}:{arch}"
    return f"{base}={version}" if version else base


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

    def install(c: PackageChange) -> str:
        path = local.get((c.name, c.candidate_version or ""))
        return path or _operand(c.name, c.arch, c.candidate_version)

    removing = [c for c in changes if c.action in _REMOVING]
    if all(c.action in _PLAIN for c in changes):
        operands = sorted(install(c) for c in changes)
        return (APT_GET, "install", "--trivial-only", "--", *operands)
    if len(removing) == len(changes) and op in (Operation.REMOVE, Operation.PURGE):
        purge = any(c.action is Action.PURGE for c in changes)
        names = sorted(_operand(c.name, c.arch, None) for c in changes)
        return (APT_GET, "-y", "purge" if purge else "remove", "--", *names)
    opts: list[str] = ["-y"]
    if any(c.action is Action.DOWNGRADE for c in changes):
        opts.append("--allow-downgrades")
    if any(c.action is Action.PURGE for c in changes):
        opts.append("--purge")
    installs = sorted(install(c) for c in changes if c.action not in _REMOVING)
    removals = sorted(_operand(c.name, c.arch, None) + "-" for c in removing)
    return (APT_GET, *opts, "install", "--", *installs, *removals)
