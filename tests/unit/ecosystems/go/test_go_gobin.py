"""The managed GOBIN: root's alone, or aegisd refuses to build into it (the attack it stops)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aegis.ecosystems.go import _safe_dir
from aegis.errors import EnvironmentFailure
from tests.conftest import require_root


def test_a_fresh_gobin_is_created_root_owned_and_reachable(tmp_path: Path) -> None:
    require_root("checks ownership as root")
    old = os.umask(0o077)  # aegisd's umask must not make the binaries unreachable
    try:
        _safe_dir(tmp_path / "store/go/bin", 0o755, levels=2)
    finally:
        os.umask(old)
    for p in (tmp_path / "store/go", tmp_path / "store/go/bin"):
        assert p.stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("how", ["agent-owns-go", "group-writable-bin", "bin-is-a-link"])
def test_a_gobin_an_agent_could_swap_is_refused(tmp_path: Path, how: str) -> None:
    require_root("creates directories owned by another user")
    go = tmp_path / "store/go"
    go.mkdir(parents=True, mode=0o755)
    if how == "agent-owns-go":  # group aegis may write the store: it made go/ first
        os.chown(go, 65534, 65534)
        (go / "bin").mkdir(mode=0o755)
    elif how == "group-writable-bin":
        (go / "bin").mkdir()
        (go / "bin").chmod(0o775)
    else:
        (tmp_path / "elsewhere").mkdir()
        (go / "bin").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(EnvironmentFailure):
        _safe_dir(go / "bin", 0o755, levels=2)
