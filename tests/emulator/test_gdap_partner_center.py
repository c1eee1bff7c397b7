"""Partner Center under GDAP: a new customer without DAP and with its default GDAP relationship,
and the reseller relationship request link (App+User only)."""

from __future__ import annotations

import pytest

from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator
from tests.emulator.gdap_world import PARTNER, gdap_world
from tests.emulator.graph_tokens import graph_client, user_token
from tests.emulator.test_gdap_consent import app_only, partner_center, pc_token
from tests.emulator.test_partner_center import new_customer

DOMAIN = "freshco.onmicrosoft.com"


@pytest.mark.parametrize("enable_gdap", [None, False])
def test_a_new_customer_under_gdap_gets_no_dap_and_the_default_relationship(
    make_emulator: MakeEmulator, enable_gdap: bool | None
) -> None:
    emu = make_emulator(gdap_world(new_customer_access="gdap"))
    body = new_customer(DOMAIN)
    body.pop("enableGDAPByDefault")  # omitted: a default relationship (since 2023-11-01)
    if enable_gdap is not None:
        body["enableGDAPByDefault"] = enable_gdap
    with partner_center(emu, pc_token(emu, None)) as pc:
        created = pc.post("/v1/customers", json=body)
    assert created.status_code == 201, created.text
    customer_id = created.json()["id"]
    (rel,) = [r for r in emu.world.relationships if r.customer_id == customer_id]
    assert rel.dap is False
    emu.advance(181)
    # No DAP pre-consent and no consent of its own: the app is not in the new directory.
    assert app_only(emu, DOMAIN).json()["error_codes"] == [700016]
    admin = user_token(emu, PARTNER, upn="agent@partner.com",
                       scp="DelegatedAdminRelationship.ReadWrite.All", wids=())  # fmt: skip
    with graph_client(emu, admin) as graph:
        listed = graph.get(
            "/v1.0/tenantRelationships/delegatedAdminRelationships",
            params={"$filter": f"customer/tenantId eq '{customer_id}'"},
        ).json()["value"]
    if enable_gdap is False:
        assert listed == []
    else:
        (default,) = listed
        assert default["status"] == "active"
        assert default["displayName"].startswith("Default_")


def test_a_new_customer_under_dap_keeps_the_original_story(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(gdap_world())
    with partner_center(emu, pc_token(emu, None)) as pc:
        created = pc.post("/v1/customers", json=new_customer(DOMAIN))
    assert created.status_code == 201
    emu.advance(181)
    assert app_only(emu, DOMAIN).status_code == 200
    assert not [r for r in emu.world.gdap.relationships.values()
                if r.customer_id == created.json()["id"]]  # fmt: skip


def test_the_relationship_request_link_is_for_app_and_user_callers(emu_gdap: Emulator) -> None:
    with partner_center(emu_gdap, pc_token(emu_gdap)) as pc:
        answer = pc.get("/v1/customers/relationshiprequests")
    with partner_center(emu_gdap, pc_token(emu_gdap, None)) as pc:
        app = pc.get("/v1/customers/relationshiprequests")
    assert answer.status_code == 200
    body = answer.json()
    assert body["attributes"] == {"objectType": "RelationshipRequest"}
    partner_id = emu_gdap.world.tenant(PARTNER).id  # type: ignore[union-attr]
    assert body["url"].startswith(f"{emu_gdap.endpoints.authority_host}/AdminPortal/Home?")
    assert f"partnerId={partner_id}" in body["url"] and "DAP=true" in body["url"]
    assert body["url"].endswith("#/BillingAccounts/partner-invitation")
    assert app.status_code == 403


@pytest.fixture
def emu_gdap(make_emulator: MakeEmulator) -> Emulator:
    return make_emulator(gdap_world())
