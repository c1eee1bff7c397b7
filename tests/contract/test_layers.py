"""The client's layers, low to high, as DESIGN.md draws them:

    http ← config, clouds ← discovery ← identity ← graph ← partner ← gdap ← fleet ← distributed
        ← cli

A module imports only from its own layer or below, wherever the import statement stands (inside a
function or under ``TYPE_CHECKING`` too: a lazy arrow upwards is still an arrow upwards). No
package of the repository has an import cycle. Below the CLI, an import inside a function is a
deliberate lazy import for start-up or platform, and each one is listed in DESIGN.md's "Lazy
imports" table — the one place they are listed, read by this test, so the list cannot drift from
the code. (The CLI's command modules import their dependencies inside the commands by rule, and
the emulator package keeps its own boundary: test_package_boundary.py.)

Everything is read from the source with :mod:`ast`: nothing is imported, nothing costs start-up.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.contract.imports import (
    find_cycle,
    imports_in,
    module_graph,
    modules_in,
    owning_module,
    under,
)

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "src" / "cspgraph"
PACKAGES = {
    "cspgraph": CLIENT,
    "csp_emulator": REPO / "src" / "csp_emulator",
    "bench": REPO / "bench",
}

# Low to high. `graph` and `partner` share a rung in DESIGN.md's diagram; partner builds on the
# Graph client (set-up and onboarding call Graph), so it is the higher of the two here.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cspgraph", "cspgraph.lazy_exports"),  # the package root: __version__ and a PEP 562 helper
    ("cspgraph.http",),
    (
        "cspgraph.clouds",
        "cspgraph.config",
        "cspgraph.customer_ref",
        "cspgraph.emulator_endpoints",
        "cspgraph.emulator_partners",
    ),
    ("cspgraph.discovery",),
    ("cspgraph.identity",),
    ("cspgraph.graph",),
    ("cspgraph.partner",),
    ("cspgraph.gdap",),
    ("cspgraph.fleet",),
    ("cspgraph.distributed",),
    ("cspgraph.dashboard",),
    ("cspgraph.cli",),
)


def layer_of(module: str, layers: Sequence[Sequence[str]]) -> int:
    """The rung of ``module``: the layer whose longest prefix names it."""
    best, rung = -1, -1
    for index, prefixes in enumerate(layers):
        for prefix in prefixes:
            # The package root is a layer of its own module only, not of everything below it.
            matches = module == prefix if prefix.count(".") == 0 else under(module, prefix)
            if matches and len(prefix) > best:
                best, rung = len(prefix), index
    if rung < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and DESIGN.md's diagram")
    return rung


def upward_imports(root: Path, layers: Sequence[Sequence[str]]) -> list[str]:
    modules = modules_in(root)
    found = []
    for imp in imports_in(root):
        target = owning_module(imp.target, modules)
        if target is None:
            continue  # not this package
        if layer_of(target, layers) > layer_of(imp.module, layers):
            found.append(f"{imp.path.name}:{imp.line}: {imp.module} imports {target} ({imp.when})")
    return found


def design_lazy_imports(design: str) -> dict[str, tuple[str, ...]]:
    """DESIGN.md's "Lazy imports" table: module → the imports it makes inside functions."""
    section = design.split("\n## Lazy imports\n", 1)[1].split("\n## ", 1)[0]
    table: dict[str, tuple[str, ...]] = {}
    for row in section.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        module = cells[0].strip("`")
        table[module] = table.get(module, ()) + tuple(re.findall(r"`([\w.]+)`", cells[1]))
    return table


