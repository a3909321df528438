"""cosign signatures of an image, verified against the keys policy trusts for its registry.

cosign's convention (``cosign sign --key``): the signature of manifest ``sha256:<hex>`` is an
OCI manifest under the tag ``sha256-<hex>.sig`` of the same repository; each layer is a
"simple signing" JSON payload (``critical.image.docker-manifest-digest``,
``critical.identity.docker-reference``, ``critical.type``) whose annotation
``dev.cosignproject.cosign/signature`` is the base64 signature of the payload's bytes.

Status (``ImageEvidence.signature``, docs/ecosystems.md):

- ``verified``: a layer's payload names the planned digest and this repository, and its
  signature verifies with a trusted key (``signature_key`` records which);
- ``invalid``: a signature manifest exists and the registry's policy entry trusts keys, but
  no layer verifies (another digest, another repository, a tampered payload, an untrusted
  key, a malformed artifact): denied (``image.signature-invalid``);
- ``unverified-no-key``: a signature manifest exists, policy trusts no key for the registry;
- ``absent``: the registry has no ``sha256-<hex>.sig`` tag;
- ``unknown``: the registry did not answer for it (fails closed like ``absent``).

Keys are PEM public keys (cosign's ``cosign.pub``): ECDSA P-256 verified with SHA-256, what
``cosign generate-key-pair`` makes. The verifier is the ``cryptography`` library (OpenSSL
underneath): a real ECDSA verification in process, no subprocess per signature, and it
parses the DER SubjectPublicKeyInfo itself. Key files are read strictly: an absolute path,
a regular file (no symlink), owned by root, not group- or world-writable, at most 16 KiB.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from aegis.ecosystems.image.names import ImageRef, parse_reference
from aegis.errors import InputError

MAX_KEY = 16 * 1024
MAX_PAYLOAD = 64 * 1024
MAX_LAYERS = 32
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_TYPE = "cosign container image signature"


@dataclass(frozen=True)
class TrustedKey:
    """One public key policy trusts: its id is ``sha256:`` of its DER SubjectPublicKeyInfo."""

    path: str
    key_id: str
    key: Any
    """A ``cryptography`` EllipticCurvePublicKey on P-256."""


def load_key(path: str) -> TrustedKey:
    """Read one trusted key file strictly (module docstring).

    Raises:
        InputError: not a root-owned regular file holding one ECDSA P-256 public key.
    """
    if not path.startswith("/"):
        raise InputError(f"trusted image key {path[:200]!r}: not an absolute path")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise InputError(f"trusted image key {path}: {e.strerror}") from e
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"trusted image key {path}: not a regular file")
        if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise InputError(
                f"trusted image key {path}: must be owned by root and writable by root only"
            )
        data = f.read(MAX_KEY + 1)
    if len(data) > MAX_KEY:
        raise InputError(f"trusted image key {path}: larger than {MAX_KEY} bytes")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise InputError(f"trusted image key {path}: not a PEM public key ({e})") from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError(f"trusted image key {path}: not an ECDSA P-256 key (cosign's default)")
    return TrustedKey(path, key_id(key), key)


def key_id(key: Any) -> str:
    """``sha256:<hex>`` of the key's DER SubjectPublicKeyInfo.

    ``openssl pkey -pubin -in KEY.pub -outform DER | sha256sum`` prints the same hex.
    """
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def load_keys(paths: tuple[str, ...]) -> tuple[TrustedKey, ...]:
    """Every key of one policy entry (any unreadable key fails the plan: fail closed).

    Raises:
        InputError: one of them is unusable.
    """
    return tuple(load_key(p) for p in paths)


def signature_layers(manifest: bytes) -> list[tuple[str, int, str]]:
    """``(digest, size, base64 signature)`` of each simple-signing layer of a .sig manifest.

    Raises:
        ValueError: not a manifest of cosign's shape.
    """
    doc = json.loads(manifest)
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list) or not layers or len(layers) > MAX_LAYERS:
        raise ValueError("no signature layers")
    out: list[tuple[str, int, str]] = []
    for layer in layers:
        if not isinstance(layer, dict):
            raise ValueError("a layer is not an object")
        notes = layer.get("annotations")
        sig = notes.get(SIGNATURE_ANNOTATION) if isinstance(notes, dict) else None
        digest, size = layer.get("digest"), layer.get("size")
        if layer.get("mediaType") != SIMPLE_SIGNING or not isinstance(sig, str):
            continue  # an attestation or another artifact beside the signatures
        if not isinstance(digest, str) or not isinstance(size, int) or not 0 < size <= MAX_PAYLOAD:
            raise ValueError("a signature layer without a digest or with a bad size")
        out.append((digest, size, sig))
    if not out:
        raise ValueError("no simple-signing layer with a signature annotation")
    return out


def check_payload(payload: bytes, ref: ImageRef, digest: str) -> str:
    """Why a simple-signing payload does not bind ``digest`` in ``ref``'s repository, or ""."""
    try:
        doc = json.loads(payload)
        critical = doc["critical"]
        named = critical["image"]["docker-manifest-digest"]
        identity = critical["identity"]["docker-reference"]
        kind = critical["type"]
    except (ValueError, KeyError, TypeError):
        return "the payload is not a simple-signing document"
    if kind != COSIGN_TYPE:
        return f"payload type {str(kind)[:80]!r}"
    if named != digest:
        return f"the payload signs {str(named)[:80]}, not {digest}"
    try:
        repository = parse_reference(str(identity)).repository
    except InputError:
        repository = ""
    if repository != ref.repository:
        return f"the payload names {str(identity)[:120]!r}, not {ref.repository}"
    return ""


def verify(payload: bytes, signature_b64: str, keys: tuple[TrustedKey, ...]) -> TrustedKey | None:
    """The trusted key whose ECDSA P-256/SHA-256 signature over ``payload`` this is."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    for k in keys:
        try:
            k.key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return k
    return None
