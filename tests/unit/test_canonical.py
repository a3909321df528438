"""Canonical JSON: round-trips, order/whitespace independence, refusals."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.canonical import canonical_bytes, canonical_hash, loads_strict
from aegis.errors import InputError

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63) | _text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_text, children, max_size=5),
    max_leaves=30,
)


@settings(deadline=None)
@given(json_values)
def test_round_trip(value: Any) -> None:
    data = canonical_bytes(value)
    assert loads_strict(data) == value
    assert canonical_bytes(loads_strict(data)) == data


def _shuffle(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffle(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffle(v, rng) for v in value]
    return value


@settings(deadline=None)
@given(json_values, st.integers(min_value=0, max_value=2**32), st.sampled_from([None, 0, 2, 4]))
def test_key_order_and_whitespace_never_change_the_hash(
    value: Any, seed: int, indent: int | None
) -> None:
    rng = random.Random(seed)  # noqa: S311 - shuffling test data, not security
    other = json.dumps(_shuffle(value, rng), indent=indent, ensure_ascii=bool(seed % 2))
    if indent is not None and value not in ([], {}) and isinstance(value, (list, dict)):
        assert "\n" in other  # the whitespace really differs from the canonical form
    assert canonical_hash(loads_strict(other.encode())) == canonical_hash(value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"a": 1.5}', "floats"),
        (b'{"a": 1e3}', "floats"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": Infinity}', "Infinity"),
        (b'{"a": 1, "a": 2}', "duplicate"),
        (b'{"a": "\xff"}', "UTF-8"),
        (b'{"a": ', "malformed"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
    ids=["float", "exponent", "nan", "infinity", "duplicate", "not-utf8", "truncated", "deep"],
)
def test_refused_with_input_error(raw: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        loads_strict(raw)
    assert err.value.exit_code == 3


def test_lone_surrogates_are_not_utf8_and_refused() -> None:
    # A JSON escape can smuggle text that has no UTF-8 form; hashing it must refuse.
    with pytest.raises(InputError, match="UTF-8"):
        canonical_bytes(loads_strict(b'{"a": "\\ud800"}'))


def test_floats_refused_when_serialising() -> None:
    with pytest.raises(InputError, match="floats"):
        canonical_bytes({"a": [1, 2.0]})


def test_oversized_refused() -> None:
    with pytest.raises(InputError, match="bytes"):
        loads_strict(b'"' + b"x" * 100 + b'"', max_bytes=50)


def test_canonical_form() -> None:
    assert (
        canonical_bytes({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()
    )


# Every code point class the encoders could treat differently: controls, DEL, the line
# separators JSON allows raw, BOM, non-characters, astral characters (no surrogates:
# those have no UTF-8 form and are refused, see above).
_any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
wide_values = st.recursive(
    st.none() | st.booleans() | st.integers() | _any_text,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(_any_text, children, max_size=6)
    ),
    max_leaves=40,
)


@settings(deadline=None, max_examples=300)
@given(wide_values)
def test_fast_encoder_writes_the_reference_bytes(value: Any) -> None:
    # canonical_bytes encodes with orjson for speed; the standard library's json.dumps
    # (sorted keys, compact, UTF-8) defines the bytes every signature is over.
    reference = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()
    assert canonical_bytes(value) == reference


@pytest.mark.parametrize(
    "value",
    [2**64, -(2**63) - 1, 10**40, {"deep": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}],
    ids=["u64-plus-1", "i64-minus-1", "huge", "nested"],
)
def test_values_the_fast_encoder_refuses_still_encode(value: Any) -> None:
    reference = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    assert canonical_bytes(value) == reference


def test_deeper_than_the_fast_encoder_allows_still_encodes() -> None:
    value: Any = 1
    for _ in range(400):  # orjson stops at 255 levels; the reference does not
        value = [value]
    assert canonical_bytes(value) == b"[" * 400 + b"1" + b"]" * 400
