"""bashlex's LALR parser, built once and shipped as data, so importing bashlex is cheap.

bashlex 0.18 vendors an old PLY ``yacc`` that, on every import, reads the grammar from its
rule functions' docstrings (with :mod:`inspect`) and rebuilds the parse tables: ~150 ms of
a hook that a runtime calls before every command. :func:`import_bashlex` loads bashlex
with ``yacc.yacc`` replaced by a lookup in ``bashlex_lr.json`` (beside this module): the
file holds the tables and productions together with everything they are computed from
(the rule functions' names, lines and docstrings, the tokens, the precedence, the start
symbol). The lookup compares those inputs, as read from the bashlex being imported, with
the recorded ones, field for field; on any difference (another bashlex) the parser is
built by yacc as before: slower, never wrong. The file is data (JSON), read from the
package directory (root-owned on a host), never executed.

``python -m aegis.guard.lr_tables`` rewrites the file from the installed bashlex; a test
holds it equal to what bashlex builds itself.
"""

from __future__ import annotations

import json
import os
import sys

TYPE_CHECKING = False  # not typing's: importing typing costs the hook's start-up time
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

TABLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bashlex_lr.json")

RECORDED: dict[str, Any] = {}
"""What this process built (``record=True``): what :func:`main` writes."""


def grammar_inputs(pdict: dict[str, Any]) -> dict[str, Any]:
    """Everything yacc computes the parser from, read from the grammar module's globals.

    These are what ``yacc.ParserReflect`` collects: every ``p_`` function but ``p_error``
    (name, first line, docstring: the rules), ``tokens``, ``precedence`` and ``start``.
    """
    rules = []
    for name, item in pdict.items():
        code = getattr(item, "__code__", None)
        if name.startswith("p_") and name != "p_error" and code is not None:
            rules.append([code.co_firstlineno, name, _rule_words(item.__doc__)])
    rules.sort(key=lambda r: (r[0], r[1]))
    return {
        "rules": rules,
        "tokens": list(pdict.get("tokens") or ()),
        "precedence": [list(p) for p in pdict.get("precedence") or ()],
        "start": pdict.get("start"),
    }


def _rule_words(doc: str | None) -> list[list[str]]:
    """A rule docstring as yacc reads it: the words of each non-blank line.

    Python 3.13 strips docstrings' common indentation at compile time and 3.11 does not;
    yacc splits every line on whitespace, so the words are the grammar on both.
    """
    return [line.split() for line in (doc or "").splitlines() if line.strip()]


class _Production:
    """What ``yacc.LRParser`` reads of a production: its name, length and reduce callable."""

    __slots__ = ("callable", "func", "len", "name", "str")

    def __init__(self, name: str, length: int, func: str | None, text: str) -> None:
        self.name = name
        self.len = length
        self.func = func
        self.str = text
        self.callable: Any = None

    def __str__(self) -> str:
        return self.str


class _Tables:
    """The ``lrtab`` argument ``yacc.LRParser`` takes, from the recorded data."""

    def __init__(self, stored: dict[str, Any], pdict: dict[str, Any]) -> None:
        self.lr_action = {int(k): v for k, v in stored["action"].items()}
        self.lr_goto = {int(k): v for k, v in stored["goto"].items()}
        self.lr_productions = []
        for name, length, func, text in stored["productions"]:
            p = _Production(name, length, func, text)
            if func:
                p.callable = pdict[func]
            self.lr_productions.append(p)


def _load() -> dict[str, Any]:
    try:
        with open(TABLES, "rb") as f:
            data: dict[str, Any] = json.loads(f.read())
    except (OSError, ValueError):
        return {}
    return data


