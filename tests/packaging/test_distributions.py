"""The two distributions built from this repository, as a partner installs them.

Both are built with `python -m build` (sdist, then the wheel from the sdist: what a package
index gets) and installed from their wheels into fresh virtual environments, with their
dependencies from the package registry: the client without the emulator's server stack, and the
emulator on its own, with no cspgraph code there at all.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = (ROOT / "VERSION").read_text().strip()
SERVER_STACK = ("starlette", "uvicorn", "httptools")


def run(*argv: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=600, **kwargs
    )  # type: ignore[call-overload, no-any-return]


@dataclass
class Built:
    client: Path
    emulator: Path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    for project in (ROOT, ROOT / "packaging" / "csp-emulator"):
        done = run(sys.executable, "-m", "build", "--outdir", out, project)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Built(
        client=out / f"cspgraph-{VERSION}-py3-none-any.whl",
        emulator=out / f"csp_emulator-{VERSION}-py3-none-any.whl",
    )


class Venv:
    """A fresh virtual environment. It gets no pip of its own: this pip installs into it
    (``--python``), which spares the ~4 CPU seconds of ``ensurepip`` per environment and installs
    the same files; nor bytecode, which Python writes as the modules are first imported."""

    def __init__(self, path: Path) -> None:
        done = run(sys.executable, "-m", "venv", "--without-pip", path)
        assert done.returncode == 0, done.stderr
        self.bin = path / "bin"

    def install(self, *requirements: str | Path) -> None:
        done = run(sys.executable, "-m", "pip", "--python", self.bin / "python", "install", "-q",
                   "--no-compile", *requirements)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]

    def importable(self, module: str) -> bool:
        return run(self.bin / "python", "-c", f"import {module}").returncode == 0


@pytest.fixture(scope="module")
def emulator_venv(wheels: Built, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    venv = Venv(tmp_path_factory.mktemp("emulator-venv"))
    venv.install(wheels.emulator, "pytest")
    return venv


@pytest.fixture(scope="module")
def client_venv(wheels: Built, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    venv = Venv(tmp_path_factory.mktemp("client-venv"))
    venv.install(wheels.client)
    return venv


def wheel_metadata(wheel: Path) -> tuple[list[str], dict[str, list[str]]]:
    """The wheel's file names and its METADATA headers (repeated ones as lists)."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(zf.read(meta_name).decode())
    headers: dict[str, list[str]] = {}
    for key, value in message.items():
        headers.setdefault(key, []).append(value)
    return names, headers


def test_the_client_wheel_holds_the_client_alone_without_the_server_stack(wheels: Built) -> None:
    names, meta = wheel_metadata(wheels.client)
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"cspgraph"}
    assert "cspgraph/fleet/templates/fleet_report.html" in names
    assert meta["Version"] == [VERSION]
    assert meta["License-Expression"] == ["MIT"]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    core = [r for r in meta["Requires-Dist"] if "extra ==" not in r]
    assert not [r for r in core if r.startswith(SERVER_STACK)], core


def test_the_emulator_wheel_holds_the_emulator_alone_with_its_command(wheels: Built) -> None:
    names, meta = wheel_metadata(wheels.emulator)
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"csp_emulator"}
    assert meta["Name"] == ["csp-emulator"]
    assert meta["Version"] == [VERSION]  # the same VERSION file as the client's
    assert meta["License-Expression"] == ["MIT"]
    required = {r.split(">")[0].split("[")[0] for r in meta["Requires-Dist"] if "extra" not in r}
    assert set(SERVER_STACK) <= required
    assert "cspgraph" not in required and "msal" not in required
    with zipfile.ZipFile(wheels.emulator) as zf:
        entry_points = zf.read(f"csp_emulator-{VERSION}.dist-info/entry_points.txt").decode()
    assert "csp-emulator = csp_emulator.cli:main" in entry_points
    assert "csp_emulator = csp_emulator.pytest_plugin" in entry_points  # pytest11


@pytest.fixture
def served(emulator_venv: Venv, tmp_path: Path) -> Iterator[dict[str, str]]:
    """`csp-emulator serve` from the emulator's venv; its printed origins."""
    proc = subprocess.Popen(
        [emulator_venv.bin / "csp-emulator", "serve", "--customers", "2", "--state-dir", tmp_path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    text = ""
    while not text.rstrip().endswith("}"):
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        text += line
    try:
        yield json.loads(text)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 0


def test_the_emulator_serves_from_a_venv_that_has_no_cspgraph(
    emulator_venv: Venv, served: dict[str, str]
) -> None:
    assert not emulator_venv.importable("cspgraph")
    assert not emulator_venv.importable("msal")
    version = run(emulator_venv.bin / "csp-emulator", "--version")
    assert version.stdout.strip() == f"csp-emulator {VERSION}"
    trust = ssl.create_default_context(cafile=served["ca_bundle"])
    with urllib.request.urlopen(f"{served['control']}/_emulator/world", context=trust) as answer:
        world = json.load(answer)
    assert {t["domain"] for t in world["tenants"]} >= {"partner.com", "customer.com"}


def test_the_client_installs_without_the_server_stack(client_venv: Venv) -> None:
    assert client_venv.importable("cspgraph.graph")
    for module in (*SERVER_STACK, "csp_emulator"):
        assert not client_venv.importable(module), module
    version = run(client_venv.bin / "cspgraph", "--version")
    assert version.stdout.strip() == f"cspgraph {VERSION}"


@pytest.mark.parametrize("command", [["emulator", "serve"], ["demo", "--dir", "demo"]])
def test_commands_that_run_the_emulator_say_how_to_install_it(
    client_venv: Venv, command: list[str], tmp_path: Path
) -> None:
    done = run(client_venv.bin / "cspgraph", *command, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: the emulator is not installed: it is a distribution of its own, "
        "`pip install csp-emulator` (in a checkout of this repository `make demo` or "
        "`make test` installs it)"
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "demo").exists() or not any((tmp_path / "demo").iterdir())


def test_a_source_tree_without_the_server_stack_names_the_missing_module() -> None:
    # `pip install -e .` alone puts src/ (both packages) on the path, but not the emulator's
    # dependencies: the message names what is missing. (None in sys.modules refuses an import.)
    probe = (
        "import sys; sys.modules['uvicorn'] = None; sys.argv = ['cspgraph', 'emulator', 'serve']\n"
        "from cspgraph.cli.main import run; run()"
    )
    done = run(sys.executable, "-c", probe)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("installs it) (no module 'uvicorn')")


def test_the_plugins_example_runs_in_a_venv_with_only_the_emulator_and_pytest(
    emulator_venv: Venv, tmp_path: Path
) -> None:
    from tests.docs.snippets import pytest_modules

    example = pytest_modules(ROOT / "docs" / "testing-your-code.md")["test_two_tenants.py"]
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_two_tenants.py").write_text(example)
    (tmp_path / "test_no_client.py").write_text(
        "import importlib.util\n\n"
        "def test_no_cspgraph_code_is_importable_here():\n"
        "    assert importlib.util.find_spec('cspgraph') is None\n"
    )
    done = run(emulator_venv.bin / "pytest", "-q", "-p", "no:cacheprovider", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].startswith("2 passed")
