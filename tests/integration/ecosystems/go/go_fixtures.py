"""A ``file://`` GOPROXY of fixture modules (aegis.devtools.go_proxy), a module, a policy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from aegis.devtools.go_proxy import GoProxy, build_proxy

HAVE_GO = shutil.which("go") is not None and os.path.exists("/usr/bin/go")
needs_go = pytest.mark.skipif(
    not HAVE_GO and os.environ.get("CI") != "true",
    reason="go is not installed (scripts/test installs golang-go)",
)

__all__ = ["GoProxy", "build_proxy", "needs_go", "new_module", "policy_with_proxy"]


def new_module(path: Path, extra: str = "") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "go.mod").write_text(f"module example.com/app\n\ngo 1.18\n{extra}")
    return path


def policy_with_proxy(url: str, *, sumdb_decided: bool = True) -> str:
    """The default policy, the proxy approved; the mirror's checksum-database decision made.

    ``go.sumdb-off`` allowed is the operator's recorded decision for a local mirror (the
    checksum database cannot vouch for modules it never saw).
    """
    default = (Path(__file__).resolve().parents[4] / "aegis/policy/default_policy.toml").read_text()
    text = default + f'\n[[registries]]\nname = "local-go"\necosystem = "go"\nurl = "{url}"\n'
    if sumdb_decided:
        text += '\n[rules."go.sumdb-off"]\neffect = "allow"\n'
    return text
