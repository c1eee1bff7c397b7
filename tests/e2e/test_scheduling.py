"""docs/scheduling.md's script (sync -> check -> notify), run as printed against the planted
world and a local webhook receiver: a scheduled run records its JSON, the channel hears of the
findings once, and a sync that cannot run stops the script with its status."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from csp_emulator.world.worldfile import DEMO_PARTNERS
from cspgraph.fleet.checks import Severity, run_checks
from cspgraph.fleet.store import Store
from tests.e2e.conftest import Planted
from tests.e2e.test_outputs import Receiver, receiver  # noqa: F401 - the local webhook
from tests.fleet_helpers import SECRET_ENV

DOC = Path(__file__).parents[2] / "docs" / "scheduling.md"


def the_script() -> str:
    text = DOC.read_text(encoding="utf-8")
    [script] = [
        block for block in re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)
        if block.startswith("#!/bin/sh")
    ]  # fmt: skip
    return script


def run(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    venv_bin = str(Path(sys.executable).parent)
    return subprocess.run(
        ["/bin/sh", str(script)],
        env={"PATH": f"{venv_bin}:{os.environ['PATH']}", "HOME": env["HOME"], **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def only(folder: Path, prefix: str) -> Any:
    [path] = folder.glob(f"{prefix}-*.json")
    assert path.stat().st_mode & 0o077 == 0  # umask 077: tenant data for the account only
    return json.loads(path.read_text())


@pytest.fixture
def setup(planted: Planted, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    config = tmp_path / "config.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "emulator": str(planted.emu.endpoints_file),
                "regions": {
                    r: {
                        "partner_tenant": DEMO_PARTNERS[r]["domain"],
                        "client_id": DEMO_PARTNERS[r]["client_id"],
                        "client_secret_env": f"CSPGRAPH_SECRET_{r}",
                    }
                    for r in DEMO_PARTNERS
                },
            }
        )
    )
    script = tmp_path / "cspgraph-scheduled"
    script.write_text(the_script())
    env = {
        **SECRET_ENV,
        "HOME": str(tmp_path / "home"),
        "CSPGRAPH_CONFIG": str(config),
        "CSPGRAPH_DB": planted.copy_of(tmp_path / "fleet.db"),
    }
    return script, env


def test_a_scheduled_run_syncs_checks_and_tells_the_channel_once(
    setup: tuple[Path, dict[str, str]],
    receiver: Receiver,  # noqa: F811
    tmp_path: Path,
) -> None:
    script, env = setup
    env = {**env, "CSPGRAPH_WEBHOOK": receiver.url, "CSPGRAPH_WEBHOOK_KIND": "teams"}
    first = run(script, {**env, "CSPGRAPH_OUT": str(tmp_path / "run1")})
    assert first.returncode == 0, first.stderr
    synced = only(tmp_path / "run1", "sync")
    assert synced["totals"]["status"] == {"ok": 4}
    checked = only(tmp_path / "run1", "check")
    with Store.open(env["CSPGRAPH_DB"]) as store:
        expected = [f.key for f in run_checks(store).findings if f.severity >= Severity.LOW]
    assert [f["key"] for f in checked["findings"] if f["severity"] != "info"] == expected
    told = only(tmp_path / "run1", "notify")
    assert told["sent"] == expected and len(receiver.bodies) == 1
    # The next hour: synced again (delta), nothing new for the channel.
    second = run(script, {**env, "CSPGRAPH_OUT": str(tmp_path / "run2")})
    assert second.returncode == 0, second.stderr
    assert only(tmp_path / "run2", "notify")["sent"] == []
    assert len(receiver.bodies) == 1
    assert receiver.url not in first.stderr + second.stderr  # the webhook is a secret


def test_a_sync_that_cannot_run_stops_the_script_with_its_status(
    setup: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    script, env = setup
    env = {**env, "CSPGRAPH_CONFIG": str(tmp_path / "absent.toml"), "CSPGRAPH_OUT": str(tmp_path)}
    done = run(script, env)
    assert done.returncode == 2
    assert "sync exited 2: not checking a store it could not update" in done.stderr
    assert not list(tmp_path.glob("check-*.json"))
