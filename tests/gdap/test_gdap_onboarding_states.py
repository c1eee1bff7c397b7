"""`cspgraph onboard --gdap` through its states without a browser (the customer's decision made
through the emulator's control API, which runs the approval page's code): a decline stops the
onboarding with what to do, an interrupted consent resumes where it stopped, and
`onboard --status` follows the state files."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from csp_emulator.server import Emulator
from cspgraph.cli.main import app
from tests.emulator.graph_tokens import control_client
from tests.gdap.conftest import FRESH_CUSTOMER, SECRET_ENV, signed_in


def onboard(config: Path, states: Path, *args: str) -> Result:
    return CliRunner().invoke(
        app,
        ["onboard", *args, "--state-dir", str(states), "--config", str(config)],
        env=SECRET_ENV,
    )


def decide(emu: Emulator, rel_id: str, decision: str) -> None:
    with control_client(emu) as control:
        answer = control.post(f"/gdap/{rel_id}/{decision}")
        assert answer.status_code == 200, answer.text


def test_a_declined_relationship_stops_the_onboarding_with_what_to_do(
    emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path)
    states = tmp_path / "states"
    args = ("--gdap", "--domain", FRESH_CUSTOMER, "--roles", "Directory Readers",
            "--name", "Freshco-declined", "--emulator-clock")  # fmt: skip
    first = onboard(config, states, *args)
    assert first.exit_code == 3, first.output
    invited = json.loads(first.stdout)
    decide(emu, invited["relationship"]["id"], "decline")
    again = onboard(config, states, *args)
    assert again.exit_code == 3, again.output
    assert "declined or ended" in again.stderr and "code=GdapEnded" in again.stderr
    listed = json.loads(onboard(config, states, "--status").stdout)
    assert [(i["domain"], i["state"]) for i in listed] == [(FRESH_CUSTOMER, "waiting_for_approval")]
    assert "declined or ended" in listed[0]["last_error"]


def test_an_approved_relationship_is_carried_to_done_and_leaves_the_in_flight_list(
    emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path)
    states = tmp_path / "states"
    # Directory Readers and Cloud Application Administrator, each to a group agent@ is in.
    args = ("--gdap", "--domain", FRESH_CUSTOMER, "--name", "Freshco-approved",
            "--roles", "Directory Readers,Cloud Application Administrator",
            "--group", "Directory Readers=GDAP Readers",
            "--group", "Cloud Application Administrator=GDAP App Admins",
            "--emulator-clock")  # fmt: skip
    invited = json.loads(onboard(config, states, *args).stdout)
    decide(emu, invited["relationship"]["id"], "approve")
    done = onboard(config, states, *args)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["state"] == "done" and result["resumed"] is True
    assert result["organization"] is not None
    assert json.loads(onboard(config, states, "--status").stdout) == []
    # Done stays done: a further run changes nothing and says so.
    again = onboard(config, states, *args)
    assert again.exit_code == 0 and json.loads(again.stdout)["state"] == "done"
