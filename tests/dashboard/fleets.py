"""Stores for the dashboard tests: the unit tests' known fleet with its runs recorded (so each
customer has the figures its last successful sync left), plus as many more customers as a test
needs for paging."""

from __future__ import annotations

from datetime import UTC, datetime

from cspgraph.customer_ref import parse_reference
from cspgraph.fleet import inventory, runs
from cspgraph.fleet.outcomes import CustomerStatus, TenantResult
from cspgraph.fleet.store import Store
from tests.unit.pg_fixture import ALPHA, BRAVO, CHARLIE, DELTA, build_known_fleet

SYNCED = (ALPHA, CHARLIE, DELTA)
EVERY_RESOURCE = {
    "users": "full",
    "groups": "full",
    "managedDevices": "full",
    "directoryRoles": "full",
    "subscribedSkus": "full",
}


def record_run(
    store: Store,
    run_id: str,
    ok: tuple[str, ...],
    failed: tuple[str, ...] = (),
    *,
    roles_unreadable: tuple[str, ...] = (),
) -> None:
    """A finished run in which ``ok`` synced and ``failed`` did not, recorded as a sync does;
    ``roles_unreadable``: customers whose roles this run could not read (their old rows stay)."""
    runs.begin_run(store, run_id, datetime.now(UTC))
    for tenant in ok:
        result = TenantResult(parse_reference(tenant), tenant, "EU", CustomerStatus.OK)
        result.modes = dict(EVERY_RESOURCE)
        with store.reading() as conn:
            if tenant in roles_unreadable or not inventory.roles_synced(conn, tenant):
                result.modes["directoryRoles"] = "skipped: the app lacks the role permission"
        runs.record_tenant(store, run_id, result)
    for tenant in failed:
        result = TenantResult(
            parse_reference(tenant), tenant, "EU", CustomerStatus.FAILED, reason="HTTP 500"
        )
        runs.record_tenant(store, run_id, result)


def known_fleet_with_runs(store: Store, extra: int = 0) -> list[str]:
    """The known fleet (tests/unit/pg_fixture.py), one recorded run, and ``extra`` customers
    never synced (named Extra 000, Extra 001, …); returns the extra tenant ids."""
    build_known_fleet(store)
    record_run(store, "run-1", SYNCED, (BRAVO,))
    ids = []
    for i in range(extra):
        tenant = f"e{i:07d}-0000-0000-0000-000000000000"
        store.upsert_customer(
            tenant, domain=f"extra{i:03d}.example", display_name=f"Extra {i:03d}", region="NA"
        )
        ids.append(tenant)
    return ids
