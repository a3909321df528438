"""Ed25519 signatures over canonical JSON, shared by every stage that signs or verifies.

Every signature in Aegis is over :func:`aegis.canonical.canonical_bytes` of a body dict,
so key order and whitespace in a stored document never matter. Key files (writing,
loading, passphrases, roles) stay in :mod:`aegis.sign.keys`.

Example:
    >>> sig = sign_canonical({"a": 1}, key)
    >>> verify_canonical({"a": 1}, sig, public_hex(key))
    True
"""

from __future__ import annotations

import functools
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from aegis.canonical import canonical_bytes
from aegis.errors import InputError

PUBLIC_KEY_BYTES = 32
"""An Ed25519 public key."""


def public_hex(key: SigningKey) -> str:
    """Return the hex public key of a signing key."""
    return bytes(key.verify_key).hex()


def _check_pub_hex(value: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError as e:
        raise InputError("public key must be 64 hex characters") from e
    if len(raw) != PUBLIC_KEY_BYTES:
        raise InputError("public key must be 64 hex characters")
    return raw


def sign_canonical(body: Any, key: SigningKey) -> str:
    """Sign the canonical bytes of ``body``; return the hex signature."""
    return bytes(key.sign(canonical_bytes(body)).signature).hex()


def verify_canonical(body: Any, signature_hex: str, public_key_hex: str) -> bool:
    """Return True when ``signature_hex`` is a valid signature of ``body`` by the key.

    Never raises for a bad signature or malformed hex: the answer is simply False.
    """
    try:
        vk = VerifyKey(_check_pub_hex(public_key_hex))
        vk.verify(canonical_bytes(body), bytes.fromhex(signature_hex))
    except (BadSignatureError, ValueError, InputError, TypeError):
        return False
    return True


def verify_signed_bytes(data: bytes, signature_hex: str, public_key_hex: str) -> bool:
    """:func:`verify_canonical` for a body already encoded (e.g. by ``canonical_of``)."""
    try:
        _verify_key(public_key_hex).verify(data, bytes.fromhex(signature_hex))
    except (BadSignatureError, ValueError, InputError, TypeError):
        return False
    return True


@functools.lru_cache(maxsize=64)
def _verify_key(public_key_hex: str) -> Any:
    """The verifying key object of a public key (a few trusted keys verify everything)."""
    return VerifyKey(_check_pub_hex(public_key_hex))
