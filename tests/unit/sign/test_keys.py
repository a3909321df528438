"""Ed25519 key files: permissions, wrapping, and signatures over canonical bytes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aegis.errors import InputError, TrustError
from aegis.sign import keys


def test_sign_and_verify_ignore_key_order(tmp_path: Path) -> None:
    path, pub = keys.write_keypair(tmp_path, "signer")
    key = keys.load_signing_key(path)
    sig = keys.sign_canonical({"a": 1, "b": [1, 2]}, key)
    assert keys.verify_canonical({"b": [1, 2], "a": 1}, sig, pub)
    assert not keys.verify_canonical({"a": 2, "b": [1, 2]}, sig, pub)


def test_secret_file_is_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    path, _ = keys.write_keypair(tmp_path, "approver")
    assert os.stat(path).st_mode & 0o777 == 0o600
    with pytest.raises(InputError, match="already exists"):
        keys.write_keypair(tmp_path, "approver")


def test_loose_permissions_refused(tmp_path: Path) -> None:
    path, _ = keys.write_keypair(tmp_path, "signer")
    path.chmod(0o644)
    with pytest.raises(TrustError, match="readable by others"):
        keys.load_signing_key(path)


def test_passphrase_wrapped(tmp_path: Path) -> None:
    path, pub = keys.write_keypair(tmp_path, "signer", b"correct horse")
    assert b"seed_hex" not in path.read_bytes()
    assert keys.public_hex(keys.load_signing_key(path, b"correct horse")) == pub
    with pytest.raises(TrustError, match="wrong passphrase"):
        keys.load_signing_key(path, b"wrong")
    with pytest.raises(TrustError, match="passphrase-protected"):
        keys.load_signing_key(path)


def test_swapped_public_key_refused(tmp_path: Path) -> None:
    path, _ = keys.write_keypair(tmp_path, "signer")
    _, other = keys.write_keypair(tmp_path, "approver")
    text = path.read_text()
    doc_pub = text.split('"public_key_hex":"')[1][:64]
    path.write_text(text.replace(doc_pub, other))
    with pytest.raises(TrustError, match="does not match"):
        keys.load_signing_key(path)


@pytest.mark.parametrize(
    "bad", ["", "zz", "00" * 31, "00" * 33], ids=["empty", "nonhex", "short", "long"]
)
def test_malformed_public_key_never_verifies(tmp_path: Path, bad: str) -> None:
    path, _ = keys.write_keypair(tmp_path, "signer")
    sig = keys.sign_canonical({"a": 1}, keys.load_signing_key(path))
    assert not keys.verify_canonical({"a": 1}, sig, bad)


def test_unknown_role_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown key role"):
        keys.write_keypair(tmp_path, "root")
