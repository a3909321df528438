"""Ed25519 keys (PyNaCl) and signatures over canonical JSON.

Secret key files are owner-only (0600) JSON documents, optionally wrapped with a
passphrase (``nacl.pwhash`` argon2id + SecretBox). Secret material never goes on
argv and is never logged; passphrases come from a file descriptor, a file or the
``AEGIS_KEY_PASSPHRASE`` environment variable, never from an option value.

Signing and verifying (Ed25519 over canonical JSON) live in :mod:`aegis.ed25519`, below
every stage; this module re-exports them for the signer's callers.

Example:
    >>> path, pub = write_keypair(Path("/tmp/k"), "signer")
    >>> key = load_signing_key(path)
    >>> sig = sign_canonical({"a": 1}, key)
    >>> verify_canonical({"a": 1}, sig, pub)
    True
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nacl import exceptions, pwhash, secret, utils
from nacl.signing import SigningKey

from aegis.canonical import canonical_bytes, loads_strict
from aegis.ed25519 import (
    PUBLIC_KEY_BYTES,
    public_hex,
    sign_canonical,
    verify_canonical,
    verify_signed_bytes,
)
from aegis.errors import EnvironmentFailure, InputError, TrustError

if TYPE_CHECKING:
    from nacl.signing import SigningKey

__all__ = [  # the signing half of aegis.ed25519 too, for the signer's many callers
    "KEY_SCHEMA",
    "MAX_KEY_FILE_BYTES",
    "PUBLIC_KEY_BYTES",
    "Role",
    "key_role",
    "load_signing_key",
    "passphrase_from_env",
    "public_hex",
    "read_key_file",
    "sign_canonical",
    "verify_canonical",
    "verify_signed_bytes",
    "write_keypair",
]

KEY_SCHEMA = "aegis.key/1"
MAX_KEY_FILE_BYTES = 64 * 1024


class Role(StrEnum):
    """What a key is for; an approval by a signer key does not count."""

    SIGNER = "signer"
    APPROVER = "approver"
    REVIEW = "review"
    AUDIT = "audit"
    OPERATOR = "operator"


def write_keypair(
    out_dir: Path, role: str, passphrase: bytes | None = None, *, name: str | None = None
) -> tuple[Path, str]:
    """Generate a key pair; write the secret file 0600 and the public ``.pub`` file.

    Returns:
        (secret key path, public key hex)

    Raises:
        InputError: unknown role, or the target file already exists.
        EnvironmentFailure: the directory or a file in it cannot be written.
    """
    role_value = Role(role).value if role in Role._value2member_map_ else None
    if role_value is None:
        raise InputError(f"unknown key role {role!r}; choose one of {[r.value for r in Role]}")
    key = SigningKey.generate()
    pub = public_hex(key)
    seed = bytes(key)
    body: dict[str, Any] = {"schema_version": KEY_SCHEMA, "role": role_value, "public_key_hex": pub}
    if passphrase:
        salt = utils.random(pwhash.argon2id.SALTBYTES)
        ops, mem = pwhash.argon2id.OPSLIMIT_MODERATE, pwhash.argon2id.MEMLIMIT_MODERATE
        wrap = pwhash.argon2id.kdf(secret.SecretBox.KEY_SIZE, passphrase, salt, ops, mem)
        box = secret.SecretBox(wrap)
        body["secret"] = {
            "kind": "argon2id-secretbox",
            "salt_hex": salt.hex(),
            "opslimit": ops,
            "memlimit": mem,
            "ciphertext_hex": bytes(box.encrypt(seed)).hex(),
        }
    else:
        body["secret"] = {"kind": "raw", "seed_hex": seed.hex()}
    path = out_dir / f"{name or role_value}.key"
    try:
        # A directory made here holds secret keys: owner only (an existing one, such as
        # /etc/aegis/keys for aegis-reviewd's key, keeps its mode).
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: never overwrite a key; 0600 from the first byte.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise InputError(f"{path} already exists; refusing to overwrite a key") from e
    except OSError as e:
        raise EnvironmentFailure(f"cannot write a key in {out_dir}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(canonical_bytes(body) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        (out_dir / f"{name or role_value}.pub").write_text(pub + "\n", encoding="ascii")
    except OSError as e:
        path.unlink(missing_ok=True)  # nothing half-written: no secret without its .pub
        raise EnvironmentFailure(f"cannot write a key in {out_dir}: {e.strerror}") from e
    return path, pub


def read_key_file(path: Path) -> dict[str, Any]:
    """Read and strictly parse a secret key file (without unwrapping it)."""
    try:
        st = path.stat()
        if st.st_mode & 0o077:
            raise TrustError(f"secret key {path} is readable by others; chmod 600 it")
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise InputError(f"key file {path} does not exist") from e
    except PermissionError as e:
        raise TrustError(f"cannot read key file {path}: permission denied") from e
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise InputError(f"key file {path} is too large")
    doc = loads_strict(raw)
    if not isinstance(doc, dict) or doc.get("schema_version") != KEY_SCHEMA:
        raise InputError(f"{path} is not an Aegis key file")
    return doc


def load_signing_key(path: Path, passphrase: bytes | None = None) -> SigningKey:
    """Load a secret key file, unwrapping it with ``passphrase`` when it is wrapped.

    Raises:
        InputError: malformed file.
        TrustError: wrong passphrase, loose permissions, or public key mismatch.
    """
    doc = read_key_file(path)
    sec = doc.get("secret")
    if not isinstance(sec, dict):
        raise InputError(f"{path}: missing secret")
    try:
        if sec.get("kind") == "raw":
            seed = bytes.fromhex(str(sec["seed_hex"]))
        elif sec.get("kind") == "argon2id-secretbox":
            if not passphrase:
                raise TrustError(f"{path} is passphrase-protected; set AEGIS_KEY_PASSPHRASE")
            wrap = pwhash.argon2id.kdf(
                secret.SecretBox.KEY_SIZE,
                passphrase,
                bytes.fromhex(str(sec["salt_hex"])),
                int(sec["opslimit"]),
                int(sec["memlimit"]),
            )
            seed = secret.SecretBox(wrap).decrypt(bytes.fromhex(str(sec["ciphertext_hex"])))
        else:
            raise InputError(f"{path}: unknown secret kind")
        key = SigningKey(seed)
    except exceptions.CryptoError as e:
        raise TrustError(f"cannot unwrap {path}: wrong passphrase") from e
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(f"{path}: malformed secret key") from e
    if public_hex(key) != doc.get("public_key_hex"):
        raise TrustError(f"{path}: secret does not match its recorded public key")
    return key


def key_role(path: Path) -> str:
    """Return the role recorded in a key file."""
    return str(read_key_file(path).get("role", ""))


def passphrase_from_env(env: dict[str, str] | None = None) -> bytes | None:
    """Return the passphrase from ``AEGIS_KEY_PASSPHRASE`` (never from argv)."""
    value = (os.environ if env is None else env).get("AEGIS_KEY_PASSPHRASE")
    return value.encode("utf-8") if value else None
