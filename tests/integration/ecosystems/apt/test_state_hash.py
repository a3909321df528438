"""The package-state hash moves with every input and only then."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from aegis.config import Config, load_config
from aegis.devtools import testrepo

from .conftest import Analyze


def _hash(analyze: Analyze, cfg: Config | None = None, target: str = "aegis-base") -> str:
    return analyze("install", target, cfg=cfg).package_state_hash


def _cfg(root: testrepo.AptRoot, home: Path) -> Config:
    """The test root's apt configuration and its own dpkg configuration directory."""
    return load_config(
        {
            "AEGIS_HOME": str(home),
            "AEGIS_APT_CONFIG": str(root.apt_config),
            "AEGIS_HOST_ID": "test-host",
            "AEGIS_DPKG_ROOT": str(root.root),
        }
    )


def test_stable_without_change(analyze: Analyze) -> None:
    assert _hash(analyze) == _hash(analyze)


def test_changes_with_each_input(
    apt_root: testrepo.AptRoot, analyze: Analyze, tmp_path: Path, aegis_home: Path
) -> None:
    root = apt_root
    cfg = _cfg(root, aegis_home)

    def status() -> None:
        testrepo.run_apt(root, "install", "-y", "aegis-benign=1.0")

    def release() -> None:
        (p,) = root.lists_dir.glob("*_InRelease")
        p.write_bytes(p.read_bytes() + b"\n")

    def source() -> None:
        (p,) = root.sources_dir.iterdir()
        p.write_text(p.read_text() + "\n")

    def keyring() -> None:
        (root.trusted_parts / "extra.gpg").write_bytes(b"x")

    def signed_by_keyring() -> None:
        # The key the source names: swapping it is the attack the hash must see.
        (p,) = root.keyrings_dir.glob("*.gpg")
        p.write_bytes(p.read_bytes() + b"\0")

    def pin() -> None:
        (root.preferences_dir / "aegis").write_text(
            "Package: aegis-base\nPin: version 1.0\nPin-Priority: 1001\n"
        )

    def apt_config() -> None:
        with root.apt_config.open("a") as f:
            f.write('APT::Install-Recommends "false";\n')

    def dpkg_config() -> None:
        d = root.root / "etc" / "dpkg" / "dpkg.cfg.d"
        d.mkdir(parents=True, exist_ok=True)
        (d / "aegis").write_text("force-confnew\n")

    steps: list[Callable[[], None]] = [
        status,
        release,
        source,
        keyring,
        signed_by_keyring,
        pin,
        apt_config,
        dpkg_config,
    ]
    seen = {_hash(analyze, cfg)}
    for step in steps:
        step()
        h = _hash(analyze, cfg)
        assert h not in seen, step.__name__
        seen.add(h)
        assert _hash(analyze, cfg) == h, step.__name__  # and stable again afterwards


def test_not_otherwise(apt_root: testrepo.AptRoot, analyze: Analyze, aegis_home: Path) -> None:
    """Nothing apt ignores, and nothing about the request itself, moves the hash."""
    root = apt_root
    cfg = _cfg(root, aegis_home)
    before = _hash(analyze, cfg)
    inputs = [
        *root.lists_dir.glob("*Release*"),
        *root.sources_dir.iterdir(),
        *root.keyrings_dir.iterdir(),
        root.apt_config,
    ]
    for p in inputs:  # mtimes only: content is what counts
        os.utime(p, (0, 0))
    (root.sources_dir / "README").write_text("deb file:/nowhere x main\n")  # not .list/.sources
    (root.sources_dir / ".hidden.list").write_text("deb file:/nowhere x main\n")
    (root.preferences_dir / "old.bak").write_text("Package: *\nPin: origin x\nPin-Priority: 1\n")
    (root.trusted_parts / "notes.txt").write_text("not a keyring\n")
    (root.lists_dir / "partial").mkdir(exist_ok=True)
    (root.lists_dir / "partial" / "junk").write_bytes(b"x")
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    (cfg.cache_dir / "unrelated").write_text("{}")  # Aegis's own files
    assert _hash(analyze, cfg) == before
    assert _hash(analyze, cfg, target="aegis-tool") == before  # the state, not the request
