"""Ed25519 verification for the helper: PyNaCl (libsodium) only.

The contract runs the helper as ``PYTHONPATH=tools/policy-helper/src python3 -m
aegis_policy_helper``: the system Python, which has PyNaCl through Debian's
``python3-nacl`` (installed by ``packaging/install-native.sh`` and ``scripts/test``).
There is deliberately no hand-written fallback: signature checks are libsodium's or
none, and without PyNaCl the helper refuses to verify (:class:`MissingVerifier`).

Example:
    >>> verify(public_key, message, signature)
    True
"""

from __future__ import annotations

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
"""R (32 bytes) followed by S (32 bytes)."""
INSTALL_HINT = "install PyNaCl: 'apt install python3-nacl' (Debian) or 'pip install pynacl'"


class MissingVerifier(Exception):
    """PyNaCl is not importable: nothing can be verified (the helper exits 7)."""


def backend() -> str:
    """The implementation :func:`verify` uses (recorded in the report).

    Raises:
        MissingVerifier: PyNaCl is not installed.
    """
    try:
        import nacl.signing  # noqa: F401
    except ImportError as e:
        raise MissingVerifier(f"Ed25519 verification needs PyNaCl; {INSTALL_HINT}") from e
    return "pynacl"


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``.

    libsodium refuses a non-canonical S (>= the group order), small-order and
    non-canonical public keys and R values.

    Raises:
        MissingVerifier: PyNaCl is not installed.
    """
    backend()
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    from nacl.exceptions import BadSignatureError, CryptoError
    from nacl.signing import VerifyKey

    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        return False
    return True
