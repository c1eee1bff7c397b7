"""One emulator per state directory (issue 15, gap 9): a second `serve` on the directory another
emulator serves from is refused, leaving the first's endpoints file alone, and the endpoints file
goes when its emulator stops, so a configuration never talks to an emulator that is not there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from csp_emulator.server import Emulator
from csp_emulator.state_lock import StateDirInUse
from csp_emulator.world.worldfile import demo_world
from tests.e2e.test_emulator_serve import COMMANDS, _origins, wait_for_file


def _serve(command: str, state: Path) -> subprocess.Popen[str]:
    argv = [*COMMANDS[command], "serve", "--customers", "1", "--state-dir", str(state)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("command", ["csp-emulator", "cspgraph emulator"])
def test_a_second_serve_on_a_state_dir_in_use_is_refused(command: str, tmp_path: Path) -> None:
    first = _serve("csp-emulator", tmp_path)
    try:
        origins = _origins(first)
        endpoints = wait_for_file(tmp_path / "endpoints.json")
        before = endpoints.read_text()
        second = subprocess.run(
            [*COMMANDS[command], "serve", "--state-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2
        assert second.stderr.strip() == (
            f"error: cannot start the emulator: another emulator (pid {first.pid}) is serving "
            f"from {tmp_path}: stop it, or give this one a --state-dir of its own"
        )
        assert endpoints.read_text() == before  # the first one's file, untouched
        assert json.loads(before)["control"] == origins["control"]
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 0
    assert not (tmp_path / "endpoints.json").exists()
    # Released with its process: the directory serves again.
    again = _serve("csp-emulator", tmp_path)
    try:
        assert _origins(again)["endpoints_file"] == str(tmp_path / "endpoints.json")
        wait_for_file(tmp_path / "endpoints.json")  # serving: Ctrl-C now is a clean stop
    finally:
        again.send_signal(signal.SIGINT)
        again.communicate(timeout=60)
    assert again.returncode == 0


def test_an_emulator_in_a_process_holds_its_state_dir_until_it_stops(tmp_path: Path) -> None:
    with Emulator(lambda: demo_world(1), state_dir=tmp_path) as emu:
        assert (tmp_path / "endpoints.json").exists()
        with pytest.raises(StateDirInUse, match=f"pid {os.getpid()}"):
            Emulator(lambda: demo_world(1), state_dir=tmp_path)
        assert emu.endpoints_file.exists()
    assert not (tmp_path / "endpoints.json").exists()
    with Emulator(lambda: demo_world(1), state_dir=tmp_path):
        pass


def test_a_crashed_emulator_leaves_no_lock_behind(tmp_path: Path) -> None:
    # The kernel drops an flock with its process: kill -9 must not wedge the directory.
    proc = _serve("csp-emulator", tmp_path)
    _origins(proc)
    proc.kill()
    proc.communicate(timeout=60)
    with Emulator(lambda: demo_world(1), state_dir=tmp_path) as emu:
        assert emu.endpoints_file.exists()
