"""The one restore aegisd may run without a new approval: the inverse of the signed delta.

Every package the signed plan installed new is removed; every package it upgraded,
downgraded, reinstalled or removed gets back the version it had, from the .deb aegisd
kept in the run's snapshot (:mod:`aegis.execute.snapshots`, checked against the
manifest's SHA-256). Nothing else: no other package, no other version. The signature
covers the delta, so it covers its inverse; anything beyond it is a new request.

apt runs with :func:`aegis.ecosystems.apt.argv.files_only`, so it can only unpack the kept
files, never a repository's build; it refuses to remove an essential package itself.

Example:
    >>> inverse_argv(cfg, ep)
    ('/usr/bin/apt-get', '-o', ..., '-y', '--allow-downgrades', 'install', '--',
     '/var/lib/aegis/aegisd/rollback-cache/snap-…/web_1.0_all.deb', 'web-helper-')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aegis.ecosystems.apt.argv import APT_GET, files_only
from aegis.errors import StateError
from aegis.execute.snapshots import load_snapshot, replaced_debs
from aegis.model import Action

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.ecosystems.apt.dpkg import PackageState
    from aegis.sign.execution_plan import ExecutionPlan


def _operand(name: str, arch: str) -> str:
    return name if arch in ("", "all") else f"{name}:{arch}"


def inverse_argv(cfg: Config, ep: ExecutionPlan) -> tuple[str, ...]:
    """The argv restoring the state before ``ep``'s delta.

    Raises:
        StateError: a version to restore has no kept .deb whose hash still matches.
    """
    changes = [c for c in ep.plan.changes if c.action is not Action.HELD_BACK]
    restore = [c for c in changes if c.current_version]
    kept = {}
    if restore:
        snap = load_snapshot(cfg, f"snap-{ep.execution_id}")
        by_name = {(r.name, r.arch): r.version for r in snap.replaced}
        paths = replaced_debs(cfg, snap)
        for c in restore:
            path = paths.get(c.name)
            if path is None or by_name.get((c.name, c.arch)) != c.current_version:
                raise StateError(
                    f"no kept .deb of {c.name} {c.current_version} in snapshot "
                    f"snap-{ep.execution_id}: the restore cannot be exact"
                )
            kept[c.name] = str(path)
    removals = sorted(_operand(c.name, c.arch) + "-" for c in changes if not c.current_version)
    parts = cfg.aegisd_dir / "rollback-parts"
    parts.mkdir(mode=0o700, exist_ok=True)
    return (
        APT_GET,
        *files_only(str(parts)),
        "-y",
        "--allow-downgrades",
        "install",
        "--",
        *sorted(kept.values()),
        *removals,
    )


def left_over(ep: ExecutionPlan, after: PackageState) -> list[str]:
    """Packages of the delta not back at their version before the run (empty: restored)."""
    out = []
    for c in ep.plan.changes:
        if c.action is Action.HELD_BACK:
            continue
        now = after.get(f"{c.name}:{c.arch}")
        if now is None and c.arch == "all":
            now = next((v for k, v in after.items() if k.split(":")[0] == c.name), None)
        installed = now[0] if now and now[1] != "config-files" else None
        if installed != c.current_version:
            out.append(f"{c.name}: {installed or 'absent'}, wanted {c.current_version or 'absent'}")
    return out
