"""A customer's Global Administrator approves a partner's GDAP relationship, and accepts a
reseller invitation, in headless Chromium on the emulator's admin-portal pages, following the
links partners send (the part after ``#`` routed by the page's own script)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from csp_emulator import roles
from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import load_world_data
from tests.e2e.browser import open_and_sign_in, pinned_chromium, requires_chromium
from tests.emulator.gdap_world import GDAP_CUSTOMER, PARTNER, STANDALONE, gdap_world
from tests.emulator.graph_tokens import control_client, graph_client, tenant_of, user_token

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = requires_chromium

BASE = "/v1.0/tenantRelationships/delegatedAdminRelationships"
APPROVAL = "/AdminPortal/Home#/partners/invitation/granularAdminRelationships/"


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("approval-emulator-state")


@pytest.fixture(scope="module")
def chromium(state_dir: Path) -> Iterator[Browser]:
    with pinned_chromium(state_dir) as browser:
        yield browser


@pytest.fixture
def emu(state_dir: Path) -> Iterator[Emulator]:
    data = gdap_world()
    with Emulator(lambda: load_world_data(data), state_dir=state_dir) as emulator:
        yield emulator


def locked_relationship(emu: Emulator, customer: str | None) -> str:
    """A relationship the partner created and locked for approval, through Graph."""
    token = user_token(emu, PARTNER, upn="agent@partner.com",
                       scp="DelegatedAdminRelationship.ReadWrite.All", wids=())  # fmt: skip
    body = {
        "displayName": "Fabrikam-Helpdesk",
        "duration": "P730D",
        "accessDetails": {"unifiedRoles": [{"roleDefinitionId": roles.HELPDESK_ADMINISTRATOR}]},
    }
    if customer is not None:
        body["customer"] = {"tenantId": tenant_of(emu, customer).id}
    with graph_client(emu, token) as graph:
        created = graph.post(BASE, json=body)
        assert created.status_code == 201, created.text
        rel_id: str = created.json()["id"]
        locked = graph.post(f"{BASE}/{rel_id}/requests", json={"action": "lockForApproval"})
        assert locked.status_code == 201
    return rel_id


def status(emu: Emulator, rel_id: str) -> str:
    with control_client(emu) as control:
        found = [r for r in control.get("/gdap").json()["value"] if r["id"] == rel_id]
    return str(found[0]["status"])


def admin_of(emu: Emulator, domain: str) -> tuple[str, str]:
    tenant = tenant_of(emu, domain)
    return f"admin@{tenant.initial_domain}", f"Admin-{tenant.id[:8]}"


def test_a_customer_global_administrator_approves_in_chromium(
    chromium: Browser, emu: Emulator, tmp_path: Path
) -> None:
    rel_id = locked_relationship(emu, GDAP_CUSTOMER)
    link = f"{emu.endpoints.authority_host}{APPROVAL}{rel_id}"
    context = chromium.new_context()
    try:
        page = context.new_page()
        # A user who is not a Global Administrator is told so, and nothing changes.
        customer = tenant_of(emu, GDAP_CUSTOMER)
        member = next(u for u in customer.objects["users"].values()
                      if not customer.roles_of(u["id"]) and u.get("_password"))  # fmt: skip
        text = open_and_sign_in(page, link, member["userPrincipalName"], member["_password"],
                                "#approve")  # fmt: skip
        assert "Only a Global Administrator" in text
        assert status(emu, rel_id) == "approvalPending"
        assert "Helpdesk Administrator" in page.inner_text("#roles")

        username, password = admin_of(emu, GDAP_CUSTOMER)
        open_and_sign_in(page, link, username, password, "#approve")
        assert page.get_attribute("#result", "data-status") == "approved"
        page.screenshot(path=str(tmp_path / "approved.png"), full_page=True)
    finally:
        context.close()
    assert status(emu, rel_id) == "approved"
    emu.advance(181)
    assert status(emu, rel_id) == "active"


def test_a_relationship_for_anyone_is_approved_by_the_first_customer_and_declines_stick(
    chromium: Browser, emu: Emulator
) -> None:
    open_rel = locked_relationship(emu, None)
    link = f"{emu.endpoints.authority_host}{APPROVAL}{open_rel}"
    context = chromium.new_context()
    try:
        page = context.new_page()
        username, password = admin_of(emu, STANDALONE)
        open_and_sign_in(page, link, username, password, "#decline")
        assert page.get_attribute("#result", "data-status") == "declined"
    finally:
        context.close()
    assert status(emu, open_rel) == "terminated"


def test_a_stand_alone_tenant_accepts_the_reseller_invitation_in_chromium(
    chromium: Browser, emu: Emulator
) -> None:
    partner = tenant_of(emu, PARTNER)
    customer = tenant_of(emu, STANDALONE)
    link = (
        f"{emu.endpoints.authority_host}/AdminPortal/Home?invType=ResellerRelationship"
        f"&partnerId={partner.id}&msppId=0&DAP=true#/BillingAccounts/partner-invitation"
    )
    context = chromium.new_context()
    try:
        page = context.new_page()
        username, password = admin_of(emu, STANDALONE)
        open_and_sign_in(page, link, username, password, "#accept")
        assert page.get_attribute("#result", "data-status") == "accepted"
    finally:
        context.close()
    rel = emu.world.relationship(partner.id, customer.id)
    assert rel is not None and rel.dap
    now = emu.world.clock.now()
    assert not rel.in_effect(now)  # propagation_delay, exactly like a new customer
    emu.advance(181)
    assert rel.in_effect(emu.world.clock.now())
