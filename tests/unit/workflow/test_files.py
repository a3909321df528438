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


def test_a_store_subdirectory_a_member_replaced_by_a_link_is_refused(tmp_path: Path) -> None:
    """docs/design.md "Who may do what": root never writes into a group-writable directory
    through a path it did not create. ``results/`` swapped for a link to /etc-like
    directory: nothing lands there."""
    import pytest

    from aegis.errors import EnvironmentFailure

    store = tmp_path / "var-lib-aegis"
    store.mkdir()
    store.chmod(0o2770)  # as on a host: group-writable, no sticky bit
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (store / "results").symlink_to(elsewhere)
    with pytest.raises(EnvironmentFailure, match="symbolic link in a group-writable directory"):
        write_atomic(store / "results" / "x.result.json", b"{}")
    assert list(elsewhere.iterdir()) == []


def test_a_relocated_store_behind_a_root_only_link_is_followed(tmp_path: Path) -> None:
    """An operator's own link (in a directory only they can write) keeps working."""
    real = tmp_path / "srv-aegis"
    real.mkdir()
    (tmp_path / "state").symlink_to(real)
    write_atomic(tmp_path / "state" / "vulndb.json", b"{}")
    assert (real / "vulndb.json").read_bytes() == b"{}"
