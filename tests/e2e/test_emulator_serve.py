"""The three ways to run the emulator in the foreground take the same options and answer alike:
`csp-emulator serve`, `python -m csp_emulator serve` and `cspgraph emulator serve`."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from csp_emulator.cli import banner, prepare

BIN = Path(sys.executable).parent
COMMANDS = {
    "csp-emulator": [str(BIN / "csp-emulator")],
    "python -m csp_emulator": [sys.executable, "-m", "csp_emulator"],
    "cspgraph emulator": [str(BIN / "cspgraph"), "emulator"],
}


def wait_for_file(path: Path) -> Path:
    """``path`` once it exists: the endpoints file is written a moment after the origins are
    printed, once the ports serve (bounded by a deadline, not a sleep)."""
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.01)
    return path


def _origins(proc: subprocess.Popen[str]) -> dict[str, object]:
    """The JSON document a serving command prints first when its stdout is a pipe."""
    assert proc.stdout is not None
    text = ""
    while not text.rstrip().endswith("}"):
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        text += line
    origins: dict[str, object] = json.loads(text)
    return origins


@pytest.mark.parametrize("command", COMMANDS)
def test_each_serve_command_serves_the_demo_world_until_interrupted(
    command: str, tmp_path: Path
) -> None:
    argv = [*COMMANDS[command], "serve", "--customers", "3", "--state-dir", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        origins = _origins(proc)
        # two partner tenants, the three customers asked for and the GDAP half's seven tenants
        assert origins["tenants"] == 5 + 7
        assert origins["ca_bundle"] == str(tmp_path / "ca.pem")
        assert origins["endpoints_file"] == str(tmp_path / "endpoints.json")
        # The ports are bound before the origins are printed: a request now waits, never fails.
        trust = ssl.create_default_context(cafile=str(origins["ca_bundle"]))
        url = f"{origins['control']}/_emulator/world"
        world = httpx.get(url, verify=trust, timeout=30).json()
        assert {t["domain"] for t in world["tenants"]} >= {"partner.com", "customer.com"}
        written = json.loads(wait_for_file(tmp_path / "endpoints.json").read_text())
        assert written == {k: origins[k] for k in written}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err  # Ctrl-C is how the emulator stops
    assert "Ctrl-C to stop." in err
    # Nothing listens there any more: the endpoints file goes with the emulator.
    assert not (tmp_path / "endpoints.json").exists()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--host", "0.0.0.0"], "the emulator listens on loopback only"),
        (["--world", "missing.toml"], "missing.toml: no such world file"),
        (["--customers", "-1"], "--customers"),
    ],
)
def test_each_serve_command_refuses_bad_options_with_exit_2(
    command: str, options: list[str], message: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [*COMMANDS[command], "serve", "--state-dir", str(tmp_path), *options],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "endpoints.json").exists()


def test_the_terminal_banner_names_every_origin_and_the_ca_bundle(tmp_path: Path) -> None:
    emulator = prepare(world=None, customers=1, state_dir=tmp_path)
    try:
        lines = banner(emulator, "csp-emulator").splitlines()
    finally:
        emulator.stop()
    e = emulator.endpoints
    assert lines[0] == "csp-emulator: 10 tenants"  # 2 partners, 1 customer, the GDAP half's 7
    assert lines[-1] == "Ctrl-C to stop."
    shown = " ".join(lines)
    for value in (e.authority_host, e.graph, e.partner_center, e.ca_bundle):
        assert value in shown
    assert f"{e.control}/_emulator/world" in shown
    assert str(tmp_path / "endpoints.json") in shown
