"""Ed25519 signature verification that works on a stock system ``python3``.

The contract runs the helper as ``PYTHONPATH=tools/policy-helper/src python3 -m
aegis_policy_helper``: the system Python, which usually has neither PyNaCl nor the
aegis venv. :func:`verify` uses PyNaCl when importable, else ``cryptography`` (Debian's
python3-cryptography), else the RFC 8032 section 5.1.7 check below in pure Python.
Only public data is handled here (keys are trusted public keys, signatures are public),
so the pure-Python path needs no constant-time arithmetic.

Example:
    >>> verify(public_key, message, signature)
    True
"""

from __future__ import annotations

import hashlib

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_I = pow(2, (_P - 1) // 4, _P)  # sqrt(-1)
PUBLIC_KEY_BYTES = 32
"""An encoded point (public key, or R in a signature)."""
SIGNATURE_BYTES = 64
"""R (32 bytes) followed by S (32 bytes)."""

_Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)


def _add(a: _Point, b: _Point) -> _Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = 2 * t1 * t2 * _D % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(k: int, point: _Point) -> _Point:
    out: _Point = (0, 1, 1, 0)
    while k:
        if k & 1:
            out = _add(out, point)
        point = _add(point, point)
        k >>= 1
    return out


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _I % _P
    if (x * x - x2) % _P:
        return None
    if x & 1 != sign:
        x = _P - x
    return x


def _decode(data: bytes) -> _Point | None:
    if len(data) != PUBLIC_KEY_BYTES:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % _P)


def _encode(point: _Point) -> bytes:
    x, y, z, _ = point
    zi = pow(z, _P - 2, _P)
    x, y = x * zi % _P, y * zi % _P
    return (y | ((x & 1) << 255)).to_bytes(PUBLIC_KEY_BYTES, "little")


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
assert _GX is not None
_G: _Point = (_GX, _GY, 1, _GX * _GY % _P)


def verify_pure(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 Ed25519 verification (cofactorless; S must be below the group order)."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    r_bytes, s_bytes = signature[:PUBLIC_KEY_BYTES], signature[PUBLIC_KEY_BYTES:]
    a = _decode(public_key)
    r = _decode(r_bytes)
    if a is None or r is None:
        return False
    s = int.from_bytes(s_bytes, "little")
    if s >= _L:
        return False
    k = int.from_bytes(hashlib.sha512(r_bytes + public_key + message).digest(), "little")
    return _encode(_mul(s, _G)) == _encode(_add(r, _mul(k % _L, a)))


def backend() -> str:
    """Which implementation :func:`verify` uses here (recorded in the report)."""
    try:
        import nacl.signing  # noqa: F401
    except ImportError:
        pass
    else:
        return "pynacl"
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: F401
    except ImportError:
        return "pure-python"
    return "cryptography"


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    which = backend()
    if which == "pynacl":
        from nacl.exceptions import BadSignatureError
        from nacl.signing import VerifyKey

        try:
            VerifyKey(public_key).verify(message, signature)
        except (BadSignatureError, ValueError, TypeError):
            return False
        return True
    if which == "cryptography":
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True
    return verify_pure(public_key, message, signature)
