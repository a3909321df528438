"""Rollback targets from the snapshot's kept .deb: each check with the attack it stops.

Real apt in a throwaway root; the snapshot is written by hand the way aegisd writes
it (aegis/execute/snapshots.py), holding a version the configured repository never
served (aegis-base 0.9).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aegis.canonical import canonical_bytes
from aegis.codec import to_dict
from aegis.config import Config
from aegis.devtools import testrepo
from aegis.ecosystems.apt.argv import derive_argv
from aegis.ecosystems.apt.plan import analyze_apt
from aegis.ecosystems.apt.snapshot_debs import changed_since_signing, recheck
from aegis.execute.snapshots import SNAPSHOT_SCHEMA, ReplacedPackage, Snapshot
from aegis.model import Intent, Operation, Plan, Tool
from tests.conftest import FILES_ONLY, planned_debs

from .conftest import cfg_for

SNAP = "snap-t1"


@pytest.fixture(scope="module")
def old_debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """aegis-base 0.9 and 0.8 .debs from a repository apt is not configured with."""
    specs = (testrepo.PackageSpec("aegis-base", "0.9"), testrepo.PackageSpec("aegis-base", "0.8"))
    repo = testrepo.build_repo(tmp_path_factory.mktemp("old"), packages=specs)
    pool = repo.path / "pool/main"
    return {v: pool / f"aegis-base_{v}_all.deb" for v in ("0.9", "0.8")}


def _entry(source: Path, **overrides: object) -> ReplacedPackage:
    fields: dict[str, object] = {
        "name": "aegis-base",
        "arch": "all",
        "version": "0.9",
        "deb": "aegis-base_0.9_all.deb",
        "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "obtained_from": "dpkg-repack",
        "size": source.stat().st_size,
    }
    fields.update(overrides)
    return ReplacedPackage(**fields)  # type: ignore[arg-type]


def _snapshot(cfg: Config, deb: Path, *entries: ReplacedPackage) -> Path:
    """Write snapshot SNAP holding ``deb`` and a manifest listing ``entries``."""
    base = cfg.rollback_cache_dir / SNAP
    base.mkdir(parents=True, mode=0o700)
    cfg.rollback_cache_dir.chmod(0o700)
    kept = Path(shutil.copyfile(deb, base / "aegis-base_0.9_all.deb"))
    snap = Snapshot(
        schema_version=SNAPSHOT_SCHEMA,
        snapshot_id=SNAP,
        execution_id="e1",
        request_id="r-1",
        created_at="2026-01-01T00:00:00Z",
        dpkg_root=None,
        selections="",
        packages={},
        replaced=entries or (_entry(kept),),
        conffiles=(),
    )
    (base / "manifest.json").write_bytes(canonical_bytes(to_dict(snap)) + b"\n")
    return kept


@pytest.fixture
def cfg(apt_root: testrepo.AptRoot, aegis_home: Path) -> Config:
    return cfg_for(apt_root, aegis_home)


def _rollback(cfg: Config, *targets: str, snapshot: str = SNAP) -> Plan:
    intent = Intent(
        Tool.APT, Operation.ROLLBACK, targets or ("aegis-base=0.9",), "t", "2026-01-01T00:00:00Z"
    )
    return analyze_apt(cfg, replace(intent, rollback_of=snapshot), datetime.now(UTC))


def test_version_no_repository_serves_comes_from_the_kept_deb(
    cfg: Config, old_debs: dict[str, Path]
) -> None:
    kept = _snapshot(cfg, old_debs["0.9"])
    plan = _rollback(cfg)
    assert plan.failure is None, plan.failure
    [sd] = plan.snapshot_debs
    assert (sd.package, sd.version, sd.arch, sd.snapshot_id) == ("aegis-base", "0.9", "all", SNAP)
    assert (sd.path, sd.verified, sd.problem) == (str(kept), True, "")
    assert sd.sha256 == hashlib.sha256(kept.read_bytes()).hexdigest()
    [change] = plan.changes
    assert (change.name, change.candidate_version, change.repository) == ("aegis-base", "0.9", None)
    assert plan.command_preview[:3] == ("/usr/bin/apt-get", *FILES_ONLY)
    assert plan.command_preview[-4:] == ("install", "--trivial-only", "--", str(kept))
    assert derive_argv(plan) == plan.command_preview
    assert recheck(cfg, sd) is None
    # Deterministic: a second analysis (the signer's, aegisd's) gives the same plan.
    again = _rollback(cfg)
    assert (again.snapshot_debs, again.command_preview) == (
        plan.snapshot_debs,
        plan.command_preview,
    )


def test_version_a_repository_serves_keeps_index_provenance(
    cfg: Config, old_debs: dict[str, Path]
) -> None:
    _snapshot(cfg, old_debs["0.9"], _entry(old_debs["0.9"], version="1.0"))
    plan = _rollback(cfg, "aegis-base=1.0")
    assert plan.failure is None
    assert plan.snapshot_debs == ()
    assert plan.command_preview[-1:] == tuple(planned_debs(plan))
    assert [p.package for p in plan.provenance] == ["aegis-base"]


def _fails(cfg: Config, kind: str, why: str) -> Plan:
    plan = _rollback(cfg)
    assert plan.failure is not None
    assert (plan.failure.kind, why in plan.failure.message) == (kind, True), plan.failure
    assert plan.command_preview == ()
    assert plan.changes == ()
    return plan


@pytest.mark.parametrize(
    ("attack", "why"),
    [
        ("other-bytes", "is not the manifest's"),
        ("truncated-size", "bytes, the manifest says 1"),
        ("control-fields", "the manifest says aegis-base/0.9/all"),
        ("name-outside-directory", "not a file of its own directory"),
        ("symlinked-deb", "is a symlink"),
        ("foreign-owner", "owned by uid 65534"),
        ("group-writable-manifest", "writable by others"),
        ("symlinked-snapshot-dir", "is a symlink"),
    ],
)
def test_a_kept_deb_that_does_not_match_fails_the_plan(
    cfg: Config, old_debs: dict[str, Path], tmp_path: Path, attack: str, why: str
) -> None:
    if attack == "control-fields":  # right hash in the manifest, but the .deb is 0.8
        kept = _snapshot(
            cfg, old_debs["0.8"], _entry(old_debs["0.8"], deb="aegis-base_0.9_all.deb")
        )
    elif attack == "truncated-size":
        kept = _snapshot(cfg, old_debs["0.9"], _entry(old_debs["0.9"], size=1))
    elif attack == "name-outside-directory":
        kept = _snapshot(cfg, old_debs["0.9"], _entry(old_debs["0.9"], deb="../elsewhere.deb"))
    else:
        kept = _snapshot(cfg, old_debs["0.9"])
    if attack == "other-bytes":
        shutil.copyfile(old_debs["0.8"], kept)
    elif attack == "symlinked-deb":
        outside = Path(shutil.copyfile(kept, tmp_path / "outside.deb"))
        kept.unlink()
        kept.symlink_to(outside)
    elif attack == "foreign-owner":
        if os.geteuid() != 0:
            pytest.skip("chown needs root")
        os.chown(kept, 65534, 65534)
    elif attack == "group-writable-manifest":
        (kept.parent / "manifest.json").chmod(0o664)
    elif attack == "symlinked-snapshot-dir":
        moved = kept.parent.rename(tmp_path / "moved")
        kept.parent.symlink_to(moved)
    plan = _fails(cfg, "snapshot-mismatch", why)
    assert any(s.name == "rollback.snapshot-mismatch" for s in plan.signals)
    assert all(not sd.verified for sd in plan.snapshot_debs)


def test_nothing_kept_is_unobtainable_not_a_fallback(
    cfg: Config, old_debs: dict[str, Path]
) -> None:
    _snapshot(
        cfg,
        old_debs["0.9"],
        _entry(old_debs["0.9"], deb=None, sha256=None, obtained_from="unavailable", size=None),
    )
    _fails(cfg, "rollback-unobtainable", "kept no .deb")


def test_a_target_the_snapshot_did_not_replace_is_unobtainable(
    cfg: Config, old_debs: dict[str, Path]
) -> None:
    _snapshot(cfg, old_debs["0.9"])
    plan = _rollback(cfg, "aegis-base=0.7")
    assert plan.failure is not None
    assert plan.failure.kind == "rollback-unobtainable"
    assert "did not replace it" in plan.failure.message


def test_missing_snapshot_fails_the_plan(cfg: Config) -> None:
    plan = _rollback(cfg, snapshot="snap-none")
    assert plan.failure is not None
    assert plan.failure.kind == "snapshot-mismatch"


def test_recheck_names_a_swap_and_a_path_outside_the_snapshot(
    cfg: Config, old_debs: dict[str, Path]
) -> None:
    kept = _snapshot(cfg, old_debs["0.9"])
    [sd] = _rollback(cfg).snapshot_debs
    assert changed_since_signing(cfg, (sd,)) is None
    outside = replace(sd, path=str(cfg.rollback_cache_dir / "aegis-base_0.9_all.deb"))
    assert "not inside snapshot" in (recheck(cfg, outside) or "")
    shutil.copyfile(old_debs["0.8"], kept)
    problem = changed_since_signing(cfg, (sd,))
    assert problem is not None
    assert problem.startswith("snapshot .deb of aegis-base=0.9: ")
    assert "changed after signing" in problem