def _patched(yacc: ModuleType, *, record: bool) -> None:
    """Replace ``yacc.yacc``: the recorded parser when the grammar matches, else yacc's own."""
    built_yacc = yacc.yacc

    def grammar_module(pdict: dict[str, Any]) -> Any:
        # yacc reads its caller's globals; called from here it must be told the module.
        return sys.modules[pdict["__name__"]]

    if record:
        built_table: Any = getattr(yacc, "LRTable")  # noqa: B009 - a module mypy cannot see into

        class RecordingLRTable(built_table):  # type: ignore[misc]
            """``yacc.LRTable`` that keeps what it built in :data:`RECORDED`."""

            def __init__(self, grammar: Any, log: Any = None) -> None:
                super().__init__(grammar, log)
                RECORDED.update(
                    action={str(k): v for k, v in getattr(self, "lr_action").items()},  # noqa: B009
                    goto={str(k): v for k, v in getattr(self, "lr_goto").items()},  # noqa: B009
                    productions=[
                        [p.name, p.len, p.func, p.str]
                        for p in getattr(self, "lr_productions")  # noqa: B009
                    ],
                )

        setattr(yacc, "LRTable", RecordingLRTable)  # noqa: B010

        def recording_yacc(*args: Any, **kwargs: Any) -> Any:
            pdict = sys._getframe(1).f_globals
            RECORDED["grammar"] = grammar_inputs(pdict)
            return built_yacc(*args, module=grammar_module(pdict), **kwargs)

        setattr(yacc, "yacc", recording_yacc)  # noqa: B010
        return

    def shipped_yacc(*args: Any, **kwargs: Any) -> Any:
        pdict = sys._getframe(1).f_globals
        stored = _load()
        if not stored or stored.get("grammar") != grammar_inputs(pdict):
            return built_yacc(*args, module=grammar_module(pdict), **kwargs)
        parser = yacc.LRParser(_Tables(stored, pdict), pdict.get("p_error"))
        setattr(yacc, "parse", parser.parse)  # noqa: B010 - as yacc.yacc leaves it
        return parser

    setattr(yacc, "yacc", shipped_yacc)  # noqa: B010


class _OnUse:
    """A module imported when first used: stands in for :mod:`inspect` in yacc.

    yacc imports :mod:`inspect` (~10 ms with what it pulls in) only for the grammar
    reading and table building that the shipped tables skip.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        import importlib

        return getattr(importlib.import_module(self._name), attr)


def _import_without(fullname: str, name: str) -> None:
    """``import fullname`` with ``import name`` inside it bound to an :class:`_OnUse`."""
    import types

    if name in sys.modules:  # already paid for: nothing to save
        __import__(fullname)
        return
    placeholder = types.ModuleType(name)
    sys.modules[name] = placeholder
    try:
        __import__(fullname)
    finally:
        if sys.modules.get(name) is placeholder:
            del sys.modules[name]
    module = sys.modules[fullname]
    if getattr(module, name, None) is placeholder:
        setattr(module, name, _OnUse(name))


def _package(name: str) -> tuple[ModuleType, Any] | None:
    """The package ``name`` (and its loader) as a module whose ``__init__`` has not run.

    Found through :data:`sys.meta_path` as the import system finds it; the attributes set
    are those the import system sets on a package. (Not :mod:`importlib.util`, whose
    import is ~2 ms of a hook start.)
    """
    import types

    spec = None
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        spec = find(name, None) if find is not None else None
        if spec is not None:
            break
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return None
    package = types.ModuleType(name)
    package.__spec__ = spec
    package.__loader__ = spec.loader
    package.__file__ = spec.origin
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = name
    return package, spec.loader


def import_bashlex(*, record: bool = False) -> ModuleType:
    """``import bashlex``, with its parser from :data:`TABLES` when the grammar matches.

    ``record``: build the parser as bashlex does and keep its tables in :data:`RECORDED`.
    """
    if "bashlex" in sys.modules:
        loaded: ModuleType = sys.modules["bashlex"]
        return loaded
    found = _package("bashlex")
    if found is None:
        import importlib

        return importlib.import_module("bashlex")  # let the import system report the problem
    package, loader = found
    # The package object first, its __init__ (which builds the parser) last: yacc.py and
    # utils.py are imported in between (their package exists, so its __init__ waits), and
    # yacc's builder is replaced.
    sys.modules["bashlex"] = package
    try:
        __import__("bashlex.utils")
        if record:
            __import__("bashlex.yacc")
        else:
            _import_without("bashlex.yacc", "inspect")
        _patched(sys.modules["bashlex.yacc"], record=record)
        loader.exec_module(package)
    except BaseException:
        for name in [n for n in sys.modules if n == "bashlex" or n.startswith("bashlex.")]:
            del sys.modules[name]
        raise
    return package


def main() -> int:
    """Rewrite :data:`TABLES` from the installed bashlex (run in a fresh interpreter)."""
    import_bashlex(record=True)
    if "grammar" not in RECORDED or "action" not in RECORDED:
        print("bashlex was imported before the tables could be recorded", file=sys.stderr)
        return 1
    with open(TABLES, "w", encoding="utf-8") as f:
        f.write(json.dumps(RECORDED, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {TABLES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
