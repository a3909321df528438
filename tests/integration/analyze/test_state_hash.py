"""The package-state hash moves with every input and only then."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aegis.devtools import testrepo

from .conftest import Analyze


def _hash(analyze: Analyze) -> str:
    return analyze("install", "aegis-base").package_state_hash


def test_stable_without_change(analyze: Analyze) -> None:
    assert _hash(analyze) == _hash(analyze)


def test_changes_with_each_input(
    apt_root: testrepo.AptRoot, analyze: Analyze, tmp_path: Path
) -> None:
    root = apt_root

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

    def pin() -> None:
        (root.preferences_dir / "aegis").write_text(
            "Package: aegis-base\nPin: version 1.0\nPin-Priority: 1001\n"
        )

    def apt_config() -> None:
        with root.apt_config.open("a") as f:
            f.write('APT::Install-Recommends "false";\n')

    steps: list[Callable[[], None]] = [status, release, source, keyring, pin, apt_config]
    seen = {_hash(analyze)}
    for step in steps:
        step()
        h = _hash(analyze)
        assert h not in seen, step.__name__
        seen.add(h)
        assert _hash(analyze) == h, step.__name__  # and stable again afterwards
