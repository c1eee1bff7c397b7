"""No import cycles in the fleet, the CLI and the bench: every import counts, at module level,
under ``TYPE_CHECKING`` or inside a function (an import hidden in a function is still an arrow).

Read from the source with :mod:`ast`, so nothing is imported and the check costs no start-up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "cspgraph.fleet": ROOT / "src" / "cspgraph" / "fleet",
    "cspgraph.cli": ROOT / "src" / "cspgraph" / "cli",
    "bench": ROOT / "bench",
}


def module_name(package: str, root: Path, file: Path) -> str:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def imports_of(source: str, name: str, is_package: bool) -> set[str]:
    """Every module ``source`` names in an import statement, wherever the statement is."""
    found: set[str] = set()
    base = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.rsplit(".", node.level - 1)[0] if node.level > 1 else base
                target = f"{anchor}.{node.module}" if node.module else anchor
            else:
                target = node.module or ""
            found.add(target)
            # `from package import module` names a module too.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def import_graph(package: str, root: Path) -> dict[str, set[str]]:
    files = {module_name(package, root, f): f for f in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, file in files.items():
        named = imports_of(file.read_text(encoding="utf-8"), name, file.name == "__init__.py")
        graph[name] = {m for m in named if m in files and m != name}
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One import cycle (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_a_package_has_no_import_cycle(package: str) -> None:
    graph = import_graph(package, PACKAGES[package])
    assert len(graph) > 3, graph  # the files were found
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph) or [])


def test_the_cycle_finder_sees_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    # The shape the fleet had: a module-level import one way, a function-level one back.
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "report.py").write_text(
        "def render():\n    from pkg.report_html import write\n    return write\n"
    )
    (tmp_path / "report_html.py").write_text("from pkg.report import helper\n")
    (tmp_path / "alone.py").write_text("import json\n")
    graph = import_graph("pkg", tmp_path)
    assert graph["pkg.report"] == {"pkg.report_html"}
    assert find_cycle(graph) == ["pkg.report", "pkg.report_html", "pkg.report"]


def test_the_cycle_finder_sees_type_checking_and_relative_imports(tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "progress.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sync import Summary\n"
    )
    (tmp_path / "sync.py").write_text("from pkg import progress\n")
    assert find_cycle(import_graph("pkg", tmp_path)) == ["pkg.progress", "pkg.sync", "pkg.progress"]
