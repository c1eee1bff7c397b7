"""What the report shows: per-customer summaries and fleet totals, and the queries behind them.

:class:`~cspgraph.fleet.store.Store` runs these queries inside one read transaction (one snapshot,
so the figures add up while a sync writes); the report modules format what they return.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, case, func, literal, select
from sqlalchemy.engine import Connection

from cspgraph.fleet import inventory
from cspgraph.fleet.history_schema import coverage, customer_access, customer_state
from cspgraph.fleet.outcomes import CustomerStatus
from cspgraph.fleet.resources import GLOBAL_ADMIN_TEMPLATE
from cspgraph.fleet.schema import (
    customers,
    devices,
    groups,
    managed_devices,
    organizations,
    subscribed_skus,
    users,
)

GLOBAL_ADMIN_ROLE_TEMPLATE = GLOBAL_ADMIN_TEMPLATE  # the name the store has exported
# The key of customers never synced in FleetTotals.sync_health (a status of none).
NEVER_SYNCED = "never"


@dataclass(frozen=True, slots=True)
class CustomerSummary:
    """Everything the report shows about one customer."""

    tenant_id: str
    display_name: str
    domain: str | None
    region: str | None
    status: str | None  # a CustomerStatus value as stored; None: never synced
    status_reason: str | None
    error_class: str | None
    status_at: datetime | None
    last_sync_at: datetime | None
    users: int = 0
    users_enabled: int = 0
    guests: int = 0
    # inventory.global_admins, counted; None: directory roles unknown for this customer
    admins: int | None = None
    groups: int = 0
    devices: int = 0
    managed_devices: int = 0
    managed_by_os: dict[str, int] = field(default_factory=dict)
    compliance: dict[str, int] = field(default_factory=dict)
    # Never synced successfully: its counts are unknown, not 0.
    synced: bool = True
    # Why its managed devices are unknown (no Intune licence), or None when they are known.
    intune_unknown: str | None = None
    licences_bought: int | None = None  # None: licences not synced
    licences_assigned: int | None = None
    gone_since: datetime | None = None  # Partner Center no longer lists it
    # How the customer is reached (cspgraph.fleet.access); None: not found out yet.
    access_mode: str | None = None
    access_reason: str | None = None
    # Its GDAP relationship that matters most, as the last sync read it; gdap_known False: the
    # partner's relationships could not be read (unknown, not "none").
    gdap_known: bool = False
    gdap_relationship: str | None = None
    gdap_status: str | None = None
    gdap_end: datetime | None = None

    @property
    def users_disabled(self) -> int:
        return self.users - self.users_enabled

    @property
    def noncompliant(self) -> int:
        return self.compliance.get("noncompliant", 0)

    @property
    def needs_attention(self) -> bool:
        synced_ok = self.status in (CustomerStatus.OK, None)
        return not synced_ok or self.noncompliant > 0

    @property
    def licences_unused(self) -> int | None:
        if self.licences_bought is None or self.licences_assigned is None:
            return None
        return max(0, self.licences_bought - self.licences_assigned)


@dataclass(frozen=True, slots=True)
class FleetTotals:
    customers: int
    users: int
    users_enabled: int
    guests: int
    admins: int  # over the customers whose admins are known
    groups: int
    devices: int
    managed_devices: int
    customers_noncompliant: int
    compliance: dict[str, int]
    os_mix: dict[str, int]
    sync_health: dict[str, int]  # status -> customers; NEVER_SYNCED for customers not yet synced
    last_sync_at: datetime | None  # the most recent successful sync of any customer
    oldest_sync_at: datetime | None  # the least recent one: how stale the fleet view can be
    admins_unknown: int = 0  # synced customers whose admins are unknown (no role permission)
    sync_problems: int = 0  # customers whose last sync did not end "ok" (any reason)
    without_intune: int = 0  # synced customers whose managed devices are unknown
    never_synced: int = 0

    @property
    def users_disabled(self) -> int:
        return self.users - self.users_enabled

    @property
    def noncompliant(self) -> int:
        return self.compliance.get("noncompliant", 0)


# Problems first: somebody must act, then a failed sync (it hides the customer's state), then
# a relationship still propagating (or ended).
_STATUS_RANK: dict[str | None, int] = {
    CustomerStatus.NEEDS_PERSON: 0,
    CustomerStatus.FAILED: 1,
    CustomerStatus.PROPAGATING: 2,
    CustomerStatus.RUNNING: 3,
    None: 4,  # never synced
    CustomerStatus.OK: 5,
}


def attention_order(summary: CustomerSummary) -> tuple[bool, int, int, str]:
    """Sort key: customers with non-compliant devices or failed syncs first, worst first."""
    return (
        not summary.needs_attention,
        _STATUS_RANK.get(summary.status, 4),
        -summary.noncompliant,
        summary.display_name.casefold(),
    )


def _add(into: dict[str, int], other: Mapping[str, int]) -> None:
    for key, n in other.items():
        into[key] = into.get(key, 0) + n


def totals_of(summaries: Sequence[CustomerSummary]) -> FleetTotals:
    """Fleet totals from per-customer summaries, so a report runs the per-customer queries once."""
    compliance: dict[str, int] = {}
    os_mix: dict[str, int] = {}
    health: dict[str, int] = {}
    synced = [s.last_sync_at for s in summaries if s.last_sync_at is not None]
    for s in summaries:
        _add(compliance, s.compliance)
        _add(os_mix, s.managed_by_os)
        key = s.status or NEVER_SYNCED
        health[key] = health.get(key, 0) + 1
    return FleetTotals(
        customers=len(summaries),
        users=sum(s.users for s in summaries),
        users_enabled=sum(s.users_enabled for s in summaries),
        guests=sum(s.guests for s in summaries),
        admins=sum(s.admins for s in summaries if s.admins is not None),
        groups=sum(s.groups for s in summaries),
        devices=sum(s.devices for s in summaries),
        managed_devices=sum(s.managed_devices for s in summaries),
        customers_noncompliant=sum(1 for s in summaries if s.noncompliant),
        compliance=dict(sorted(compliance.items(), key=lambda kv: -kv[1])),
        os_mix=dict(sorted(os_mix.items(), key=lambda kv: -kv[1])),
        sync_health=health,
        last_sync_at=max(synced, default=None),
        oldest_sync_at=min(synced, default=None),
        admins_unknown=sum(1 for s in summaries if s.synced and s.admins is None),
        sync_problems=sum(1 for s in summaries if s.status not in (CustomerStatus.OK, None)),
        without_intune=sum(1 for s in summaries if s.synced and s.intune_unknown is not None),
        never_synced=sum(1 for s in summaries if not s.synced),
    )


# --- Report queries -------------------------------------------------------------------------------


def read_customer_summaries(conn: Connection) -> list[CustomerSummary]:
    """One summary per customer, customers needing attention first (see attention_order)."""
    users_by = _grouped(
        conn,
        select(
            users.c.tenant_id,
            func.count(),
            func.sum(case((users.c.account_enabled.is_(True), 1), else_=0)),
            func.sum(case((users.c.user_type == "Guest", 1), else_=0)),
        ).group_by(users.c.tenant_id),
    )
    groups_by = _counts_by_tenant(conn, groups)
    devices_by = _counts_by_tenant(conn, devices)
    org_names = dict(
        conn.execute(select(organizations.c.tenant_id, organizations.c.display_name)).all()
    )
    admins_by = inventory.global_admin_counts(conn)
    managed: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
    md = managed_devices.c
    stmt = select(md.tenant_id, md.operating_system, md.compliance_state, func.count())
    stmt = stmt.group_by(md.tenant_id, md.operating_system, md.compliance_state)
    for tenant, os, state, n in conn.execute(stmt):
        by_os, by_state = managed.setdefault(tenant, ({}, {}))
        by_os[os or "unknown"] = by_os.get(os or "unknown", 0) + n
        by_state[state or "unknown"] = by_state.get(state or "unknown", 0) + n
    rows = conn.execute(select(customers)).all()
    cv = coverage.c
    unreadable = {
        (tenant, resource): reason or "not readable in this tenant"
        for tenant, resource, reason in conn.execute(
            select(cv.tenant_id, cv.resource, cv.reason).where(cv.available.is_(False))
        )
    }
    sk = subscribed_skus.c
    licences = {
        tenant: (bought, assigned)
        for tenant, bought, assigned in conn.execute(
            select(sk.tenant_id, func.sum(sk.prepaid_units), func.sum(sk.consumed_units)).group_by(
                sk.tenant_id
            )
        )
    }
    covered_skus = {
        tenant
        for tenant in conn.execute(
            select(cv.tenant_id).where(cv.resource == "subscribedSkus", cv.available.is_(True))
        ).scalars()
    }
    gone = dict(
        conn.execute(
            select(customer_state.c.tenant_id, customer_state.c.gone_since).where(
                customer_state.c.gone_since.is_not(None)
            )
        ).all()
    )
    access = {row.tenant_id: row for row in conn.execute(select(customer_access))}

    summaries = []
    for row in rows:
        t = row.tenant_id
        n_users, n_enabled, n_guests = users_by.get(t, (0, 0, 0))
        by_os, by_state = managed.get(t, ({}, {}))
        bought, assigned = licences.get(t, (None, None))
        if bought is None and t in covered_skus:
            bought = assigned = 0  # read, and none bought
        summaries.append(
            CustomerSummary(
                tenant_id=t,
                display_name=row.display_name or org_names.get(t) or row.domain or t,
                domain=row.domain,
                region=row.region,
                status=row.status,
                status_reason=row.status_reason,
                error_class=row.error_class,
                status_at=row.status_at,
                last_sync_at=row.last_sync_at,
                users=n_users,
                users_enabled=n_enabled or 0,
                guests=n_guests or 0,
                # Rows a sync that could not read the roles left behind are not today's admins.
                admins=None if (t, "directoryRoles") in unreadable else admins_by.get(t),
                groups=groups_by.get(t, 0),
                devices=devices_by.get(t, 0),
                managed_devices=sum(by_os.values()),
                managed_by_os=by_os,
                compliance=by_state,
                synced=row.last_sync_at is not None,
                intune_unknown=unreadable.get((t, "managedDevices")),
                licences_bought=None if bought is None else int(bought),
                licences_assigned=None if assigned is None else int(assigned),
                gone_since=gone.get(t),
                **_access_fields(access.get(t)),
            )
        )
    summaries.sort(key=attention_order)
    return summaries


def _access_fields(row: Any) -> dict[str, Any]:
    if row is None:
        return {}
    return {
        "access_mode": row.mode,
        "access_reason": row.reason,
        "gdap_known": bool(row.gdap_known),
        "gdap_relationship": row.gdap_relationship,
        "gdap_status": row.gdap_status,
        "gdap_end": row.gdap_end,
    }


def read_os_mix(conn: Connection) -> dict[str, int]:
    """Managed devices per operating system, fleet-wide, most common first."""
    os = func.coalesce(managed_devices.c.operating_system, literal("unknown"))
    stmt = select(os, func.count()).group_by(os).order_by(func.count().desc())
    return {name: n for name, n in conn.execute(stmt)}


def read_compliance_by_customer(conn: Connection) -> dict[str, dict[str, int]]:
    """tenant id -> managed devices per compliance state."""
    md = managed_devices.c
    state = func.coalesce(md.compliance_state, literal("unknown"))
    stmt = select(md.tenant_id, state, func.count()).group_by(md.tenant_id, state)
    result: dict[str, dict[str, int]] = {}
    for tenant, name, n in conn.execute(stmt):
        result.setdefault(tenant, {})[name] = n
    return result


def _counts_by_tenant(conn: Connection, table: Table) -> dict[str, int]:
    stmt = select(table.c.tenant_id, func.count()).group_by(table.c.tenant_id)
    return {tenant: n for tenant, n in conn.execute(stmt)}


def _grouped(conn: Connection, stmt: Any) -> dict[str, tuple[int, int, int]]:
    return {row[0]: (row[1], row[2], row[3]) for row in conn.execute(stmt)}
