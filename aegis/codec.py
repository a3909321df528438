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

from aegis.canonical import canonical_bytes, encode_checked
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
    try:
        return _plain(obj)
    except _NotPlain:
        return _to_dict_generic(obj)


def canonical_of(obj: Any, *, omit: tuple[str, ...] = ()) -> bytes:
    """Return ``canonical_bytes(to_dict(obj))``, the same bytes, in one pass when it can.

    ``omit`` names top-level keys to leave out (a signed body is the document without
    its signature). The fast converter's output holds only JSON types by construction
    (it refuses anything else), so the separate walk of
    :func:`aegis.canonical.canonical_bytes` that refuses floats and non-JSON types has
    nothing left to find; a tree it refuses takes the generic path, which raises exactly
    as before.

    Raises:
        InputError: the tree holds a float, a non-string key or a non-JSON type.
    """
    plain = checked_plain(obj)
    if plain is None:
        generic = _to_dict_generic(obj)
        for key in omit:
            generic.pop(key)
        return canonical_bytes(generic)
    for key in omit:
        plain.pop(key)
    return encode_checked(plain)


def checked_plain(obj: Any) -> Any:
    """``to_dict(obj)`` when it holds only exact JSON types, else None.

    The result may be encoded with :func:`aegis.canonical.encode_checked`; for None,
    use :func:`canonical_of` (it raises what the checking encoder raises).
    """
    try:
        return _plain(obj)
    except _NotPlain:
        return None


def _to_dict_generic(obj: Any) -> Any:
    """The reference conversion: every type, at the speed of ``dataclasses.fields``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: _to_dict_generic(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if not _omitted(f, getattr(obj, f.name))
        }
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [_to_dict_generic(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _to_dict_generic(v) for k, v in obj.items()}
    return obj


# The fast converter. Policy decisions hash 500-package plans (hundreds of kilobytes of
# JSON) on every evaluation; the generic walk above spends most of that time asking
# dataclasses which fields a class has. Here each type gets one converter, built once
# and found by exact type. It handles only values whose JSON form is certain: exact
# str/int/bool/None leaves, dataclasses, enums with such values, lists, tuples and dicts
# with exact str keys. Anything else (a float, a str subclass, a non-str key) raises
# _NotPlain and the caller redoes the whole tree generically, so the output and the
# errors are those of the generic path.
_LEAF = frozenset({str, int, bool, type(None)})


class _NotPlain(Exception):
    """A value outside the fast converter's types: the generic path decides."""


def _plain(v: Any) -> Any:
    conv = _CONVERTERS.get(type(v))
    if conv is None:
        conv = _converter(type(v))
    return conv(v)


def _refuse(_v: Any) -> Any:
    raise _NotPlain


def _leaf(v: Any) -> Any:
    return v


def _seq(v: Any) -> list[Any]:
    return [x if type(x) in _LEAF else _plain(x) for x in v]


