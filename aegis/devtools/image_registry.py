"""A real image registry on loopback, filled from tiny OCI layouts (tests and the bench).

Debian's ``docker-registry`` (the CNCF distribution registry, in bookworm and trixie) serves
plain HTTP on ``127.0.0.1``; images are OCI layouts written here (one gzip layer, a config,
a manifest, optionally an index) and copied in with ``skopeo copy``, the way an operator's
CI would push them. A "signature" is what cosign attaches: another manifest under the tag
``sha256-<hex>.sig`` of the same repository (presence only; nothing here signs).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import socket
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REGISTRY = "/usr/bin/docker-registry"
SKOPEO = "/usr/bin/skopeo"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _blob(root: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs/sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs/sha256" / digest).write_bytes(data)
    return "sha256:" + digest


def _manifest(root: Path, user: str, arch: str, payload: bytes) -> tuple[str, int]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(payload), 0
        tf.addfile(info, io.BytesIO(payload))
    raw = buf.getvalue()
    layer = gzip.compress(raw, mtime=0)
    config = {
        "architecture": arch, "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"User": user, "Entrypoint": ["/hello"], "Labels": {"org.example.app": "t"}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
    }  # fmt: skip
    cb = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _blob(root, cb), "size": len(cb)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _blob(root, layer), "size": len(layer)}],
    }  # fmt: skip
    mb = json.dumps(manifest, sort_keys=True).encode()
    return _blob(root, mb), len(mb)


def build_layout(
    root: Path, *, user: str = "1000", arch: str = "amd64", payload: bytes = b"hello\n",
    index: bool = False,
) -> str:  # fmt: skip
    """Write an OCI layout at ``root`` with one image tagged ``t``; return its top digest.

    ``index`` wraps it (plus an arm64 sibling) in an image index, as multi-arch images are.
    """
    root.mkdir(parents=True, exist_ok=True)
    digest, size = _manifest(root, user, arch, payload)
    entry = {"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
             "platform": {"os": "linux", "architecture": arch}}  # fmt: skip
    if index:
        other, osize = _manifest(root, user, "arm64", payload + b"arm64\n")
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry, {
            "mediaType": OCI_MANIFEST, "digest": other, "size": osize,
            "platform": {"os": "linux", "architecture": "arm64"}}]}  # fmt: skip
        ib = json.dumps(doc, sort_keys=True).encode()
        digest = _blob(root, ib)
        entry = {"mediaType": OCI_INDEX, "digest": digest, "size": len(ib)}
    entry["annotations"] = {"org.opencontainers.image.ref.name": "t"}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return digest


def push(layout: Path, dest: str) -> None:
    """``skopeo copy`` the layout's image ``t`` to ``dest`` (``HOST:PORT/REPO:TAG``), exactly."""
    subprocess.run(
        [SKOPEO, "copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
         f"oci:{layout}:t", f"docker://{dest}"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def attach_signature(work: Path, repository: str, digest: str) -> None:
    """Put a manifest under cosign's tag for ``digest`` (what a signature's presence is)."""
    layout = work / ("sig-" + digest.split(":", 1)[1][:12])
    build_layout(layout, payload=b"signature for " + digest.encode())
    push(layout, f"{repository}:{digest.replace(':', '-')}.sig")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    """Run ``docker-registry`` over ``root`` on loopback; yield ``127.0.0.1:PORT``."""
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    conf = root / "config.yml"
    conf.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen([REGISTRY, "serve", str(conf)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                    break
            except OSError:
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
