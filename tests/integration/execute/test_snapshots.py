"""The dpkg-state snapshot provider and the filesystem hook, in a throwaway root."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis.config import load_config
from aegis.devtools import testrepo
from aegis.errors import EnvironmentFailure
from aegis.execute.runner import child_env
from aegis.execute.snapshots import load_snapshot, needs_snapshot, replaced_debs, take_snapshot
from aegis.model import Action, PackageChange

from .conftest import base_env

pytestmark = pytest.mark.root


def _change(action: Action, current: str | None, candidate: str | None) -> PackageChange:
    return PackageChange(
        "aegis-base", "all", action, current, candidate, "aegis-base", candidate, "test"
    )


def test_snapshot_keeps_replaced_deb_and_runs_the_hook(tmp_path: Path, test_repo) -> None:  # type: ignore[no-untyped-def]
    root = testrepo.make_root(tmp_path / "root", [test_repo])
    testrepo.apt_update(root)
    testrepo.run_apt(root, "install", "-y", "aegis-base=1.0")
    cfg = load_config(
        base_env(
            tmp_path / "home", AEGIS_APT_CONFIG=str(root.apt_config), AEGIS_DPKG_ROOT=str(root.root)
        )
    )
    changes = [_change(Action.UPGRADE, "1.0", "1.2")]
    assert needs_snapshot(changes)
    assert not needs_snapshot([_change(Action.INSTALL, None, "1.2")])
    out = tmp_path / "hook.out"
    hook = (
        "/bin/sh",
        "-c",
        f'echo "$AEGIS_SNAPSHOT_ID {{snapshot_id}} $AEGIS_SNAPSHOT_EXCLUDE" > {out}',
    )
    snap = take_snapshot(
        cfg,
        "snap-1",
        changes,
        execution_id="e1",
        request_id="r1",
        env=child_env(cfg.apt_config),
        now="2026-01-01T00:00:00Z",
        hook=hook,
    )
    assert "aegis-base:all" in snap.packages
    assert "aegis-base" in snap.selections
    [kept] = snap.replaced
    # The repository still serves 1.0: apt-get download, checked against the signed index.
    assert (kept.version, kept.obtained_from) == ("1.0", "repository")
    assert kept.size == (cfg.rollback_cache_dir / "snap-1" / (kept.deb or "")).stat().st_size
    assert set(replaced_debs(cfg, snap)) == {"aegis-base"}
    assert load_snapshot(cfg, "snap-1") == snap
    text = out.read_text()
    assert text.startswith("snap-1 snap-1 ")
    assert str(cfg.state_dir) in text
    assert str(cfg.log_dir) in text
    with pytest.raises(EnvironmentFailure, match="snapshot hook"):
        take_snapshot(
            cfg,
            "snap-2",
            changes,
            execution_id="e2",
            request_id=None,
            env=child_env(cfg.apt_config),
            now="t",
            hook=("/bin/false",),
        )
    # Once no repository serves 1.0 (a security suite drops the version it replaces), the
    # installed files are rebuilt into a .deb with dpkg-repack.
    for lists in (root.root / "var/lib/apt/lists").glob("*Packages*"):
        lists.unlink()
    snap = take_snapshot(
        cfg,
        "snap-3",
        changes,
        execution_id="e3",
        request_id=None,
        env=child_env(cfg.apt_config),
        now="t",
    )
    [kept] = snap.replaced
    assert (kept.version, kept.obtained_from) == ("1.0", "dpkg-repack")
