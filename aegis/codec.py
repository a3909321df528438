"""Strict conversion between frozen dataclasses and JSON-shaped dicts.

``to_dict`` gives the plain structure that :mod:`aegis.canonical` hashes;
``from_dict`` is the one parse boundary for records read back from disk, the
store or a socket. It checks types, rejects unknown and missing keys, and
raises one :class:`InputError` naming the path of the first problem.

Supported field types: str, int, bool, StrEnum subclasses, ``X | None``,
``tuple[X, ...]``, ``dict[str, X]`` and nested frozen dataclasses.

A field declared with ``metadata={OMIT_DEFAULT: True}`` is left out of ``to_dict``
while it holds its default: fields added for other ecosystems (docs/ecosystems.md)
keep every existing apt document, and its hash, byte for byte the same.

Example:
    >>> from_dict(Intent, to_dict(intent)) == intent
    True
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from functools import cache
from typing import Any, TypeVar, Union

from aegis.errors import InputError

T = TypeVar("T")

OMIT_DEFAULT = "aegis.omit_default"
"""Field metadata key: omit the field from :func:`to_dict` while it equals its default."""


def _omitted(f: dataclasses.Field[Any], value: Any) -> bool:
    if not f.metadata.get(OMIT_DEFAULT):
        return False
    if f.default is not dataclasses.MISSING:
        return bool(value == f.default)
    if f.default_factory is not dataclasses.MISSING:
        return bool(value == f.default_factory())
    return False


def to_dict(obj: Any) -> Any:
    """Return the JSON-shaped structure of a dataclass tree."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_dict(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if not _omitted(f, getattr(obj, f.name))
        }
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is not None:
        return _convert_generic(tp, origin, value, path)
    if tp is Any:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError as e:
            raise InputError(f"{path}: {value!r} is not one of {[m.value for m in tp]}") from e
    return _convert_scalar(tp, value, path)


def _convert_generic(tp: Any, origin: Any, value: Any, path: str) -> Any:
    """Convert into ``X | None``, ``tuple[X, ...]`` or ``dict[str, X]``."""
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise RuntimeError(f"unsupported union {tp}")
        return _convert(rest[0], value, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise InputError(f"{path}: expected a list")
        return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"{path}: expected an object")
        return {str(k): _convert(args[1], v, f"{path}.{k}") for k, v in value.items()}
    raise RuntimeError(f"unsupported field type {tp!r} at {path}")


def _convert_scalar(tp: Any, value: Any, path: str) -> Any:
    """Accept ``value`` only if it already is a ``bool``, ``int`` or ``str`` (no coercion)."""
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"{path}: expected true or false")
        return value
    if tp is int:
        # bool is an int subclass; true must not pass as 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{path}: expected an integer")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise InputError(f"{path}: expected a string")
        return value
    raise RuntimeError(f"unsupported field type {tp!r} at {path}")


def from_dict(cls: type[T], data: Any, path: str = "$") -> T:
    """Build ``cls`` from untrusted ``data``, strictly.

    Raises:
        InputError: wrong type, unknown key, missing key, bad enum value.
    """
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected an object for {cls.__name__}")
    hints = _hints(cls)  # type: ignore[arg-type]
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in data:
            no_default = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            if no_default:
                raise InputError(f"{path}: missing key {name!r}")
            continue
        kwargs[name] = _convert(hints[name], data[name], f"{path}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: {e}") from e
