"""`cspgraph onboard --gdap` without --name on a customer that already has a relationship in
effect with every role asked for (Microsoft's default relationship of a new customer, say): it
uses that one instead of inviting a second that would wait for an approval nobody needs to give;
one that lacks roles is said, and a new one invited."""

from __future__ import annotations

import json
from pathlib import Path

from csp_emulator.server import Emulator
from tests.gdap.conftest import FRESH_CUSTOMER, signed_in
from tests.gdap.test_gdap_invite_status import world_relationships
from tests.gdap.test_gdap_onboarding_states import onboard

ACTIVE = "Fabrikam-GDAP-Freshco"  # Directory Readers, Cloud Application and Privileged Role Admin


def relationship_ids(emu: Emulator) -> set[str]:
    return {str(r["id"]) for r in world_relationships(emu)}


def test_an_active_relationship_with_every_role_is_used_not_a_second_invited(
    emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path)
    before = relationship_ids(emu)
    args = ("--gdap", "--domain", FRESH_CUSTOMER,
            "--roles", "Directory Readers,Cloud Application Administrator",
            "--group", "Directory Readers=GDAP Readers",
            "--group", "Cloud Application Administrator=GDAP App Admins",
            "--group", "Privileged Role Administrator=GDAP App Admins",
            "--emulator-clock")  # fmt: skip
    done = onboard(config, tmp_path / "states", *args)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["state"] == "done"
    assert result["relationship"]["name"] == ACTIVE
    assert f"using relationship {ACTIVE}" in done.stderr
    assert relationship_ids(emu) == before  # nothing invited


def test_an_active_relationship_lacking_a_role_is_said_and_a_new_one_invited(
    emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path)
    args = ("--gdap", "--domain", FRESH_CUSTOMER, "--roles", "Global Reader", "--emulator-clock")
    invited = onboard(config, tmp_path / "states", *args)
    assert invited.exit_code == 3, invited.output  # waits for the approval of the new one
    assert f"relationship {ACTIVE} is active but lacks Global Reader" in invited.stderr
    assert json.loads(invited.stdout)["relationship"]["name"] != ACTIVE
