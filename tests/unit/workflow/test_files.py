"""Atomic writes never follow a planted symlink and leave no temp files."""

from __future__ import annotations

from pathlib import Path

from aegis.workflow.files import write_atomic


def test_write_atomic_replaces_a_planted_symlink_not_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "plans" / "p-1.json"
    out.parent.mkdir()
    out.symlink_to(victim)
    assert write_atomic(out, b"{}") == out
    assert not out.is_symlink()
    assert out.read_bytes() == b"{}"
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in out.parent.iterdir()) == ["p-1.json"]


def test_write_atomic_creates_the_directory(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "c.json"
    write_atomic(out, b"x")
    assert out.read_bytes() == b"x"
