"""The pure audit event format: encoding, decoding, strictness."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegis.audit.checkpoints import checkpoint_body, sign_checkpoint, verify_checkpoint
from aegis.audit.event import (
    GENESIS_HASH,
    LineError,
    LineHashError,
    decode_line,
    encode_event,
    make_body,
)
from aegis.errors import InputError

T = "2026-01-01T00:00:00.000000Z"


def _body(**fields: Any) -> dict[str, Any]:
    return make_body(seq=1, time=T, host="h", kind="note", prev_hash=GENESIS_HASH, fields=fields)


def test_every_body_has_the_same_keys() -> None:
    body = _body()
    assert sorted(body) == sorted(
        [
            "schema_version",
            "seq",
            "time",
            "host",
            "kind",
            "actor",
            "request_id",
            "execution_id",
            "decision",
            "argv",
            "exit_status",
            "output_hashes",
            "prev_hash",
            "details",
        ]
    )
    assert body["actor"] == {"uid": None, "pid": None, "signer": None, "approvers": []}


def test_unknown_fields_go_to_details() -> None:
    assert _body(snapshot="s1", details={"a": 1})["details"] == {"a": 1, "snapshot": "s1"}


def test_line_is_canonical_envelope_and_hash_is_over_body_bytes() -> None:
    line, digest = encode_event(_body())
    assert line.startswith(b'{"event":{"actor":')
    assert line.endswith(b'"}\n')
    body_bytes = line[len(b'{"event":') : -len(b',"event_hash":"') - 64 - 3]
    assert hashlib.sha256(body_bytes).hexdigest() == digest


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda b: b.replace(b'"note"', b'"nope"'), LineHashError),
        (lambda b: b.replace(b'"seq":1', b'"seq":1.0'), LineError),
        (lambda b: b.replace(b'"host":"h"', b'"host":"h","host":"h"'), LineError),
        (lambda b: b[:-10], LineError),
        (lambda b: b.replace(b'"seq":1', b'"seq":0'), LineError),
        (lambda b: b"\xff" + b, LineError),
        (lambda b: b"[]", LineError),
    ],
    ids=["content", "float", "duplicate-key", "cut", "seq-zero", "not-utf8", "not-object"],
)
def test_decode_refuses(mutate: Any, error: type[Exception]) -> None:
    line, _ = encode_event(_body())
    with pytest.raises(error):
        decode_line(mutate(line))


@pytest.mark.parametrize(("before", "after"), [(b" ", b""), (b"", b" "), (b"\t", b"\t")])
def test_decode_refuses_padding_around_the_body_even_with_a_matching_hash(
    before: bytes, after: bytes
) -> None:
    # Bodies are canonical JSON: a padded body hashing to its claim is still not an event.
    line, _ = encode_event(_body())
    body_bytes = line[len(b'{"event":') : -len(b',"event_hash":"') - 64 - 3]
    padded = before + body_bytes + after
    digest = hashlib.sha256(padded).hexdigest().encode()
    forged = b'{"event":' + padded + b',"event_hash":"' + digest + b'"}\n'
    with pytest.raises(LineError, match="malformed JSON"):
        decode_line(forged)


def test_float_fields_are_refused_at_encode() -> None:
    with pytest.raises(InputError):
        encode_event(_body(exit_status=0.5))


def test_checkpoint_signature_binds_every_field() -> None:
    from nacl.signing import SigningKey

    key = SigningKey.generate()
    pub = bytes(key.verify_key).hex()
    doc = sign_checkpoint(
        checkpoint_body(host="h", seq=3, head_hash="a" * 64, time=T, public_key_hex=pub), key
    )
    assert verify_checkpoint(doc, pub)
    assert not verify_checkpoint(doc, "b" * 64)
    forged = {"checkpoint": {**doc["checkpoint"], "seq": 4}, "signature": doc["signature"]}
    assert not verify_checkpoint(forged, pub)
    assert not verify_checkpoint({**doc, "extra": 1}, pub)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(details=st.dictionaries(st.text(), _json, max_size=4), rid=st.text() | st.none())
def test_round_trip(details: dict[str, Any], rid: str | None) -> None:
    body = _body(details=details, request_id=rid)
    line, digest = encode_event(body)
    assert decode_line(line) == (body, digest)
