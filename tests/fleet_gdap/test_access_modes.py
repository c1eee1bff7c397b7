"""A mixed DAP/GDAP fleet synced in one run: each customer's access mode, status and GDAP
relationship found out, recorded in the store, and said with its next step."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from csp_emulator.server import Emulator
from cspgraph.config import Config
from cspgraph.fleet.history_schema import customer_access
from cspgraph.fleet.store import Store
from cspgraph.fleet.sync import SyncSummary
from tests.fleet_gdap.mixed_world import GDAP, dap_domains, mixed_world_data
from tests.fleet_helpers import Control, config_for, run_sync

ALL_GDAP = list(GDAP.values())


def by_domain(summary: SyncSummary) -> dict[str, Any]:
    return {t.customer.reference: t for t in summary.tenants}


def stored_access(store: Store) -> dict[str, Any]:
    with store.reading() as conn:
        return {row.tenant_id: row for row in conn.execute(select(customer_access))}


def test_a_mixed_fleet_syncs_in_one_run_with_each_customers_access_mode_and_status(
    mixed_config: Config, store: Store
) -> None:
    dap = dap_domains(mixed_world_data())
    summary = asyncio.run(run_sync(mixed_config, store, customers=[*dap, *ALL_GDAP]))
    got = by_domain(summary)

    for domain in dap:
        assert got[domain].status.value == "ok", got[domain].reason
        assert got[domain].access.mode.value == "dap"
        assert got[domain].access.dap is True
    for key in ("northwind", "lakeshore", "zava", "woodgrove"):
        result = got[GDAP[key]]
        assert (result.status.value, result.access.mode.value) == ("ok", "gdap-app"), key
        assert result.access.dap is False
        assert result.received["users"] > 0  # synced through the consented app
    assert got[GDAP["zava"]].access.nearest.status == "expiring"
    # The consent outlives the relationship: the app still syncs it, and the end is shown.
    woodgrove = got[GDAP["woodgrove"]]
    assert woodgrove.access.nearest.status == "expired"
    assert any("expired" in note for note in woodgrove.notes)

    cedar = got[GDAP["cedar"]]
    assert (cedar.status.value, cedar.access.mode.value) == ("needs_person", "none")
    assert f"cspgraph gdap consent --customer {GDAP['cedar']}" in cedar.reason
    skyline = got[GDAP["skyline"]]
    assert (skyline.status.value, skyline.access.mode.value) == ("needs_person", "none")
    assert "Fabrikam-GDAP-skylinedental awaits the customer's approval" in skyline.reason
    harbor = got[GDAP["harborview"]]
    assert (harbor.status.value, harbor.access.mode.value) == ("needs_person", "none")
    assert "no DAP and no GDAP relationship" in harbor.reason
    assert summary.access_modes() == {"dap": len(dap), "gdap-app": 4, "none": 3}
    # EU's app may read relationships too: nothing is unknown.
    assert summary.gdap_unknown == {}

    rows = stored_access(store)
    assert rows[woodgrove.tenant_id].gdap_status == "expired"
    assert rows[woodgrove.tenant_id].gdap_relationship == "Fabrikam-GDAP-woodgrovepharmacy"
    assert rows[cedar.tenant_id].mode == "none"
    assert "cspgraph gdap consent" in rows[cedar.tenant_id].reason
    assert rows[got[dap[0]].tenant_id].mode == "dap"
    assert rows[got[dap[0]].tenant_id].gdap_relationships == 0


def test_an_expiry_is_detected_after_the_world_clock_moves(
    mixed_config: Config, store: Store, control: Control
) -> None:
    zava = GDAP["zava"]
    first = by_domain(asyncio.run(run_sync(mixed_config, store, customers=[zava])))[zava]
    assert first.access.nearest.status == "expiring"
    ends = first.access.nearest.end
    control.call("POST", "clock", {"by": "16d"})

    again = by_domain(asyncio.run(run_sync(mixed_config, store, customers=[zava])))[zava]
    assert again.access.nearest.status == "expired"
    assert again.access.nearest.end == ends
    assert any(f"expired (ended {ends.date().isoformat()})" in n for n in again.notes)
    row = stored_access(store)[again.tenant_id]
    assert (row.gdap_status, row.gdap_end) == ("expired", ends)


def test_a_consent_that_disappears_is_said_as_gone_with_the_command_that_puts_it_back(
    mixed_config: Config, store: Store, mixed: Emulator
) -> None:
    northwind = GDAP["northwind"]
    first = by_domain(asyncio.run(run_sync(mixed_config, store, customers=[northwind])))
    assert first[northwind].access.mode.value == "gdap-app"
    revoke_consent(mixed, northwind, mixed_config.identities["NA"].client_id)
    again = by_domain(asyncio.run(run_sync(mixed_config, store, customers=[northwind])))
    result = again[northwind]
    assert (result.status.value, result.access.mode.value) == ("needs_person", "none")
    assert "consent in this customer is gone" in result.reason
    assert f"cspgraph gdap consent --customer {northwind}" in result.reason


def test_an_app_outside_admin_agents_is_told_so_and_never_shown_zero_relationships(
    mixed_config: Config, store: Store, mixed: Emulator
) -> None:
    app_id = mixed_config.identities["NA"].client_id

    def leave_admin_agents() -> None:
        partner = mixed.world.tenant("partner.com")
        sp = partner.service_principal_by_app_id(app_id)
        group = partner.group_by_name("AdminAgents")
        partner.remove_member(group["id"], sp["id"])

    mixed.call(leave_admin_agents)
    summary = asyncio.run(run_sync(mixed_config, store, customers=[GDAP["northwind"]]))
    assert "not in AdminAgents" in summary.gdap_unknown["NA"]
    result = summary.tenants[0]
    # The app still reaches the consented customer; its GDAP is unknown, not "none".
    assert result.access.mode.value == "gdap-app"
    assert result.access.relationships is None
    assert result.access.as_dict()["gdap"] is None
    assert stored_access(store)[result.tenant_id].gdap_known is False


def test_an_app_without_the_gdap_permission_leaves_gdap_unknown_and_says_why(
    make_emulator: Any, tmp_path: Any, store: Store
) -> None:
    emu = make_emulator(mixed_world_data(read_gdap=False))
    config = config_for(emu, tmp_path, regions=("NA",))
    northwind, cedar = GDAP["northwind"], GDAP["cedar"]
    summary = asyncio.run(run_sync(config, store, customers=[northwind, cedar]))
    assert "DelegatedAdminRelationship.Read.All" in summary.gdap_unknown["NA"]
    got = by_domain(summary)
    assert got[northwind].access.mode.value == "gdap-app"
    assert got[northwind].access.relationships is None  # unknown, not "none"
    # Not the partner's reseller customer and GDAP unknown: nothing more can be said than
    # Entra's answer (a relationship not there yet, or ended).
    assert got[cedar].status.value == "propagating"
    revoke_consent(emu, northwind, config.identities["NA"].client_id)
    again = by_domain(asyncio.run(run_sync(config, store, customers=[northwind])))[northwind]
    # A reseller customer without DAP is reached through the consent or not at all.
    assert again.status.value == "needs_person"
    assert "consent in this customer is gone" in again.reason


def revoke_consent(emu: Emulator, domain: str, app_id: str) -> None:
    def revoke() -> None:
        tenant = emu.world.tenant(domain)
        sp = tenant.service_principal_by_app_id(app_id)
        tenant.objects["servicePrincipals"].pop(sp["id"])

    emu.call(revoke)
