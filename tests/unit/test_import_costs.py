"""Start-up cost: what importing a library entry point (or the CLI) loads, and what it must not.

Each check runs in a fresh interpreter, since this test process has long since imported everything.
No timings here (the machines are shared and noisy): the assertions are about which modules load.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded_after(code: str, modules: list[str]) -> set[str]:
    """Which of ``modules`` are in ``sys.modules`` after running ``code`` in a new interpreter."""
    report = f"print(json.dumps([m for m in {modules!r} if m in sys.modules]))"
    probe = f"{code}\nimport json, sys\n{report}"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


# Agent sign-in's dependencies: PyJWT, cryptography's X.509, the loopback listener.
AGENT_SIGN_IN = [
    "jwt",
    "cryptography.x509",
    "cspgraph.identity.agent",
    "cspgraph.identity.loopback",
]
# Partner set-up and onboarding: not needed to list customers or sync them.
PARTNER_SETUP = [
    "cspgraph.partner.setup",
    "cspgraph.partner.onboarding",
    "cspgraph.partner.app_credentials",
    "tomli_w",
]


def test_app_only_tokens_load_no_agent_sign_in() -> None:
    code = "import cspgraph.identity\nfrom cspgraph.identity import TokenProvider"
    assert loaded_after(code, AGENT_SIGN_IN) == set()


def test_graph_errors_load_no_client() -> None:
    # cspgraph.http.errors is imported by the identity and partner modules too.
    found = loaded_after("import cspgraph.http.errors", ["aiohttp", "cspgraph.graph.client"])
    assert found == set()


def test_fleet_customers_load_no_partner_setup_or_identity() -> None:
    found = loaded_after(
        "import cspgraph.fleet.customers",
        ["cspgraph.identity", "cspgraph.partner", "msal", *AGENT_SIGN_IN, *PARTNER_SETUP],
    )
    assert found == set()


def test_partner_center_loads_no_setup_or_onboarding() -> None:
    code = "from cspgraph.identity import PartnerCenterTokens\nimport cspgraph.partner.center"
    assert loaded_after(code, ["cryptography.x509", "jwt", *PARTNER_SETUP]) == set()


def test_fleet_sync_loads_no_rich_sign_in_or_setup() -> None:
    # A sync without a live display (--json, --no-progress, a library caller) needs no Rich.
    found = loaded_after(
        "import cspgraph.fleet.sync\nimport cspgraph.fleet.customers",
        ["rich", "rich.console", *AGENT_SIGN_IN, *PARTNER_SETUP],
    )
    assert found == set()


def test_report_figures_and_html_load_no_rich() -> None:
    # `cspgraph report --json` and the HTML page use the figures, not Rich's tables.
    found = loaded_after("import cspgraph.fleet.report_html", ["rich", "rich.table"])
    assert found == set()


def test_cli_loads_no_heavy_dependencies() -> None:
    # House rule (held before the lazy exports too; kept as a guard): command modules import
    # their heavy dependencies inside the command functions.
    found = loaded_after(
        "import cspgraph.cli.main",
        ["sqlalchemy", "aiohttp", "msal", "requests", "rich", "pydantic", "cspgraph.config"],
    )
    assert found == set()


@pytest.mark.parametrize(
    "package", ["cspgraph.http", "cspgraph.identity", "cspgraph.graph", "cspgraph.partner"]
)
def test_every_lazy_export_resolves_to_its_definition(package: str) -> None:
    code = f"""
import importlib, inspect
package = importlib.import_module({package!r})
for name in package.__all__:
    value = getattr(package, name)
    assert name in dir(package), name
    module = getattr(value, "__module__", None)
    if inspect.isclass(value) or inspect.isfunction(value):
        assert getattr(importlib.import_module(module), name) is value, name
namespace = {{}}
exec(f"from {package} import *", namespace)
missing = set(package.__all__) - set(namespace)
assert not missing, missing
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_unknown_names_and_submodules_still_behave() -> None:
    code = """
import cspgraph.graph, cspgraph.identity, cspgraph.partner
from cspgraph.graph import scope  # a submodule, not an export
assert scope.__name__ == "cspgraph.graph.scope"
for package in (cspgraph.graph, cspgraph.identity, cspgraph.partner):
    try:
        package.no_such_name
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError(package)
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
