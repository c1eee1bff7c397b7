"""`cspgraph gdap assign` against the emulator: one security group per role, assignments created
and followed until active on the world clock (never a sleep), a change of roles followed through
its operation, a second run that changes nothing, and the technicians left without a role."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from csp_emulator.server import Emulator
from cspgraph.gdap.api import Relationship
from cspgraph.gdap.assign import assign, group_name
from cspgraph.gdap.invite import InviteRequest, invite
from cspgraph.gdap.roles import (
    CLOUD_APPLICATION_ADMINISTRATOR,
    DIRECTORY_READERS,
    HELPDESK_ADMINISTRATOR,
    INTUNE_ADMINISTRATOR,
    PRIVILEGED_ROLE_ADMINISTRATOR,
    USER_ADMINISTRATOR,
)
from cspgraph.gdap.session import GdapSession
from cspgraph.http.errors import NeedsPersonError, PropagatingError
from cspgraph.identity import TokenProvider
from cspgraph.partner.onboarding import EmulatorClock
from tests.conftest import MakeEmulator
from tests.emulator.gdap_world import ACTIVE_NAME, GDAP_CUSTOMER, PARTNER
from tests.emulator.graph_tokens import control_client, tenant_of
from tests.gdap.conftest import (
    gdap_cli,
    gdap_config,
    gdap_world_for_ops,
    sign_in_agent,
    signed_in,
)

ROLES = (DIRECTORY_READERS, CLOUD_APPLICATION_ADMINISTRATOR)


@pytest.fixture
async def clock(emu: Emulator) -> AsyncIterator[EmulatorClock]:
    made = await EmulatorClock.connect(emu.endpoints.control, ca_bundle=emu.endpoints.ca_bundle)
    yield made
    await made.aclose()


def approve(emu: Emulator, rel_id: str) -> None:
    with control_client(emu) as control:
        answer = control.post(f"/gdap/{rel_id}/approve")
        assert answer.status_code == 200, answer.text
    emu.advance(181)  # activation takes the world's propagation_delay


def world_assignments(emu: Emulator, rel_id: str) -> list[dict[str, Any]]:
    with control_client(emu) as control:
        found = [r for r in control.get("/gdap").json()["value"] if r["id"] == rel_id]
    assignments: list[dict[str, Any]] = found[0]["assignments"]
    return assignments


def partner_groups(emu: Emulator) -> dict[str, str]:
    partner = tenant_of(emu, PARTNER)
    return {g["displayName"]: g["id"] for g in partner.objects["groups"].values()}


async def approved(emu: Emulator, gdap: GdapSession, name: str) -> Relationship:
    customer = tenant_of(emu, GDAP_CUSTOMER).id
    made = await invite(gdap.api, InviteRequest(name, ROLES, customer_id=customer))
    approve(emu, made.relationship.id)
    return await gdap.api.relationship(made.relationship.id)


async def test_create_groups_makes_one_group_per_role_and_waits_until_active(
    emu: Emulator, gdap: GdapSession, clock: EmulatorClock
) -> None:
    rel = await approved(emu, gdap, "Assign-me")
    assert rel.status == "active"
    result = await assign(gdap.api, rel, create_groups=True, clock=clock)
    groups = partner_groups(emu)
    assert "cspgraph GDAP Directory Readers" in groups
    assert group_name(CLOUD_APPLICATION_ADMINISTRATOR) in groups
    assert result.all_active and len(result.assignments) == 2
    assert sorted(result.created) == sorted(a.id for a in result.assignments)
    # Created pending; active once the world's assignment_delay (1 minute) has passed, which the
    # wait spent on the world clock in 15-second polls.
    assert result.waited >= 60
    in_world = world_assignments(emu, rel.id)
    assert sorted(a["status"] for a in in_world) == ["active", "active"]
    by_group = {a["group_id"]: a["roles"] for a in in_world}
    assert by_group[groups["cspgraph GDAP Directory Readers"]] == [DIRECTORY_READERS]


async def test_a_second_run_changes_nothing_and_waits_for_nothing(
    emu: Emulator, gdap: GdapSession, clock: EmulatorClock
) -> None:
    rel = await approved(emu, gdap, "Assign-twice")
    await assign(gdap.api, rel, create_groups=True, clock=clock)
    again = await assign(gdap.api, rel, create_groups=True, clock=clock)
    assert (again.created, again.changed, again.waited) == ([], [], 0.0)
    assert len(world_assignments(emu, rel.id)) == 2


async def test_an_interrupted_run_resumes_from_pending_assignments(
    emu: Emulator, gdap: GdapSession, clock: EmulatorClock
) -> None:
    rel = await approved(emu, gdap, "Assign-resume")
    first = await assign(gdap.api, rel, create_groups=True, wait=False, clock=clock)
    assert {a.status for a in first.assignments} == {"pending"}
    resumed = await assign(gdap.api, rel, create_groups=True, clock=clock)
    assert resumed.created == [] and resumed.all_active


async def test_a_missing_group_without_create_groups_needs_a_person_and_names_it(
    emu: Emulator, gdap: GdapSession, clock: EmulatorClock
) -> None:
    rel = await approved(emu, gdap, "Assign-nogroup")
    with pytest.raises(NeedsPersonError, match="cspgraph GDAP Directory Readers"):
        await assign(gdap.api, rel, clock=clock)
    assert world_assignments(emu, rel.id) == []


async def test_a_relationship_still_waiting_for_approval_is_refused_as_needing_a_person(
    emu: Emulator, gdap: GdapSession, clock: EmulatorClock
) -> None:
    made = await invite(gdap.api, InviteRequest("Not-yet", ROLES))
    with pytest.raises(NeedsPersonError, match="has not approved it yet"):
        await assign(gdap.api, made.relationship, create_groups=True, clock=clock)


async def test_an_activating_relationship_is_propagating(
    emu: Emulator, gdap: GdapSession, clock: EmulatorClock
) -> None:
    customer = tenant_of(emu, GDAP_CUSTOMER).id
    made = await invite(gdap.api, InviteRequest("Activating", ROLES, customer_id=customer))
    with control_client(emu) as control:
        assert control.post(f"/gdap/{made.relationship.id}/approve").status_code == 200
    rel = await gdap.api.relationship(made.relationship.id)
    with pytest.raises(PropagatingError, match=r"activating|approved"):
        await assign(gdap.api, rel, create_groups=True, clock=clock)


async def test_changing_a_groups_roles_is_followed_through_its_operation(
    emu: Emulator, gdap: GdapSession, clock: EmulatorClock
) -> None:
    (rel,) = [r for r in await gdap.api.relationships() if r.display_name == ACTIVE_NAME]
    placed = {
        DIRECTORY_READERS: "GDAP Readers",
        HELPDESK_ADMINISTRATOR: "GDAP Readers",  # unassigned so far: joins the readers' group
        USER_ADMINISTRATOR: "GDAP User Admins",
        INTUNE_ADMINISTRATOR: "GDAP Intune",
        CLOUD_APPLICATION_ADMINISTRATOR: "GDAP App Admins",
        PRIVILEGED_ROLE_ADMINISTRATOR: "GDAP App Admins",
    }
    result = await assign(gdap.api, rel, groups=placed, clock=clock)
    assert result.created == [] and len(result.changed) == 1
    operations = await gdap.api.operations(rel.id)
    assert [o["status"] for o in operations] == ["succeeded"]
    readers = partner_groups(emu)["GDAP Readers"]
    by_group = {a["group_id"]: a["roles"] for a in world_assignments(emu, rel.id)}
    assert sorted(by_group[readers]) == sorted([DIRECTORY_READERS, HELPDESK_ADMINISTRATOR])


async def test_technicians_in_admin_agents_without_a_role_in_the_customer_are_named(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    world = gdap_world_for_ops()
    world["tenant"][0]["user"].append(
        {"upn": "newtech@partner.com", "password": "P@ss-new", "groups": ["AdminAgents"]}
    )
    emu = make_emulator(world)
    async with TokenProvider(gdap_config(emu, tmp_path), workers=2) as provider:
        sign_in_agent(emu, provider)
        async with GdapSession.open(provider) as gdap:
            (rel,) = [r for r in await gdap.api.relationships() if r.display_name == ACTIVE_NAME]
            placed = {r: g for r, g in [
                (DIRECTORY_READERS, "GDAP Readers"), (HELPDESK_ADMINISTRATOR, "GDAP Readers"),
                (USER_ADMINISTRATOR, "GDAP User Admins"), (INTUNE_ADMINISTRATOR, "GDAP Intune"),
                (CLOUD_APPLICATION_ADMINISTRATOR, "GDAP App Admins"),
                (PRIVILEGED_ROLE_ADMINISTRATOR, "GDAP App Admins")]}  # fmt: skip
            result = await assign(gdap.api, rel, groups=placed, wait=False)
    # agent@ holds roles through GDAP Readers (nested GDAP Helpdesk); newtech@ holds none.
    assert result.technicians_unknown is None
    assert result.technicians_without_role == ["newtech@partner.com"]


def test_the_assign_command_prints_json_and_refuses_a_relationship_it_cannot_find(
    emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path)
    missing = gdap_cli(config, "assign", "--relationship", "nobody", "--create-groups")
    assert missing.exit_code == 2 and "no such relationship" in missing.stderr
    groups = ["--group", "Directory Readers,=x"]
    bad = gdap_cli(config, "assign", "--customer", GDAP_CUSTOMER, *groups)
    assert bad.exit_code == 2, bad.output
    result = gdap_cli(config, "assign", "--customer", GDAP_CUSTOMER, "--group",
                      "Helpdesk Administrator=GDAP Readers", "--create-groups",
                      "--emulator-clock")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["relationship"]["name"] == ACTIVE_NAME
    assert {a["status"] for a in data["assignments"]} == {"active"}
    assert data["technicians_without_role"] == []


def test_assign_by_customer_says_what_a_person_does_when_its_relationship_waits_or_ended(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    """Not "invite the customer first" (exit 2) for a customer who has a relationship: the one
    waiting for approval is "send the link again", the one that ended "invite again", exit 3 as
    with --relationship."""
    world = gdap_world_for_ops()
    for domain, name, status in (("waitco.com", "Fabrikam-Waitco", "approvalPending"),
                                 ("endco.com", "Fabrikam-Endco", "expired")):  # fmt: skip
        world["tenant"].append({"domain": domain, "partner": PARTNER, "dap": False})
        world["gdap"].append(
            {
                "partner": PARTNER,
                "customer": domain,
                "display_name": name,
                "roles": ["Directory Readers"],
                "status": status,
            }
        )
    config = signed_in(make_emulator(world), tmp_path)
    waiting = gdap_cli(config, "assign", "--customer", "waitco.com", "--create-groups")
    assert waiting.exit_code == 3, waiting.output
    assert "Fabrikam-Waitco" in waiting.stderr and "has not approved it yet" in waiting.stderr
    ended = gdap_cli(config, "assign", "--customer", "endco.com", "--create-groups")
    assert ended.exit_code == 3, ended.output
    assert "Fabrikam-Endco" in ended.stderr and "invite the customer again" in ended.stderr
    none = gdap_cli(config, "assign", "--customer", "dapco.com", "--create-groups")
    assert none.exit_code == 2 and "invite the customer first" in none.stderr
