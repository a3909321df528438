"""The helper verifies Ed25519 with PyNaCl only: RFC 8032 vectors, the malleability,
small-order and non-canonical cases Wycheproof lists, and a clear refusal (exit 7)
when PyNaCl is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from nacl.signing import SigningKey

REPO = Path(__file__).resolve().parents[3]
HELPER_SRC = REPO / "tools/policy-helper/src"
if str(HELPER_SRC) not in sys.path:
    sys.path.insert(0, str(HELPER_SRC))

from aegis_policy_helper.ed25519 import backend, verify  # noqa: E402

ORDER = 2**252 + 27742317777372353535851937790883648493
# RFC 8032 section 7.1, TEST 1 and TEST 2: (secret, public, message, signature).
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
        "39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f"
        "3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(secret: str, public: str, message: str, signature: str) -> None:
    pub, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert bytes(SigningKey(bytes.fromhex(secret)).verify_key) == pub
    assert backend() == "pynacl"
    assert verify(pub, msg, sig)
    assert not verify(pub, msg + b"x", sig)
    for i in (0, 31, 32, 63):  # a flipped bit in R or in S
        bad = bytearray(sig)
        bad[i] ^= 1
        assert not verify(pub, msg, bytes(bad))


def test_malleated_and_malformed_signatures_are_refused() -> None:
    pub, msg, sig = (bytes.fromhex(v) for v in RFC8032[0][1:])
    # Wycheproof "s >= L": the same signature with S + L verifies under a lax check.
    s = int.from_bytes(sig[32:], "little") + ORDER
    assert not verify(pub, msg, sig[:32] + s.to_bytes(32, "little"))
    assert not verify(pub[:31], msg, sig)
    assert not verify(pub, msg, sig[:63])
    assert not verify(b"\xff" * 32, msg, sig)  # not a point


IDENTITY = (1).to_bytes(32, "little")
"""The neutral point: small order (order 1)."""
NON_CANONICAL_ZERO = (2**255 - 19).to_bytes(32, "little")
"""y = p, a non-canonical encoding of y = 0 (a point of order 4)."""


@pytest.mark.parametrize("public", [IDENTITY, NON_CANONICAL_ZERO], ids=["identity", "y=p"])
def test_small_order_and_non_canonical_keys_verify_nothing(public: bytes) -> None:
    """With A of small order, R = identity and S = 0 'verify' any message under the bare
    cofactorless equation ([S]B = R + [k]A with [k]A = identity for many k)."""
    forged = IDENTITY + bytes(32)
    for message in (b"", b"approve everything", b"\x00" * 64):
        assert not verify(public, message, forged)


def test_without_pynacl_the_helper_refuses_with_exit_7(tmp_path: Path) -> None:
    """A Python without PyNaCl verifies nothing: exit 7 and the package to install."""
    blocker = tmp_path / "no-nacl" / "nacl"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('PyNaCl hidden by the test')\n")
    ep = tmp_path / "ep.json"
    ep.write_text("{}\n")
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aegis_policy_helper",
            "report",
            "--execution-plan",
            str(ep),
            "--execution-public-key-hex",
            "00" * 32,
            "--approval-public-key-hex",
            "11" * 32,
            "--out",
            str(out),
            "--skip-dspy",
        ],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{blocker.parent}:{HELPER_SRC}"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 7, (proc.stdout, proc.stderr)
    assert "python3-nacl" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
