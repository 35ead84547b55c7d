"""ARCHITECTURE.md's rule that the package's module-level imports form no cycle.

Imports inside functions are left out: they run when the function does, and a
few exist on purpose to keep start-up light (ARCHITECTURE.md says which).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "qa_assistant"


def _modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, a package standing for its `__init__.py`."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _module_level_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `path` imports outside any function or class body."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            while name and name not in modules:  # `from a.b import name`: the module a.b.name, or a.b
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of `graph` as a path that ends where it starts, or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_module_level_imports_of_the_package_form_no_cycle() -> None:
    modules = _modules(PACKAGE)
    assert "qa_assistant.cli" in modules
    assert "qa_assistant.training.runner" in modules
    graph = {name: _module_level_imports(path, modules) - {name} for name, path in modules.items()}
    assert graph["qa_assistant.cli.arguments"] >= {"qa_assistant.cli.commands"}  # the reader sees edges
    cycle = _cycle(graph)
    assert not cycle, "import cycle: " + " -> ".join(cycle)
