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


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                skipped.update(id(n) for n in ast.walk(inner))
    return skipped


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """``(module, imported name or "", line)`` for each aegis import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, str, int]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.extend((alias.name, "", node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append(
                    (sub, "", node.lineno) if sub in modules else (base, alias.name, node.lineno)
                )
    result = []
    for imported, attr, line in found:
        if not imported.startswith("aegis"):
            continue
        target = imported
        while target not in modules and "." in target:
            target = target.rpartition(".")[0]
        if target != name:
            result.append((target, attr, line))
    return result


MODULES = _modules()
IMPORTS = {name: _imports(name, path, MODULES) for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    graph = {name: sorted({t for t, _, _ in found}) for name, found in IMPORTS.items()}
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


def test_no_import_circles() -> None:
    circles = _cycles()
    detail = [
        f"{name} -> {target} ({MODULES[name].relative_to(ROOT.parent)}:{line})"
        for component in circles
        for name in component
        for target, _, line in IMPORTS[name]
        if target in component
    ]
    assert not circles, "import circles:\n" + "\n".join(detail)


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
