"""bashlex's LALR tables, computed once and shipped, so importing bashlex costs ~10 ms.

bashlex 0.18 vendors an old PLY ``yacc`` that rebuilds its parse tables on every import
(it never reads the ``parsetab.py`` it writes): ~150 ms of a hook that a runtime calls
before every command. :func:`import_bashlex` loads bashlex with ``yacc``'s table builder
replaced by a lookup in ``bashlex_lr.json`` (beside this module), keyed by a digest of
the grammar's productions, precedence and terminals. A bashlex whose grammar differs from
the one the file was made from (another version) gets a different digest and its tables
are built as before: slower, never wrong. The file is data (JSON), read from the
package directory (root-owned on a host), never executed.

``python -m aegis.guard.lr_tables`` rewrites the file from the installed bashlex; a test
holds it equal to the tables bashlex builds itself.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

TABLES = Path(__file__).with_name("bashlex_lr.json")


def grammar_key(grammar: Any) -> str:
    """A digest of everything the LALR tables are computed from."""
    parts = [str(p) for p in grammar.Productions]
    parts.append(repr(sorted(grammar.Precedence.items())))
    parts.append(repr(sorted(grammar.Terminals)))
    parts.append(repr(grammar.Start))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _load() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(TABLES.read_bytes())
    except (OSError, ValueError):
        return {}
    return data


RECORDED: dict[str, Any] = {}
"""The tables built in this process (``record=True``): what :func:`main` writes."""


def _patched(yacc: ModuleType, *, record: bool) -> None:
    built: Any = getattr(yacc, "LRTable")  # noqa: B009 - a module mypy cannot see into
    stored = {} if record else _load()

    class CachedLRTable(built):  # type: ignore[misc]
        """``yacc.LRTable`` that takes the shipped tables when the grammar matches."""

        def __init__(self, grammar: Any, log: Any = None) -> None:
            key = grammar_key(grammar)
            if stored.get("key") != key:
                super().__init__(grammar, log)
                if record:
                    RECORDED.update(
                        key=key,
                        action={str(k): v for k, v in getattr(self, "lr_action").items()},  # noqa: B009
                        goto={str(k): v for k, v in getattr(self, "lr_goto").items()},  # noqa: B009
                    )
                return
            self.grammar = grammar
            self.log = log or yacc.NullLogger()
            self.lr_action: dict[int, Any] = {int(k): v for k, v in stored["action"].items()}
            self.lr_goto: dict[int, Any] = {int(k): v for k, v in stored["goto"].items()}
            self.lr_productions = grammar.Productions
            self.lr_goto_cache: dict[Any, Any] = {}
            self.lr0_cidhash: dict[Any, Any] = {}
            self._add_count = 0
            self.sr_conflict = self.rr_conflict = 0
            self.conflicts: list[Any] = []
            self.sr_conflicts: list[Any] = []
            self.rr_conflicts: list[Any] = []

    setattr(yacc, "LRTable", CachedLRTable)  # noqa: B010
    if not record:
        # A development check (a p_ function defined twice in bashlex's source) that reads
        # the source files on every import; the tables' key covers the grammar itself.
        yacc.ParserReflect.validate_modules = lambda self: None


def import_bashlex(*, record: bool = False) -> ModuleType:
    """``import bashlex``, with its tables from :data:`TABLES` when they match.

    ``record``: build the tables as bashlex does and keep them in :data:`RECORDED`.
    """
    if "bashlex" in sys.modules:
        loaded: ModuleType = sys.modules["bashlex"]
        return loaded
    spec = importlib.util.find_spec("bashlex")  # finds the package without running it
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return importlib.import_module("bashlex")  # let the import system report the problem
    # The package object first, its __init__ (which builds the parser) last: yacc.py and
    # utils.py are loaded in between, and yacc's table builder is replaced.
    package = importlib.util.module_from_spec(spec)
    sys.modules["bashlex"] = package
    try:
        folder = Path(next(iter(spec.submodule_search_locations)))
        for name in ("utils", "yacc"):
            sub = importlib.util.spec_from_file_location(f"bashlex.{name}", folder / f"{name}.py")
            assert sub is not None
            assert sub.loader is not None
            module = importlib.util.module_from_spec(sub)
            sys.modules[f"bashlex.{name}"] = module
            sub.loader.exec_module(module)
            setattr(package, name, module)
        _patched(sys.modules["bashlex.yacc"], record=record)
        spec.loader.exec_module(package)
    except BaseException:
        for name in [n for n in sys.modules if n == "bashlex" or n.startswith("bashlex.")]:
            del sys.modules[name]
        raise
    return package


def main() -> int:
    """Rewrite :data:`TABLES` from the installed bashlex (run in a fresh interpreter)."""
    import_bashlex(record=True)
    if not RECORDED:
        print("bashlex was imported before the tables could be recorded", file=sys.stderr)
        return 1
    TABLES.write_text(json.dumps(RECORDED, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {TABLES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
