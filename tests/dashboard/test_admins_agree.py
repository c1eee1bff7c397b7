"""One count of Global Administrators: the report, the dashboard's customer list and the
admins checks agree on a customer whose role members overlap (a user holding the role directly
and through a role-assignable group, a user holding it only through the group, a disabled
holder, an app holding it), because all three count ``inventory.global_admins``."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from csp_emulator import wellknown
from csp_emulator.server import Emulator
from csp_emulator.world.model import Tenant, service_principal_json
from csp_emulator.world.objects import group_json
from csp_emulator.world.worldfile import add_role_member
from cspgraph.dashboard.queries import ListQuery, list_customers
from cspgraph.fleet.checks import run_checks
from cspgraph.fleet.store import Store
from tests.conftest import MakeEmulator
from tests.e2e.fleet_world import NAMES, RISKY, planted_world
from tests.fleet_helpers import config_for, run_sync

# Risky Ltd: ga0..ga3 and admin@risky.onmicrosoft.com directly, oldadmin (disabled) directly.
# Added: a role-assignable group holding the role with ga0 (again) and helpdesk in it, and an
# app's service principal holding the role. Six people administer the tenant.
EXPECTED = {*(f"ga{i}@{RISKY}" for i in range(4)), "admin@risky.onmicrosoft.com",
            f"helpdesk@{RISKY}"}  # fmt: skip


def overlap(tenant: Tenant) -> None:
    by_upn = {u["userPrincipalName"]: u for u in tenant.objects["users"].values()}
    group = tenant.add("groups", group_json(tenant, "Tenant Admins"))
    group["isAssignableToRole"] = True
    for upn in (f"ga0@{RISKY}", f"helpdesk@{RISKY}"):
        tenant.add_member(group["id"], by_upn[upn]["id"])
    add_role_member(tenant, wellknown.ROLE_GLOBAL_ADMIN, group["id"])
    app = tenant.add(
        "servicePrincipals",
        service_principal_json(
            "00000000-0000-0000-0000-0000000a11e0", "00000000-0000-0000-0000-00000000a11e",
            "Automation", tenant.id,
        ),
    )  # fmt: skip
    add_role_member(tenant, wellknown.ROLE_GLOBAL_ADMIN, app["id"])


def test_report_dashboard_and_check_count_the_same_global_administrators(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu: Emulator = make_emulator(planted_world)
    risky = emu.world.tenant(RISKY)
    assert risky is not None
    emu.call(lambda: overlap(risky))
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as store:
        config = config_for(emu, tmp_path, regions=("NA",))
        assert asyncio.run(run_sync(config, store, customers=[RISKY])).ok
        [report] = [s for s in store.customer_summaries() if s.domain == RISKY]
        with store.reading() as conn:
            [listed] = list_customers(conn, ListQuery(search="risky")).rows
        results = run_checks(store, tenants=[risky.id])
    [too_many] = [f for f in results.findings if f.check_id == "admins.too_many"]
    assert {o.name.removesuffix(" (through Tenant Admins)") for o in too_many.objects} == EXPECTED
    assert f"ga0@{RISKY}" in {o.name for o in too_many.objects}  # held directly too: said so
    assert re.match(rf"{len(EXPECTED)} Global Administrators", too_many.summary)
    assert report.admins == listed.admins == len(EXPECTED)
    assert listed.name == NAMES[RISKY]
