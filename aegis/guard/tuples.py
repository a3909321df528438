"""``NamedTuple`` for the guard's records without importing :mod:`typing` at run time.

Agent runtimes start ``aegis guard hook`` before every command, and importing
:mod:`typing` is about a third of what the guard's own modules cost to load
(``scripts/bench --only mcp``). The guard declares its records as usual::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from aegis.guard.tuples import NamedTuple

so mypy checks them as :class:`typing.NamedTuple` classes, and at run time this module
builds the same :func:`collections.namedtuple` class from the class body: the annotated
names are the fields in order, their values the defaults; methods, properties and the
docstring are kept. It supports what the guard uses and nothing more (no generics).
"""

from __future__ import annotations

from collections import namedtuple

_NOT_COPIED = frozenset({"__annotations__", "__module__", "__qualname__", "__orig_bases__"})


class _Maker(type):
    """Builds a :func:`collections.namedtuple` class from a ``class X(NamedTuple)`` body."""

    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, object]) -> type:
        if ns.get("_is_root"):
            return super().__new__(mcs, name, bases, ns)
        fields = ns.get("__annotations__")
        if not isinstance(fields, dict) or not fields:
            raise TypeError(f"NamedTuple {name} declares no fields")
        names = tuple(fields)
        defaults = [ns[f] for f in names if f in ns]
        if names[len(names) - len(defaults) :] != tuple(f for f in names if f in ns):
            raise TypeError(f"NamedTuple {name}: a field without a default follows one with")
        cls = namedtuple(name, names, defaults=defaults, module=str(ns["__module__"]))  # type: ignore[misc]
        cls.__qualname__ = str(ns.get("__qualname__", name))
        for key, value in ns.items():
            if key not in names and key not in _NOT_COPIED:
                setattr(cls, key, value)
        return cls


class _Root(metaclass=_Maker):
    _is_root = True


def NamedTuple(*args: object, **kwargs: object) -> None:
    """Only as a base class: ``class X(NamedTuple): ...``."""
    raise TypeError("aegis.guard.tuples.NamedTuple is only a base class")


NamedTuple.__mro_entries__ = lambda bases: (_Root,)  # type: ignore[attr-defined]
