"""The emulator and the client never import each other; only the client's CLI starts the emulator,
and it imports it inside the command functions (so `cspgraph --help` never loads it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.contract.imports import Forbidden, imports_in, under, violations

SRC = Path(__file__).resolve().parents[2] / "src"
EMULATOR = SRC / "csp_emulator"
CLIENT = SRC / "cspgraph"

BOUNDARY = (
    Forbidden("csp_emulator", "cspgraph"),
    Forbidden("cspgraph", "csp_emulator", lazily_in=("cspgraph.cli",)),
)


def test_the_emulator_never_imports_the_client() -> None:
    assert violations(EMULATOR, BOUNDARY) == []


def test_the_client_imports_the_emulator_only_inside_its_cli_commands() -> None:
    assert violations(CLIENT, BOUNDARY) == []


def test_the_checker_sees_the_clis_lazy_imports_of_the_emulator() -> None:
    # The rule above would pass vacuously if the walk missed imports inside functions.
    found = {
        (imp.module, imp.target)
        for imp in imports_in(CLIENT)
        if under(imp.target, "csp_emulator") and imp.lazy
    }
    assert ("cspgraph.cli.emulator_cmd", "csp_emulator.cli.prepare") in found
    assert any(module == "cspgraph.cli.demo_cmd" for module, _ in found)


def test_the_client_cli_starts_without_loading_the_emulator() -> None:
    probe = (
        "import sys, cspgraph.cli.main\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('csp_emulator', 'uvicorn')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"


# -- the checker itself, on a small tree with deliberate bad imports -------------------------------


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_a_forbidden_import_is_reported_wherever_it_hides(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "server/__init__.py": "",
            "server/clean.py": "import json\nfrom server import clean\n",
            "server/top.py": "import client.config\n",
            "server/inside.py": """
                def handler():
                    from client import config
                    return config
            """,
            "server/classy.py": """
                class Settings:
                    import client.settings  # a class body runs with the module
            """,
            "server/deep/__init__.py": "",
            "server/deep/relative.py": "from ...client import http\n",
            "server/dynamic.py": """
                import importlib

                class Loader:
                    def load(self):
                        return importlib.import_module("client.graph")
            """,
        },
    )
    found = violations(tmp_path / "server", [Forbidden("server", "client")])
    assert [line.split(": ", 1)[1] for line in found] == [
        "server.classy imports client.settings",
        "server.deep.relative imports client.http",
        "server.dynamic imports client.graph (inside a function)",
        "server.inside imports client.config (inside a function)",
        "server.top imports client.config",
    ]
    assert all(line.startswith(str(tmp_path / "server")) for line in found)


def test_an_exempt_module_may_import_only_inside_a_function(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "client/__init__.py": "",
            "client/cli/__init__.py": "",
            "client/cli/serve.py": """
                def serve():
                    import server.app
                    return server.app
            """,
            "client/cli/eager.py": "from server import app\n",
            "client/cli/hints.py": """
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    from server.app import App
            """,
            "client/types.py": """
                import typing

                if typing.TYPE_CHECKING:
                    from server.app import App
                else:
                    import server.app
            """,
            "client/sync.py": """
                def run():
                    import server.app
            """,
        },
    )
    rule = Forbidden("client", "server", lazily_in=("client.cli",))
    found = violations(tmp_path / "client", [rule])
    assert [line.split(": ", 1)[1] for line in found] == [
        "client.cli.eager imports server.app",
        "client.sync imports server.app (inside a function)",
        "client.types imports server.app.App (type checking)",
        "client.types imports server.app",
    ]


def test_a_prefix_covers_submodules_but_not_longer_names(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "server/__init__.py": "",
            "server/ok.py": "import client_tools\nimport clientele.x\n",
            "server/bad.py": "import client\n",
        },
    )
    found = violations(tmp_path / "server", [Forbidden("server", "client")])
    assert [line.split(": ", 1)[1] for line in found] == ["server.bad imports client"]
