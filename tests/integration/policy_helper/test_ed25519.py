"""The helper's Ed25519 fallback agrees with PyNaCl, and the helper runs on the system
python3 (no PyNaCl, no venv) exactly as the contract writes it."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

REPO = Path(__file__).resolve().parents[3]
HELPER_SRC = REPO / "tools/policy-helper/src"
if str(HELPER_SRC) not in sys.path:
    sys.path.insert(0, str(HELPER_SRC))

from aegis_policy_helper.ed25519 import verify, verify_pure  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=200))
def test_pure_python_verification_agrees_with_pynacl(seed: bytes, message: bytes) -> None:
    key = SigningKey(seed)
    pub, sig = bytes(key.verify_key), key.sign(message).signature
    assert verify_pure(pub, message, sig)
    assert verify(pub, message, sig)
    for i in (0, 31, 32, 63):  # a flipped bit in R or in S
        bad = bytearray(sig)
        bad[i] ^= 1
        assert not verify_pure(pub, message, bytes(bad))
    assert not verify_pure(pub, message + b"x", sig)
    other = bytes(SigningKey(bytes(reversed(seed))).verify_key)
    assert verify_pure(other, message, sig) is (other == pub)


def test_malformed_keys_and_signatures_do_not_verify() -> None:
    key = SigningKey(b"\x01" * 32)
    pub, sig = bytes(key.verify_key), key.sign(b"m").signature
    assert not verify_pure(pub[:31], b"m", sig)
    assert not verify_pure(pub, b"m", sig[:63])
    # S at or above the group order (a malleated signature) is refused, as libsodium does.
    order = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(sig[32:], "little") + order
    assert not verify_pure(pub, b"m", sig[:32] + s.to_bytes(32, "little"))
    assert not verify_pure(b"\xff" * 32, b"m", sig)  # not a point
