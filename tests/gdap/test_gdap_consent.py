"""`cspgraph gdap consent` against the emulator: Partner Center's consent of exactly the delegated
scopes cspgraph needs, the sync's app roles granted through Graph with the technician's GDAP
token, drift detected and put right, and the wait for propagation with a new token per attempt
on the world clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from csp_emulator import wellknown
from csp_emulator.server import Emulator
from cspgraph.gdap.consent import consent_customer, delegated_scopes
from cspgraph.gdap.roles import sync_application_permissions
from cspgraph.gdap.session import GdapSession
from cspgraph.partner.onboarding import EmulatorClock
from tests.emulator.gdap_world import APP_ID, GDAP_CUSTOMER
from tests.emulator.graph_tokens import tenant_of
from tests.gdap.conftest import (
    FRESH_CUSTOMER,
    MakeEmulator,
    consent_as_the_customers_admin,
    gdap_cli,
    gdap_world_for_ops,
    signed_in,
)


@pytest.fixture
async def clock(emu: Emulator) -> AsyncIterator[EmulatorClock]:
    made = await EmulatorClock.connect(emu.endpoints.control, ca_bundle=emu.endpoints.ca_bundle)
    yield made
    await made.aclose()


def consent_in_world(emu: Emulator, domain: str) -> tuple[set[str], set[str]]:
    """(the tenant-wide grant's scopes, the app roles of Graph assigned to the app) in a
    customer, read from the world itself."""
    tenant = tenant_of(emu, domain)
    sp = tenant.service_principal_by_app_id(APP_ID)
    graph = tenant.service_principal_by_app_id(wellknown.GRAPH_APP_ID)
    assert sp is not None and graph is not None
    scopes = {
        s
        for g in tenant.objects["oauth2PermissionGrants"].values()
        if g.get("clientId") == sp["id"] and g.get("consentType") == "AllPrincipals"
        for s in str(g.get("scope") or "").split()
    }
    names = {str(r["id"]).lower(): str(r["value"]) for r in graph.get("appRoles", [])}
    roles = {
        names.get(str(a["appRoleId"]).lower(), a["appRoleId"])
        for a in tenant.objects["appRoleAssignments"].values()
        if a.get("principalId") == sp["id"] and a.get("resourceId") == graph["id"]
    }
    return scopes, roles


async def test_a_first_consent_grants_exactly_what_cspgraph_needs_and_waits_with_new_tokens(
    emu: Emulator, gdap: GdapSession, clock: EmulatorClock
) -> None:
    customer = tenant_of(emu, FRESH_CUSTOMER).id
    result = await consent_customer(gdap, customer, clock=clock)
    assert result.partner_center == "created" and result.drift == []
    assert result.done, result.as_dict()
    assert sorted(result.app_roles_added) == sorted(sync_application_permissions())
    # The technician's token is denied until the consent reaches the customer (consent_delay),
    # then a new one gets in.
    assert not result.technician_attempts[0].ok and result.technician_attempts[-1].ok
    # The app's first token after the grant lacks the roles (they arrive consent_delay after
    # they were granted); the next attempt, with a new token, has them.
    assert not result.attempts[0].ok and result.attempts[-1].ok
    assert len(result.attempts) >= 2
    scopes, roles = consent_in_world(emu, FRESH_CUSTOMER)
    assert scopes == set(delegated_scopes())
    assert roles == set(sync_application_permissions())


async def test_a_second_consent_finds_everything_in_place_and_changes_nothing(
    emu: Emulator, gdap: GdapSession, clock: EmulatorClock
) -> None:
    customer = tenant_of(emu, FRESH_CUSTOMER).id
    await consent_customer(gdap, customer, clock=clock)
    before = consent_in_world(emu, FRESH_CUSTOMER)
    again = await consent_customer(gdap, customer, clock=clock)
    assert again.partner_center == "already there"
    assert again.app_roles_added == [] and again.drift == []
    assert [a.ok for a in again.attempts] == [True]
    assert consent_in_world(emu, FRESH_CUSTOMER) == before


async def test_a_consent_with_other_scopes_is_detected_as_drift_and_put_right(
    emu: Emulator, gdap: GdapSession, clock: EmulatorClock
) -> None:
    # The world consented the app in gdapco with the app's own delegated permissions and only
    # some of the sync's app roles: Partner Center answers 409, which is not taken for done.
    customer = tenant_of(emu, GDAP_CUSTOMER).id
    result = await consent_customer(gdap, customer, clock=clock)
    assert result.partner_center == "corrected"
    assert any("delegated scopes missing" in d for d in result.drift)
    assert result.done
    scopes, roles = consent_in_world(emu, GDAP_CUSTOMER)
    assert scopes == set(delegated_scopes())
    assert roles >= set(sync_application_permissions())


async def test_an_app_role_removed_in_the_customer_is_granted_again(
    emu: Emulator, gdap: GdapSession, clock: EmulatorClock
) -> None:
    customer = tenant_of(emu, FRESH_CUSTOMER).id
    await consent_customer(gdap, customer, clock=clock)
    tenant = tenant_of(emu, FRESH_CUSTOMER)
    sp = tenant.service_principal_by_app_id(APP_ID)
    assert sp is not None
    removed = next(
        a for a in tenant.objects["appRoleAssignments"].values() if a.get("principalId") == sp["id"]
    )
    tenant.remove("appRoleAssignments", removed["id"], reason="deleted")
    lost = sync_application_permissions()
    again = await consent_customer(gdap, customer, clock=clock)
    assert len(again.app_roles_added) == 1 and again.app_roles_added[0] in lost
    assert any("app roles missing" in d for d in again.drift)
    assert again.done
    assert consent_in_world(emu, FRESH_CUSTOMER)[1] == set(lost)


def test_the_consent_command_prints_json_and_exits_0_when_done(
    emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path)
    result = gdap_cli(config, "consent", "--customer", FRESH_CUSTOMER, "--emulator-clock")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["done"] is True and data["partner_center"] == "created"
    assert data["attempts"][0]["ok"] is False and data["attempts"][-1]["ok"] is True


async def test_app_roles_beyond_what_cspgraph_needs_are_reported_and_left_in_place(
    emu: Emulator, gdap: GdapSession, clock: EmulatorClock
) -> None:
    customer = tenant_of(emu, FRESH_CUSTOMER).id
    await consent_customer(gdap, customer, clock=clock)
    tenant = tenant_of(emu, FRESH_CUSTOMER)
    sp, graph = (tenant.service_principal_by_app_id(a) for a in (APP_ID, wellknown.GRAPH_APP_ID))
    assert sp is not None and graph is not None
    extra = next(r for r in graph["appRoles"] if r["value"] == "Group.Read.All")
    body = {"principalId": sp["id"], "resourceId": graph["id"], "appRoleId": extra["id"]}
    await gdap.graph.post(customer, f"/servicePrincipals/{graph['id']}/appRoleAssignedTo", body)
    again = await consent_customer(gdap, customer, clock=clock)
    assert again.drift == ["app roles beyond what cspgraph needs: Group.Read.All (left in place)"]
    assert again.app_roles_added == [] and again.done
    assert "Group.Read.All" in consent_in_world(emu, FRESH_CUSTOMER)[1]


def test_without_the_role_to_grant_app_roles_consent_gives_the_adminconsent_link_then_completes(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    # agent@ holds Cloud Application Administrator in Freshco, not Privileged Role Administrator.
    emu = make_emulator(gdap_world_for_ops(grant_app_roles=False))
    config = signed_in(emu, tmp_path)
    customer = tenant_of(emu, FRESH_CUSTOMER)
    first = gdap_cli(config, "consent", "--customer", FRESH_CUSTOMER, "--emulator-clock")
    assert first.exit_code == 3, first.output  # needs a person: the customer's administrator
    stopped = json.loads(first.stdout)
    link = stopped["admin_consent_link"]
    assert link == f"{emu.endpoints.authority_host}/{customer.id}/adminconsent?client_id={APP_ID}"
    assert link in first.stderr and "Global Administrator" in first.stderr
    assert stopped["partner_center"] == "created" and stopped["app_roles_added"] == []
    assert consent_in_world(emu, FRESH_CUSTOMER)[1] == set()  # nothing granted by the refusal

    back = consent_as_the_customers_admin(
        emu, link, f"admin@{customer.initial_domain}", f"Admin-{customer.id[:8]}"
    )
    assert back.startswith("http://localhost") and "admin_consent=True" in back

    second = gdap_cli(config, "consent", "--customer", FRESH_CUSTOMER, "--emulator-clock")
    assert second.exit_code == 0, second.output
    done = json.loads(second.stdout)
    assert done["done"] is True and done["admin_consent_link"] is None
    # The administrator granted the app roles: nothing left to grant, nothing removed (the
    # scopes the registration adds are reported, left in place), and the token carries them.
    assert done["app_roles_added"] == []
    assert set(done["app_roles_present"]) == set(sync_application_permissions())
    assert done["partner_center"] == "already there"
    assert any("left in place" in d for d in done["drift"])
    assert consent_in_world(emu, FRESH_CUSTOMER)[1] >= set(sync_application_permissions())
