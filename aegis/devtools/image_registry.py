"""A real image registry on loopback, filled from tiny OCI layouts (tests and the bench).

Debian's ``docker-registry`` (the CNCF distribution registry, in bookworm and trixie) serves
plain HTTP on ``127.0.0.1``; images are OCI layouts written here (one gzip layer, a config,
a manifest, optionally an index) and copied in with ``skopeo copy``, the way an operator's
CI would push them. A signature is what ``cosign sign --key`` attaches: a manifest under the
tag ``sha256-<hex>.sig`` of the same repository whose layer is the simple-signing payload,
signed here with a real ECDSA P-256 key (:func:`cosign_sign`).
"""

from __future__ import annotations

import base64
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
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

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
    """Put a manifest under cosign's tag for ``digest`` (a signature present, not verifiable)."""
    layout = work / ("sig-" + digest.split(":", 1)[1][:12])
    build_layout(layout, payload=b"signature for " + digest.encode())
    push(layout, f"{repository}:{digest.replace(':', '-')}.sig")


def new_key(path: Path) -> Any:
    """An ECDSA P-256 key pair as ``cosign generate-key-pair`` makes; returns the private key.

    The public key is written to ``path`` as PEM (mode 0644).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    path.chmod(0o644)
    return key


def simple_signing(digest: str, repository: str) -> bytes:
    """The cosign payload: the manifest digest and the repository it signs, compact JSON."""
    doc = {"critical": {"identity": {"docker-reference": repository},
                        "image": {"docker-manifest-digest": digest},
                        "type": "cosign container image signature"}, "optional": None}  # fmt: skip
    return json.dumps(doc, separators=(",", ":")).encode()


def cosign_sign(
    work: Path, repository: str, digest: str, key: Any, *, payload: bytes | None = None,
    signed: bytes | None = None,
) -> None:  # fmt: skip
    """Attach what ``cosign sign --key`` attaches for ``digest``, with ``skopeo copy``.

    Under tag ``sha256-<hex>.sig``, an OCI manifest whose one layer is the simple-signing
    ``payload``
    with its ECDSA P-256/SHA-256 signature (of ``signed``, default the payload itself) in
    the annotation ``dev.cosignproject.cosign/signature``.
    """
    body = payload if payload is not None else simple_signing(digest, repository)
    signature = key.sign(body if signed is None else signed, ec.ECDSA(hashes.SHA256()))
    layout = work / f"cosign-{digest.split(':', 1)[1][:12]}-{time.monotonic_ns()}"
    layout.mkdir(parents=True)
    config = {"architecture": "", "config": {}, "created": "0001-01-01T00:00:00Z", "os": "",
              "rootfs": {"type": "layers", "diff_ids": [_blob(layout, body)]}}  # fmt: skip
    cb = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _blob(layout, cb), "size": len(cb)},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "digest": _blob(layout, body), "size": len(body),
                    "annotations": {"dev.cosignproject.cosign/signature":
                                    base64.b64encode(signature).decode()}}],
    }  # fmt: skip
    mb = json.dumps(manifest, sort_keys=True).encode()
    entry = {"mediaType": OCI_MANIFEST, "digest": _blob(layout, mb), "size": len(mb),
             "annotations": {"org.opencontainers.image.ref.name": "t"}}  # fmt: skip
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
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