def undeclared_lazy_imports(
    roots: Sequence[Path], declared: dict[str, tuple[str, ...]], exempt: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Function-level imports not in ``declared``, and declared ones the code no longer makes."""
    unlisted, used = [], set()
    for root in roots:
        for imp in imports_in(root):
            if imp.when != "function" or any(under(imp.module, p) for p in exempt):
                continue
            match = next(
                (t for t in declared.get(imp.module, ()) if under(imp.target, t)),
                None,
            )
            if match is None:
                unlisted.append(f"{imp.path.name}:{imp.line}: {imp.module} imports {imp.target}")
            else:
                used.add((imp.module, match))
    stale = [
        f"{module}: {target}"
        for module, targets in declared.items()
        for target in targets
        if (module, target) not in used
    ]
    return unlisted, stale


def test_no_client_module_imports_from_a_higher_layer() -> None:
    assert upward_imports(CLIENT, LAYERS) == []


def test_every_client_module_sits_in_a_layer() -> None:
    rungs = {module: layer_of(module, LAYERS) for module in modules_in(CLIENT)}
    assert len(rungs) > 50
    assert set(rungs.values()) == set(range(len(LAYERS)))


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_a_package_has_no_import_cycle(package: str) -> None:
    graph = module_graph(PACKAGES[package])
    assert len(graph) > 10, graph  # the files were found
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph) or [])


def test_function_level_imports_below_the_cli_are_the_ones_design_lists() -> None:
    declared = design_lazy_imports((REPO / "DESIGN.md").read_text(encoding="utf-8"))
    assert "cspgraph.http.sessions" in declared  # the table was found and read
    unlisted, stale = undeclared_lazy_imports(
        [CLIENT, PACKAGES["csp_emulator"]], declared, exempt=("cspgraph.cli",)
    )
    assert unlisted == [], "list these in DESIGN.md's 'Lazy imports' table, with why"
    assert stale == [], "DESIGN.md lists lazy imports the code no longer makes"


# -- the checkers themselves, on small trees with deliberate bad imports ---------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root / "pkg"


TOY_LAYERS = (("pkg",), ("pkg.low",), ("pkg.high",))


def test_an_upward_import_is_caught_even_inside_a_function(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low/__init__.py": "",
            "pkg/low/base.py": """
                def late():
                    from pkg.high.app import run  # the arrow the layers forbid
                    return run
            """,
            "pkg/high/__init__.py": "",
            "pkg/high/app.py": "from pkg.low import base\n\ndef run(): ...\n",
        },
    )
    found = upward_imports(root, TOY_LAYERS)
    assert found == ["base.py:3: pkg.low.base imports pkg.high.app (function)"]


def test_downward_and_sideways_imports_pass(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low/__init__.py": "from pkg.low import other\n",
            "pkg/low/other.py": "import json\n",
            "pkg/high/__init__.py": "from pkg.low.other import json\n",
        },
    )
    assert upward_imports(root, TOY_LAYERS) == []


def test_a_module_outside_every_layer_is_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"pkg/__init__.py": "", "pkg/stray.py": "import pkg\n"})
    with pytest.raises(AssertionError, match=r"pkg\.stray is in no layer"):
        upward_imports(root, TOY_LAYERS)


def test_a_cycle_hidden_in_a_function_or_type_checking_is_found(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/report.py": "def render():\n    from pkg.report_html import write\n",
            "pkg/report_html.py": "from pkg.report import helper\n",
            "pkg/progress.py": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from .sync import Summary
            """,
            "pkg/sync.py": "from pkg import progress\n",
        },
    )
    graph = module_graph(root)
    assert graph["pkg.report"] == {"pkg.report_html"}
    assert find_cycle(graph) == ["pkg.progress", "pkg.sync", "pkg.progress"]
    del graph["pkg.progress"]
    assert find_cycle(graph) == ["pkg.report", "pkg.report_html", "pkg.report"]


def test_an_unlisted_lazy_import_and_a_stale_listing_are_both_reported(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/cli.py": "def command():\n    import heavy\n",
            "pkg/store.py": "def pg():\n    from sqlalchemy.dialects import postgresql\n",
            "pkg/net.py": "def fetch():\n    import aiohttp\n",
        },
    )
    design = textwrap.dedent(
        """
        ## Lazy imports

        | module | imports inside functions | why |
        |---|---|---|
        | `pkg.store` | `sqlalchemy.dialects.postgresql` | PostgreSQL stores only |
        | `pkg.gone` | `yarl` | a module that no longer does this |

        ## Next
        """
    )
    declared = design_lazy_imports(design)
    assert declared == {"pkg.store": ("sqlalchemy.dialects.postgresql",), "pkg.gone": ("yarl",)}
    unlisted, stale = undeclared_lazy_imports([root], declared, exempt=("pkg.cli",))
    assert unlisted == ["net.py:2: pkg.net imports aiohttp"]
    assert stale == ["pkg.gone: yarl"]
