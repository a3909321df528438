"""The layering of ``aegis/`` as an import graph (docs/design.md, "Layers").

Every import counts, at module level and inside functions alike: a lazy import still runs
the imported module when the function runs, so a circle through a function body is a circle.
Imports under ``if TYPE_CHECKING:`` are for the type checker only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "aegis"
STAGES = ("analyze", "review", "policy", "sign", "execute", "workflow", "ecosystems")
Edge = tuple[str, str, int]


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


class _Imports(ast.NodeVisitor):
    """Every import statement, and whether it runs at import time (not in a function).

    Imports under ``if TYPE_CHECKING:`` are skipped: they are for the type checker only.
    """

    def __init__(self) -> None:
        self.found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []
        self.depth = 0

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.orelse:
                self.visit(inner)
            return
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self.depth == 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append((node, self.depth == 0))


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> list[tuple[str, str]]:
    """``(module, imported name or "")`` for each name the statement imports."""
    if isinstance(node, ast.Import):
        return [(alias.name, "") for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, *([base] if base else [])])
    subs = [(f"{base}.{alias.name}", alias.name) for alias in node.names]
    return [(sub, "") if sub in MODULES else (base, name) for sub, name in subs]


def _imports(name: str, path: Path) -> tuple[list[Edge], list[Edge]]:
    """Every aegis import of ``path`` as ``(module, name or "", line)``; and those run when
    it is imported, with the packages Python runs first (``a.b`` before ``a.b.c``).
    """
    visitor = _Imports()
    visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    every: list[Edge] = []
    at_import: list[Edge] = []
    for node, top in visitor.found:
        for imported, attr in _targets(node, package):
            target = imported
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if not target.startswith("aegis") or target == name:
                continue
            every.append((target, attr, node.lineno))
            while top and target in MODULES:
                if not name.startswith(target + "."):
                    at_import.append((target, attr, node.lineno))
                target = target.rpartition(".")[0]
    return every, at_import


MODULES = _modules()
_BOTH = {name: _imports(name, path) for name, path in MODULES.items()}
IMPORTS = {name: both[0] for name, both in _BOTH.items()}
AT_IMPORT = {name: both[1] for name, both in _BOTH.items()}


def _cycles(imports: dict[str, list[tuple[str, str, int]]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    graph = {name: sorted({t for t, _, _ in found}) for name, found in imports.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            edges = graph[node]
            if i < len(edges):
                work.append((node, i + 1))
                nxt = edges[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


def _stage(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_the_graph_is_read() -> None:
    assert "aegis.api" in MODULES
    assert any(t == "aegis.errors" for t, _, _ in IMPORTS["aegis.api"])


def _explain(imports: dict[str, list[tuple[str, str, int]]]) -> tuple[list[list[str]], str]:
    circles = _cycles(imports)
    detail = [
        f"{name} -> {target} ({MODULES[name].relative_to(ROOT.parent)}:{line})"
        for component in circles
        for name in component
        for target, _, line in imports[name]
        if target in component
    ]
    return circles, "\n".join(detail)


def test_no_import_circles() -> None:
    circles, detail = _explain(IMPORTS)
    assert not circles, "import circles:\n" + detail


def test_no_circles_when_imported() -> None:
    # What runs at import time, with the packages Python loads first: a circle here is a
    # partially initialised module at start-up, whatever the order of the first import.
    circles, detail = _explain(AT_IMPORT)
    assert not circles, "import-time circles:\n" + detail


def test_stages_do_not_import_the_api_or_each_others_private_helpers() -> None:
    wrong = []
    for name, found in IMPORTS.items():
        stage = _stage(name)
        if stage is None:
            continue
        for target, attr, line in found:
            where = f"{MODULES[name].relative_to(ROOT.parent)}:{line}"
            if target.split(".")[1].startswith("api"):
                wrong.append(f"{where}: {target}")
            private = attr.startswith("_") or target.rpartition(".")[2].startswith("_")
            if private and not target.endswith("__init__") and _stage(target) != stage:
                wrong.append(f"{where}: {target}.{attr}")
    assert not wrong, "stage imports past the layering:\n" + "\n".join(wrong)
