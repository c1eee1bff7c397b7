"""Who imports whom, read from the source: every import statement of a package, including those
inside functions (the lazy ones) and ``importlib.import_module``/``__import__`` of a literal name,
checked against rules of the form "modules under A never import anything under B".

Kept small so wider contracts (layers, no cycles) can build on :func:`imports_in` and
:class:`Forbidden`. Names are dotted prefixes: ``cspgraph.cli`` covers ``cspgraph.cli.main``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    module: str  # the importing module: "cspgraph.cli.demo_cmd"
    target: str  # what it imports: a module, or "module.name" for `from module import name`
    path: Path
    line: int
    # "module": runs when the module is imported (top level, class bodies); "function": runs when
    # a function is called; "type-checking": never runs (under `if TYPE_CHECKING:`).
    when: str

    @property
    def lazy(self) -> bool:
        """Not run when the importing module is imported."""
        return self.when != "module"


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name ``from {'.' * level}{name} import …`` refers to inside ``module``."""
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]  # a module's relative imports start from its package
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, path: Path) -> None:
        self.module, self.path = module, path
        self.is_package = path.name == "__init__.py"
        self.when = "module"
        self.found: list[Import] = []

    def _visit_as(self, when: str, nodes: Iterable[ast.AST]) -> None:
        """Visit ``nodes`` as code that runs ``when`` (unless already inside lazier code)."""
        outer = self.when
        if outer == "module":
            self.when = when
        for node in nodes:
            self.visit(node)
        self.when = outer

    def _function(self, node: ast.AST) -> None:
        self._visit_as("function", ast.iter_child_nodes(node))

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", None)
        if name != "TYPE_CHECKING":
            self.generic_visit(node)
            return
        self._visit_as("type-checking", node.body)
        for child in node.orelse:
            self.visit(child)

    def _add(self, target: str, node: ast.stmt | ast.expr) -> None:
        self.found.append(Import(self.module, target, self.path, node.lineno, self.when))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _resolve(self.module, self.is_package, node.level, node.module)
        for alias in node.names:
            self._add(base if alias.name == "*" else f"{base}.{alias.name}", node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        first = node.args[0] if node.args else None
        if (
            name in ("import_module", "__import__")
            and isinstance(first, ast.Constant)
            and isinstance(first.value, str)
        ):
            self._add(first.value, node)
        self.generic_visit(node)


def imports_in(root: Path) -> Iterator[Import]:
    """Every import in the package whose directory is ``root``, relative imports made absolute."""
    for path in sorted(root.rglob("*.py")):
        collector = _Collector(_module_name(root, path), path)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        yield from collector.found


@dataclass(frozen=True)
class Forbidden:
    """Modules under ``importer`` never import anything under ``imported``, except modules under
    ``lazily_in``, and those only where the import does not run with the module: inside a function
    (paid for when it runs) or under ``if TYPE_CHECKING:``."""

    importer: str
    imported: str
    lazily_in: tuple[str, ...] = ()

    def broken_by(self, imp: Import) -> bool:
        if not (under(imp.module, self.importer) and under(imp.target, self.imported)):
            return False
        exempt = any(under(imp.module, prefix) for prefix in self.lazily_in)
        return not (exempt and imp.lazy)


def violations(root: Path, rules: Sequence[Forbidden]) -> list[str]:
    """Each import under ``root`` that breaks a rule, as ``path:line: module imports target``."""
    where = {"module": "", "function": " (inside a function)", "type-checking": " (type checking)"}
    return [
        f"{imp.path}:{imp.line}: {imp.module} imports {imp.target}{where[imp.when]}"
        for imp in imports_in(root)
        for rule in rules
        if rule.broken_by(imp)
    ]


def modules_in(root: Path) -> set[str]:
    """The dotted names of every module of the package whose directory is ``root``."""
    return {_module_name(root, path) for path in root.rglob("*.py")}


def owning_module(target: str, modules: set[str]) -> str | None:
    """The module an import target lives in: ``a.b.name`` → ``a.b`` when ``a.b`` is a module."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def module_graph(root: Path) -> dict[str, set[str]]:
    """Module → the modules of the same package it imports, however and wherever it imports them
    (an import hidden in a function or under ``TYPE_CHECKING`` is still an arrow)."""
    modules = modules_in(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for imp in imports_in(root):
        target = owning_module(imp.target, modules)
        if target is not None and target != imp.module:
            graph[imp.module].add(target)
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
