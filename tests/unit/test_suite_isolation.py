"""The suite runs on parallel workers beside other suites (DESIGN.md, "The test suite in
parallel"): what holds it to that. Every default file of the commands is this session's own, and
no test listens on a port of its choosing."""

from __future__ import annotations

import ast
import itertools
import tempfile
from pathlib import Path

from csp_emulator.cli import default_state_dir as emulator_state_dir
from cspgraph.cli.call_audit import audit_file
from cspgraph.cli.serve_cmd import default_token_file
from cspgraph.config import default_cache_dir, default_config_path
from cspgraph.partner.onboarding import default_state_dir as onboarding_state_dir

TESTS = Path(__file__).resolve().parents[1]


def test_every_default_file_of_the_commands_is_this_sessions_own() -> None:
    defaults = {
        "configuration": default_config_path(),
        "discovery cache": default_cache_dir(),
        "call audit": audit_file(),
        "onboarding state": onboarding_state_dir(),
        "emulator CA and keys": emulator_state_dir(),
        "dashboard token": default_token_file(),
    }
    session = Path(tempfile.gettempdir()).resolve()
    for what, path in defaults.items():
        assert not path.resolve().is_relative_to(Path.home().resolve()), (what, path)
        assert path.resolve().is_relative_to(session), (what, path)
        assert "cspgraph-tests-" in str(path), (what, path)  # tests/conftest.py's homes


def _fixed_ports(tree: ast.AST) -> list[int]:
    """Literal non-zero ports a test would listen on: ``port=N``, ``"--port", "N"`` (in a list,
    a tuple or a call's arguments), ``.bind((host, N))``."""
    found: list[object] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "port":
            found.append(node.value)
        sequence = node.elts if isinstance(node, ast.List | ast.Tuple) else []
        if isinstance(node, ast.Call):
            sequence = node.args
            bound = node.args[0] if node.args else None
            if isinstance(node.func, ast.Attribute) and node.func.attr == "bind":
                found += bound.elts[-1:] if isinstance(bound, ast.Tuple) else []
        found += [v for f, v in itertools.pairwise(sequence) if _constant(f) == "--port"]
    ports = [str(_constant(value)) for value in found]
    return [int(port) for port in ports if port.isdigit() and int(port) != 0]


def _constant(node: object) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def test_no_test_listens_on_a_port_of_its_own_choosing() -> None:
    fixed = {
        path.relative_to(TESTS).as_posix(): ports
        for path in sorted(TESTS.rglob("*.py"))
        if (ports := _fixed_ports(ast.parse(path.read_text(encoding="utf-8"))))
    }
    # The local services' own ports are where those services are, not ports a test takes.
    assert fixed == {"scale/services.py": [6379]}


def test_the_port_scan_sees_each_way_of_taking_a_port() -> None:
    source = (
        "Emulator(world, port=8443)\n"
        "start('--db', db, '--port', '9000')\n"
        "sock.bind(('127.0.0.1', 5000))\n"
        "sock.bind(('127.0.0.1', 0)); start('--port', '0'); Emulator(world, port=0)\n"
    )
    assert sorted(_fixed_ports(ast.parse(source))) == [5000, 8443, 9000]
