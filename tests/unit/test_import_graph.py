"""autoopt's modules import each other without cycles: layers stay layers.

Every import statement counts, wherever it is (module level, inside a function, under
``TYPE_CHECKING``): a lazy import hides a cycle from Python, not from the design.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import autoopt

#: Cycles that are known and someone else's to break; nothing may join them.
ALLOWED: list[frozenset[str]] = []


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imported(name: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The package's modules that ``name`` imports: ``from a import b`` is module ``a.b`` when
    that is a module, else ``a``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:
                    yield f"{source}.{alias.name}"
                elif source in modules:
                    yield source


def import_graph() -> dict[str, set[str]]:
    modules = _modules(Path(autoopt.__file__).parent)
    return {name: set(_imported(name, path, modules)) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_import_graph_has_no_cycles_but_the_allowed_ones() -> None:
    unexpected = [sorted(c) for c in cycles(import_graph()) if not any(c <= a for a in ALLOWED)]
    assert not unexpected, f"import cycles: {unexpected}"


def test_import_graph_finds_a_cycle_through_a_lazy_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]


def test_plugins_import_no_technique_or_backend_and_the_recipe_no_registry() -> None:
    graph = import_graph()
    plugins = {m for m in graph if m == "autoopt.plugins" or m.startswith("autoopt.plugins.")}
    for module in plugins:
        assert not {
            m for m in graph[module] if m.startswith(("autoopt.techniques", "autoopt.backends"))
        }, module
    assert not graph["autoopt.recipe"] & {"autoopt.plugins", "autoopt.plugins._registry"}


def test_the_library_never_imports_its_test_suites() -> None:
    graph = import_graph()
    testing = {m for m in graph if m.startswith("autoopt.testing")}
    assert not {m for m in graph if m not in testing and graph[m] & testing}
