"""A real PEP 503 index on loopback with hostile and clean fixture packages, and a real venv."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aegis.devtools.pypi_index import PypiIndex
from tests.integration.ecosystems.npm.npm_fixtures import recent


@dataclass
class PipWorld:
    index: PypiIndex
    url: str
    venv: Path


def build_index(root: Path) -> PypiIndex:
    idx = PypiIndex(root)
    idx.add_wheel("demo-lib", "1.0")
    idx.add_wheel("demo-app", "2.0", requires=("demo-lib>=1.0",), scripts={"demo-app": "x:m"})
    # A transitive .pth payload: code at every interpreter start, two levels down.
    idx.add_wheel("evil-helper", "0.1", pth={"evil_helper.pth": "import os\n"})
    idx.add_wheel("friendly-tool", "1.0", requires=("evil-helper",))
    idx.add_wheel("shadow-pkg", "1.0", scripts={"sudo": "shadow_pkg:main"})
    idx.add_wheel("fast-lib", "1.0", native=True)
    idx.add_wheel("gone-lib", "1.0", yanked=True)
    idx.add_wheel("nohash-lib", "1.0", publish_hash=False)
    idx.add_wheel("tampered-lib", "1.0", wrong_hash=True)  # the bytes are not what was listed
    idx.add_wheel("reqeusts", "1.0")  # a lookalike of requests
    idx.add_sdist("source-only", "1.0")
    # PEP 700 upload times (a JSON page for these projects only): an hour old, long ago.
    idx.add_wheel("fresh-lib", "1.0", uploaded=recent())
    idx.add_wheel("aged-lib", "1.0", uploaded="2020-01-01T00:00:00.000000Z")
    return idx


def make_venv(path: Path) -> Path:
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(path)], check=True, timeout=120)
    return path


def serve(root: Path, venv: Path) -> Iterator[PipWorld]:
    idx = build_index(root)
    with idx.serve() as url:
        yield PipWorld(idx, url, venv)


def policy_with_index(url: str) -> str:
    default = (Path(__file__).resolve().parents[4] / "aegis/policy/default_policy.toml").read_text()
    return default + f'\n[[registries]]\nname = "local"\necosystem = "pip"\nurl = "{url}"\n'
