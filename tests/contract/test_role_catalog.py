"""Entra's built-in roles are written down once, in ``builtin_roles.json``: the emulator reads
it (``csp_emulator/roles.py``) and cspgraph reads the same file (``cspgraph/gdap/roles.py``,
through ``cspgraph/gdap/builtin_roles.json``, a link to it), and each distribution ships it as
package data. Neither package imports the other (test_package_boundary.py)."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from csp_emulator import roles as server_roles
from cspgraph.gdap import roles as client_roles

REPO = Path(__file__).resolve().parents[2]


def test_the_client_and_the_emulator_read_one_role_catalog() -> None:
    client = resources.files("cspgraph.gdap").joinpath("builtin_roles.json")
    server = resources.files("csp_emulator").joinpath("builtin_roles.json")
    assert client.read_text() == server.read_text()
    linked = REPO / "src" / "cspgraph" / "gdap" / "builtin_roles.json"
    assert linked.is_symlink()
    assert linked.resolve() == (REPO / "src" / "csp_emulator" / "builtin_roles.json").resolve()


def test_both_sides_name_the_same_roles_the_same_way() -> None:
    assert client_roles.ROLE_NAMES == server_roles.GDAP_ROLES
    for name in ("GLOBAL_ADMINISTRATOR", "DIRECTORY_READERS", "PRIVILEGED_ROLE_ADMINISTRATOR",
                 "CLOUD_APPLICATION_ADMINISTRATOR", "INTUNE_ADMINISTRATOR"):  # fmt: skip
        assert getattr(client_roles, name) == getattr(server_roles, name)
    assert server_roles.GLOBAL_ADMINISTRATOR == "62e90394-69f5-4237-9190-012177145e10"


def test_each_distribution_ships_the_catalog_as_package_data() -> None:
    client = tomllib.loads((REPO / "pyproject.toml").read_text())
    emulator = tomllib.loads((REPO / "packaging" / "csp-emulator" / "pyproject.toml").read_text())
    assert "gdap/builtin_roles.json" in client["tool"]["setuptools"]["package-data"]["cspgraph"]
    assert "builtin_roles.json" in emulator["tool"]["setuptools"]["package-data"]["csp_emulator"]
