"""Canonical JSON: the one definition of "the bytes we sign".

Canonical bytes are UTF-8 JSON with sorted keys, compact separators, no floats
and no NaN. Every hash and every signature in Aegis is over these bytes, so two
documents that differ only in key order or whitespace hash the same.

``loads_strict`` is the matching parser for untrusted input: duplicate keys,
floats, NaN/Infinity and non-UTF-8 bytes are refused with :class:`InputError`.

Example:
    >>> canonical_bytes({"b": 1, "a": [True, None]})
    b'{"a":[true,null],"b":1}'
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

try:
    import orjson
except ImportError:  # the protocol client runs stdlib-only (a copy under the system Python)
    orjson = None  # type: ignore[assignment]

from aegis.errors import InputError

DEFAULT_MAX_BYTES = 16 * 1024 * 1024


def _check(value: Any, path: str = "$") -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        raise InputError(f"floats are not allowed in canonical JSON (at {path})")
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(f"object keys must be strings (at {path})")
            _check(item, f"{path}.{key}")
        return
    raise InputError(f"type {type(value).__name__} is not JSON (at {path})")


def canonical_bytes(value: Any) -> bytes:
    """Return the canonical JSON bytes of ``value``.

    Raises:
        InputError: the value holds a float, a non-string key or a non-JSON type.
    """
    _check(value)
    return encode_checked(value)


def encode_checked(value: Any) -> bytes:
    """Encode ``value`` canonically; the caller vouches it holds only JSON types.

    For values built by :func:`aegis.codec.canonical_of`, whose converter admits only
    exact JSON types; everything else goes through :func:`canonical_bytes`.
    """
    # orjson writes the same bytes as the json call below (sorted keys by code point,
    # compact separators, UTF-8 text, the same escapes; tests/unit/test_canonical.py
    # compares the two on generated documents) ten times faster, which is most of the
    # cost of hashing a large plan. What it refuses (integers beyond 64 bits, lone
    # surrogates) goes to the json call, which encodes it or raises as it always did.
    if orjson is not None:
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
    return _encode_json(value)


def _encode_json(value: Any) -> bytes:
    """The reference encoding (the standard library's), which defines canonical bytes."""
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates cannot be UTF-8
        raise InputError(f"text is not valid UTF-8: {e}") from e


def sha256_hex(data: bytes) -> str:
    """Return the lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def canonical_hash(value: Any) -> str:
    """Return the SHA-256 hex of the canonical bytes of ``value``."""
    return sha256_hex(canonical_bytes(value))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # a key came twice: name the first repeat
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise InputError(f"duplicate JSON key {key!r}")
            seen.add(key)
    return out


def _no_float(text: str) -> Any:
    raise InputError(f"floats are not allowed (got {text[:32]!r})")


def _no_constant(text: str) -> Any:
    raise InputError(f"{text} is not allowed in JSON")


# Built once: json.loads would build a decoder with these hooks on every call.
_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_float=_no_float, parse_constant=_no_constant
)


def loads_strict(data: bytes | str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Parse untrusted JSON strictly.

    Args:
        data: the raw document; bytes must be UTF-8.
        max_bytes: refuse larger documents before parsing.

    Raises:
        InputError: too large, not UTF-8, not JSON, duplicate keys, floats or NaN.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise InputError(f"document is {len(raw)} bytes, more than the {max_bytes} allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"document is not valid UTF-8: {e}") from e
    try:
        if text.startswith("\ufeff"):  # what json.loads refuses before decoding
            raise json.JSONDecodeError("Unexpected UTF-8 BOM", text, 0)
        return _STRICT_DECODER.decode(text)
    except json.JSONDecodeError as e:
        raise InputError(f"malformed JSON: {e}") from e
    except ValueError as e:
        # The one other ValueError the decoder raises: an integer longer than Python's
        # int-conversion limit (4300 digits), which no Aegis document has.
        raise InputError("malformed JSON: an integer has too many digits") from e
    except RecursionError as e:
        raise InputError("JSON nested too deeply") from e
