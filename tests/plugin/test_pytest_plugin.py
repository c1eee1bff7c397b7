"""The emulator's pytest plugin, as a partner's suite uses it: each test here writes a small
suite into a temporary directory and runs pytest on it in a child process (the plugin comes
from the installed csp-emulator's entry point, as it would for them).

The examples of docs/testing-your-code.md are run exactly as printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.snippets import ROOT, pytest_modules

GUIDE = ROOT / "docs" / "testing-your-code.md"


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=600,
    )


def suite(tmp_path: Path, files: dict[str, str], ini: str = "") -> Path:
    (tmp_path / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def outcome(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr


@pytest.mark.parametrize(
    "module", ["test_my_msal_code.py", "test_my_sdk_code.py", "test_two_tenants.py"]
)
def test_the_guides_examples_pass_as_printed(module: str, tmp_path: Path) -> None:
    examples = pytest_modules(GUIDE)
    done = run_pytest(suite(tmp_path, {module: examples[module]}))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    counts = {"test_my_msal_code.py": 4, "test_my_sdk_code.py": 1, "test_two_tenants.py": 1}
    assert f"{counts[module]} passed" in outcome(done)


PROBE = """
import json, os

def test_record_which_emulator(csp_emulator, csp_requests, tmp_path_factory):
    health = csp_requests.get(f"{csp_emulator.endpoints.control}/_emulator/health").json()
    assert health["status"] == "ok"
    out = os.environ["PROBE_OUT"]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(os.path.join(out, worker + ".json"), "w") as f:
        json.dump({"control": csp_emulator.endpoints.control, "pid": os.getpid()}, f)
"""


def test_each_xdist_worker_gets_an_emulator_of_its_own(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "suite").mkdir()
    directory = suite(tmp_path / "suite", {f"test_probe_{i}.py": PROBE for i in range(4)})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "2"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PROBE_OUT": str(out)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    seen = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(seen) == {"gw0", "gw1"}  # both workers ran tests
    assert seen["gw0"]["pid"] != seen["gw1"]["pid"]
    assert seen["gw0"]["control"] != seen["gw1"]["control"]  # one emulator per worker


def test_the_ini_option_picks_the_world_and_reset_rebuilds_it(tmp_path: Path) -> None:
    world = (
        "[[tenant]]\ndomain = 'tailspin-partner.com'\nkind = 'partner'\n"
        "[[tenant]]\ndomain = 'wingtip.com'\npartner = 'tailspin-partner.com'\n"
        "generate = { users = 2, seed = 1 }\n"
    )
    tests = """
import pytest

def test_the_world_of_the_ini_option(csp_emulator):
    assert {t.default_domain for t in csp_emulator.world.tenants.values()} == {
        "tailspin-partner.com", "wingtip.com"}

def test_changes_stay_until_a_reset(csp_emulator):
    before = csp_emulator.now()
    csp_emulator.advance("1h")
    assert csp_emulator.now() >= before + 3600

def test_a_reset_rebuilds_the_world(csp_emulator_reset, csp_emulator_world):
    import time
    assert abs(csp_emulator_reset.now() - time.time()) < 600   # the hour moved is gone
    assert csp_emulator_world.name == "world.toml"

@pytest.mark.csp_emulator(world="demo:1")
def test_a_marker_serves_another_world(csp_emulator):
    assert csp_emulator.world.tenant("customer.com") is not None
"""
    directory = suite(
        tmp_path,
        {"world.toml": world, "test_worlds.py": tests},
        ini="csp_emulator_world = world.toml",
    )
    done = run_pytest(directory)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "4 passed" in outcome(done)


def test_a_world_file_it_cannot_read_fails_the_test_with_the_files_message(
    tmp_path: Path,
) -> None:
    tests = "def test_needs_it(csp_emulator):\n    pass\n"
    directory = suite(
        tmp_path,
        {"world.toml": "[[tenant]]\nkind = 'partner'\n", "test_bad.py": tests},
        ini="csp_emulator_world = world.toml",
    )
    done = run_pytest(directory)
    assert done.returncode == 1
    assert "csp_emulator: " in done.stdout and "world.toml" in done.stdout
    assert "domain" in done.stdout  # the key at fault, from the world file's own validation
