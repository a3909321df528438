"""A real registry on loopback (Debian's docker-registry) filled by skopeo from OCI layouts."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aegis.devtools import image_registry as ir
from aegis.ecosystems.image import runroot_for

TOOLS = ("skopeo", "podman", "docker-registry")
HAVE_TOOLS = all(shutil.which(t) for t in TOOLS)
needs_image_tools = pytest.mark.skipif(
    not HAVE_TOOLS and os.environ.get("CI") != "true",
    reason="skopeo, podman and docker-registry are not installed (scripts/test installs them)",
)


@dataclass
class ImageWorld:
    host: str
    """``127.0.0.1:PORT``."""
    work: Path
    digests: dict[str, str] = field(default_factory=dict)
    key: Any = None
    """The trusted ECDSA P-256 private key (its public PEM at :attr:`key_path`)."""

    @property
    def key_path(self) -> Path:
        return self.work / "keys/trusted.pub"

    def signing(self, extra: str = "") -> str:
        """The ``[[registries]]`` lines trusting :attr:`key` and requiring a signature."""
        return f'trusted_keys = ["{self.key_path}"]\nrequire_signature = true\n{extra}'

    @property
    def url(self) -> str:
        return f"http://{self.host}/"

    def ref(self, repo: str, pinned: bool = True) -> str:
        out = f"{self.host}/team/{repo}:v1"
        return f"{out}@{self.digests[repo]}" if pinned else out

    def publish(self, repo: str, *, user: str = "1000", index: bool = False,
                signed: bool = False, payload: bytes = b"hello\n") -> str:  # fmt: skip
        layout = self.work / f"{repo}-{len(self.digests)}-{len(payload)}"
        digest = ir.build_layout(layout, user=user, index=index, payload=payload)
        ir.push(layout, f"{self.host}/team/{repo}:v1")
        if signed:
            ir.cosign_sign(self.work, f"{self.host}/team/{repo}", digest, self.key)
        self.digests[repo] = digest
        return digest


def serve(root: Path) -> Iterator[ImageWorld]:
    with ir.serve(root / "registry") as host:
        world = ImageWorld(host, root)
        # Root-owned when the tests run as root (CI): trusted keys must be (cosign.py).
        world.key = ir.new_key(world.key_path)
        world.publish("app", signed=True)
        world.publish("rootimg", user="")
        world.publish("multi", index=True, signed=True)
        yield world


def policy_with_registry(url: str, extra: str = "") -> str:
    default = (Path(__file__).resolve().parents[4] / "aegis/policy/default_policy.toml").read_text()
    return (
        default + f'\n[[registries]]\nname = "local"\necosystem = "image"\nurl = "{url}"\n{extra}'
    )


def new_store(path: Path) -> Path:
    """An empty podman graph root whose driver is vfs (podman keeps the driver it finds).

    Its run root under /run/aegis-podman: remove it with :func:`drop_store`.
    """
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["podman", "--root", str(path), "--runroot", runroot_for(str(path)), "--storage-driver",
         "vfs", "images"], check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return path


def drop_store(path: Path) -> None:
    shutil.rmtree(runroot_for(str(path)), ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