def _map(v: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, x in v.items():
        if type(k) is not str:
            raise _NotPlain
        out[k] = x if type(x) in _LEAF else _plain(x)
    return out


def _enum(v: enum.Enum) -> Any:
    value = v._value_  # what .value returns, without the descriptor's cost
    if type(value) not in _LEAF:
        raise _NotPlain
    return value


def _dataclass(cls: type) -> Any:
    # Generated once per class: attribute loads and a dict display run several times
    # faster than a loop over field names with getattr. The names are the class's own
    # field names (Python identifiers from its definition), never data. Where a field's
    # hint names an enum, a dataclass or a tuple of them, the expected type is handled
    # inline; any other runtime type goes to _plain, which handles (or refuses) it.
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable hints (a local class): the generic expression only
        hints = {}
    namespace: dict[str, Any] = {"L": _LEAF, "P": _plain}
    items = []
    for i, f in enumerate(dataclasses.fields(cls)):
        expr = _field_expr(hints.get(f.name), f"K{i}", namespace)
        items.append(f"{f.name!r}: {expr.format(a=f'o.{f.name}')}")
    # A field marked OMIT_DEFAULT leaves the document while it holds its default, as in
    # the generic path (apt documents stay byte for byte what they were).
    omits = []
    for i, f in enumerate(dataclasses.fields(cls)):
        if not f.metadata.get(OMIT_DEFAULT):
            continue
        if f.default is not dataclasses.MISSING:
            namespace[f"D{i}"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"D{i}"] = f.default_factory()
        else:
            continue
        omits.append(f"    if o.{f.name} == D{i}:\n        del d[{f.name!r}]\n")
    src = f"def conv(o):\n    d = {{{', '.join(items)}}}\n{''.join(omits)}    return d\n"
    exec(src, namespace)  # noqa: S102
    return namespace["conv"]


def _field_expr(tp: Any, key: str, namespace: dict[str, Any]) -> str:
    """The expression converting attribute ``{a}`` of hint ``tp`` (names go in namespace)."""
    generic = "(x if type(x := {a}) in L else P(x))"
    tp = _optional_of(tp) or tp
    item = _item_expr(tp, key, namespace)
    if item is not None:
        return "(" + item.format(e="x", a="{a}", walrus="x := {a}") + ")"
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:  # noqa: PLR2004
            inner = _item_expr(args[0], key, namespace)
            if args[0] in _LEAF:
                inner = "{e} if type({walrus}) in L else P({e})"
            if inner is not None:
                each = inner.format(e="e", walrus="e")
                return f"([{each} for e in x] if type(x := {{a}}) is tuple else P(x))"
    return generic


def _item_expr(tp: Any, key: str, namespace: dict[str, Any]) -> str | None:
    """The converting expression of ``{e}`` (evaluated first as ``{walrus}``), or None.

    Only for an enum whose values are all JSON leaves, or a dataclass.
    """
    if not isinstance(tp, type):
        return None
    if issubclass(tp, enum.Enum) and all(type(m._value_) in _LEAF for m in tp):
        namespace[key] = tp
        return "{e}._value_ if type({walrus}) is " + key + " else P({e})"
    if dataclasses.is_dataclass(tp):
        namespace[key] = _converter_of(tp)
        namespace[key + "t"] = tp
        return key + "({e}) if type({walrus}) is " + key + "t else P({e})"
    return None


def _converter_of(t: type) -> Any:
    found = _CONVERTERS.get(t)
    if found is None:
        # Placeholder first: a dataclass that (indirectly) contains itself finds it.
        _CONVERTERS[t] = lambda v: _CONVERTERS[t](v)  # noqa: PLW0108 - looked up late
        found = _converter(t)
    return found


def _converter(t: type) -> Any:
    """Build (once per type) the converter ``_plain`` uses; the order is ``to_dict``'s."""
    conv: Any
    if t in _LEAF:
        conv = _leaf
    elif dataclasses.is_dataclass(t):
        conv = _dataclass(t)
    elif issubclass(t, enum.Enum):
        conv = _enum
    elif issubclass(t, (list, tuple)):
        conv = _seq
    elif issubclass(t, dict):
        conv = _map
    else:
        conv = _refuse
    _CONVERTERS[t] = conv
    return conv


_CONVERTERS: dict[type, Any] = {}


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
        return _from_dict_generic(tp, value, path)
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


def prepare(*types: type) -> None:
    """Build the encoder and decoder of each dataclass in ``types`` now, not on first use.

    aegisd calls it at start: generating them for the execution plan and the plan it holds
    cost the first apply more than decoding it. A planner calls it while its tool runs:
    building them reads every class's type hints, tens of milliseconds of a one-shot CLI
    that would otherwise follow the tool's run. The output and the checks are the same
    whenever they are built.
    """
    for t in types:
        _converter_of(t)
        _decoder(t)


def from_dict(cls: type[T], data: Any, path: str = "$") -> T:
    """Build ``cls`` from untrusted ``data``, strictly.

    Raises:
        InputError: wrong type, unknown key, missing key, bad enum value.
    """
    try:
        out: T = _decoder(cls)(data)
        return out
    except _NotPlain:
        # The fast decoder accepts only what is certainly valid; the reference decoder
        # below decides everything else and names the first problem.
        return _from_dict_generic(cls, data, path)


def _from_dict_generic(cls: type[T], data: Any, path: str = "$") -> T:
    """The reference decoder: every check, with the path of the first problem."""
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


# The fast decoder. aegisd parses every execution plan (an embedded plan of hundreds of
# packages, approvals, the policy binding) before it checks one signature; the reference
# decoder above asks ``typing`` what each field's type is for every value. Here each
# type gets one decoder, built once from its hints. It accepts only exact JSON types
# that certainly pass every check of the reference decoder and raises _NotPlain for
# anything else (a wrong type, an unknown or missing key, a value the class refuses), so
# the reference decoder then decides and names the problem: both accept the same
# documents and build equal records.
_DECODERS: dict[Any, Any] = {}
_EXACT = {str: "str", int: "int", bool: "bool"}


def _fail() -> Any:
    raise _NotPlain


def _decoder(tp: Any) -> Any:
    found = _DECODERS.get(tp)
    if found is None:
        # Placeholder first: a dataclass that (indirectly) contains itself finds it.
        _DECODERS[tp] = lambda v: _DECODERS[tp](v)  # noqa: PLW0108 - looked up late
        found = _DECODERS[tp] = _build_decoder(tp)
    return found


def _build_decoder(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return _leaf
    if tp in _EXACT:
        return lambda v: v if type(v) is tp else _fail()
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:  # noqa: PLR2004 - X | None only
            return _fail
        inner = _decoder(rest[0])
        return lambda v: None if v is None else inner(v)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # noqa: PLR2004
        return _tuple_decoder(args[0])
    if origin is dict and len(args) == 2 and args[0] is str:  # noqa: PLR2004
        value = _decoder(args[1])

        def decode_dict(v: Any) -> dict[str, Any]:
            if type(v) is not dict:
                raise _NotPlain
            return {k if type(k) is str else _fail(): value(x) for k, x in v.items()}

        return decode_dict
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        members = tp._value2member_map_

        def decode_enum(v: Any) -> Any:
            try:
                return members[v]
            except (KeyError, TypeError):
                raise _NotPlain from None

        return decode_enum
    return _fail  # unsupported: the reference decoder raises its RuntimeError


def _optional_of(tp: Any) -> Any:
    """X for a hint ``X | None`` (X not None), else None."""
    if typing.get_origin(tp) not in (Union, types.UnionType):
        return None
    args = typing.get_args(tp)
    rest = [a for a in args if a is not type(None)]
    return rest[0] if len(args) == 2 and len(rest) == 1 else None  # noqa: PLR2004


def _tuple_decoder(item_tp: Any) -> Any:
    if item_tp in _EXACT:
        allowed = frozenset({item_tp})

        def decode_leaves(v: Any) -> tuple[Any, ...]:
            if type(v) is not list or not set(map(type, v)) <= allowed:
                raise _NotPlain
            return tuple(v)

        return decode_leaves
    item = _decoder(item_tp)

    def decode_items(v: Any) -> tuple[Any, ...]:
        if type(v) is not list:
            raise _NotPlain
        return tuple([item(x) for x in v])

    return decode_items


def _builds_by_assignment(cls: type) -> bool:
    """Whether ``cls(**kw)`` only stores each field (so the decoder may store them).

    True for a dataclass whose ``__init__`` is the generated one (compiled from a
    string, never a file), with no ``__post_init__``, no slots and no init-only or
    excluded fields; any other class is built by calling it.
    """
    init = getattr(cls.__dict__.get("__init__"), "__code__", None)
    all_fields = getattr(cls, "__dataclass_fields__", {})
    fields = dataclasses.fields(cls)
    return (
        init is not None
        and init.co_filename == "<string>"
        and not hasattr(cls, "__post_init__")
        and not hasattr(cls, "__slots__")
        and len(all_fields) == len(fields)
        and all(f.init for f in fields)
    )


def _dataclass_decoder(cls: type) -> Any:
    hints = _hints(cls)
    fields = dataclasses.fields(cls)
    names = frozenset(f.name for f in fields)
    namespace: dict[str, Any] = {"F": _fail, "N": names, "S": _NotPlain, "C": cls}
    namespace["E"] = (TypeError, ValueError, InputError)
    namespace["NEW"] = object.__new__
    direct = _builds_by_assignment(cls)
    lines = [
        "def decode(d):",
        "    if type(d) is not dict or not d.keys() <= N:",
        "        raise S",
    ]
    # A frozen dataclass's __init__ stores each field through object.__setattr__; for the
    # classes that do nothing else, the decoder stores into the new instance's __dict__
    # itself (a third of the decoding time of an execution plan).
    lines += ["    o = NEW(C)", "    kw = o.__dict__"] if direct else ["    kw = {}"]
    for i, f in enumerate(fields):
        tp = hints[f.name]
        inner = _optional_of(tp)
        if tp in _EXACT:
            expr = f"x if type(x) is {_EXACT[tp]} else F()"
        elif inner in _EXACT:
            expr = f"x if x is None or type(x) is {_EXACT[inner]} else F()"
        elif inner is not None:
            namespace[f"D{i}"] = _decoder(inner)
            expr = f"None if x is None else D{i}(x)"
        else:
            namespace[f"D{i}"] = _decoder(tp)
            expr = f"D{i}(x)"
        lines += [
            f"    if {f.name!r} in d:",
            f"        x = d[{f.name!r}]",
            f"        kw[{f.name!r}] = {expr}",
        ]
        if f.default is not dataclasses.MISSING:
            namespace[f"V{i}"] = f.default
            lines += ["    else:", f"        kw[{f.name!r}] = V{i}"] if direct else []
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"V{i}"] = f.default_factory
            lines += ["    else:", f"        kw[{f.name!r}] = V{i}()"] if direct else []
        else:
            lines += ["    else:", "        raise S"]
    if direct:
        lines += ["    return o"]
    else:
        lines += [
            "    try:",
            "        return C(**kw)",
            "    except E:",
            "        raise S from None",
        ]
    # Generated once per class from its own field names (identifiers), never from data.
    exec("\n".join(lines), namespace)  # noqa: S102
    return namespace["decode"]
