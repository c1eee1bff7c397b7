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
    # Directory Readers, Cloud Application Administrator (Partner Center's consent) and
    # Privileged Role Administrator (Graph's app roles), each to a group agent@ is in.
    args = ("--gdap", "--domain", FRESH_CUSTOMER, "--name", "Freshco-approved",
            "--roles", "Directory Readers,Cloud Application Administrator,"
            "Privileged Role Administrator",
            "--group", "Directory Readers=GDAP Readers",
            "--group", "Cloud Application Administrator=GDAP App Admins",
            "--group", "Privileged Role Administrator=GDAP App Admins",
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


def test_an_onboarding_stopped_while_assigning_prints_its_state_as_json_then_the_error(
    emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path)
    states = tmp_path / "states"
    # No --create-groups and no --group: the partner has no "cspgraph GDAP Directory Readers".
    args = ("--gdap", "--domain", FRESH_CUSTOMER, "--name", "Freshco-no-groups",
            "--roles", "Directory Readers", "--emulator-clock")  # fmt: skip
    invited = json.loads(onboard(config, states, *args).stdout)
    decide(emu, invited["relationship"]["id"], "approve")
    stopped = onboard(config, states, *args)
    assert stopped.exit_code == 3, stopped.output
    state = json.loads(stopped.stdout)
    assert state["state"] == "assigning"
    assert state["error"]["class"] == "needs_person"
    assert state["error"]["code"] == "GdapGroupMissing"
    # The next step names what the group stop needs, not only "again" (it would fail the same).
    assert "--create-groups or --group ROLE=GROUP" in state["next_step"]
    assert "code=GdapGroupMissing" in stopped.stderr  # the error line still ends the run
    listed = json.loads(onboard(config, states, "--status").stdout)
    assert "--create-groups" in listed[0]["next_step"]


def test_onboard_gdap_acts_as_the_technician_agent_user_names(
    emu: Emulator, tmp_path: Path
) -> None:
    signed_in(emu, tmp_path, "tech@partner.com")
    config = signed_in(emu, tmp_path)  # agent@ too: two technicians in the token cache
    states = tmp_path / "states"
    args = ("--gdap", "--domain", FRESH_CUSTOMER, "--name", "Freshco-by-agent",
            "--roles", "Directory Readers", "--emulator-clock")  # fmt: skip
    which = onboard(config, states, *args)
    assert which.exit_code == 3 and "code=AmbiguousAgent" in which.stderr, which.output
    assert not (states / f"gdap-{FRESH_CUSTOMER}.json").exists()
    chosen = onboard(config, states, *args, "--agent-user", "agent@partner.com")
    assert chosen.exit_code == 3, chosen.output  # invited: waiting for the approval
    assert json.loads(chosen.stdout)["state"] == "waiting_for_approval"


def test_agent_user_without_gdap_is_a_usage_error(emu: Emulator, tmp_path: Path) -> None:
    config = signed_in(emu, tmp_path)
    refused = onboard(config, tmp_path / "states", "--domain", "new.example.com", "--name",
                      "New", "--agent-user", "agent@partner.com")  # fmt: skip
    assert refused.exit_code == 2, refused.output
    assert "--agent-user goes with --gdap" in refused.stderr
