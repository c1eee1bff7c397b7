"""The store's objects as the checks, the exports, the report and the dashboard read them: who
holds which privileged role (by name), guests, managed devices, licences.

Every function takes a read connection (``Store.reading()``) and, optionally, one tenant; without
one it reads the whole fleet in one query per table, which is what keeps the checks fast on a
fleet of thousands of customers. Unknown stays unknown: a value the store does not have is None.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Select, and_, func, select, type_coerce
from sqlalchemy.engine import Connection

from cspgraph.fleet.resources import ADMIN_ROLE_TEMPLATES, GLOBAL_ADMIN_TEMPLATE
from cspgraph.fleet.schema import (
    directory_roles,
    group_members,
    groups,
    managed_devices,
    parse_time,
    role_members,
    subscribed_skus,
    users,
)


def _for(stmt: Select[Any], column: Any, tenant: str | None) -> Select[Any]:
    return stmt if tenant is None else stmt.where(column == tenant)


# --- privileged roles ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoleHolder:
    """Somebody (or some app) holding a privileged role, directly or through a role-assignable
    group (which cannot nest, so one level of expansion is complete)."""

    tenant_id: str
    role_template_id: str
    role: str
    holder_id: str
    kind: str | None  # user, servicePrincipal, …; None when the store never learnt it
    name: str | None  # a user's UPN, anything else's display name
    enabled: bool | None  # users only: a disabled account holding a role is a finding
    via_group: str | None = None  # the group's name, when held through one

    @property
    def is_global_admin(self) -> bool:
        return self.role_template_id == GLOBAL_ADMIN_TEMPLATE

    @property
    def label(self) -> str:
        name = self.name or self.holder_id
        return f"{name} (through {self.via_group})" if self.via_group else name


def role_holders(conn: Connection, tenant: str | None = None) -> list[RoleHolder]:
    """Every holder of the privileged roles (resources.ADMIN_ROLE_TEMPLATES) the store has."""
    rm, u, g, dr = role_members.c, users.c, groups.c, directory_roles.c
    direct = (
        select(
            rm.tenant_id, rm.role_template_id, dr.display_name.label("role"), rm.member_id,
            rm.member_type, rm.display_name, u.upn, u.display_name.label("user_name"),
            u.account_enabled, g.id.label("group_id"), g.display_name.label("group_name"),
        )
        .outerjoin(directory_roles, and_(
            dr.tenant_id == rm.tenant_id, dr.role_template_id == rm.role_template_id))
        .outerjoin(users, and_(u.tenant_id == rm.tenant_id, u.id == rm.member_id))
        .outerjoin(groups, and_(g.tenant_id == rm.tenant_id, g.id == rm.member_id))
        .where(rm.role_template_id.in_(list(ADMIN_ROLE_TEMPLATES)))
    )  # fmt: skip
    gm = group_members.c
    through = (
        select(
            rm.tenant_id, rm.role_template_id, dr.display_name.label("role"),
            gm.member_id, u.upn, u.display_name.label("user_name"), u.account_enabled,
            g.display_name.label("group_name"),
        )
        .outerjoin(directory_roles, and_(
            dr.tenant_id == rm.tenant_id, dr.role_template_id == rm.role_template_id))
        .join(group_members, and_(gm.tenant_id == rm.tenant_id, gm.group_id == rm.member_id))
        .join(groups, and_(g.tenant_id == rm.tenant_id, g.id == rm.member_id))
        .outerjoin(users, and_(u.tenant_id == gm.tenant_id, u.id == gm.member_id))
        .where(rm.role_template_id.in_(list(ADMIN_ROLE_TEMPLATES)))
    )  # fmt: skip
    out: list[RoleHolder] = []
    for row in conn.execute(_for(direct, rm.tenant_id, tenant)):
        is_group = row.group_id is not None or row.member_type == "group"
        if is_group:
            continue  # its members hold the role; the group itself is no holder
        is_user = row.upn is not None or row.member_type == "user"
        out.append(
            RoleHolder(
                row.tenant_id,
                row.role_template_id,
                row.role or ADMIN_ROLE_TEMPLATES[row.role_template_id],
                row.member_id,
                "user" if row.upn is not None else row.member_type,
                row.upn or row.user_name or row.display_name,
                row.account_enabled if is_user else None,
            )
        )
    for row in conn.execute(_for(through, rm.tenant_id, tenant)):
        out.append(
            RoleHolder(
                row.tenant_id,
                row.role_template_id,
                row.role or ADMIN_ROLE_TEMPLATES[row.role_template_id],
                row.member_id,
                "user" if row.upn is not None else None,
                row.upn or row.user_name,
                row.account_enabled,
                via_group=row.group_name or "a role-assignable group",
            )
        )
    order = {template: i for i, template in enumerate(ADMIN_ROLE_TEMPLATES)}
    out.sort(key=lambda h: (h.tenant_id, order[h.role_template_id], (h.name or "").casefold()))
    return out


def global_admins(holders: Iterable[RoleHolder]) -> dict[str, RoleHolder]:
    """THE definition of a customer's Global Administrators, which the report, the dashboard and
    the checks all count: the users holding the role directly or through a role-assignable group,
    each once (by id, however many ways they hold it), leaving out disabled accounts (the
    ``admins.disabled`` check names those) and apps (a service principal with the role is listed
    among the privileged holders, not counted as a person who administers the tenant)."""
    found: dict[str, RoleHolder] = {}
    for h in holders:
        if h.is_global_admin and h.kind == "user" and h.enabled is not False:
            found.setdefault(h.holder_id, h)  # role_holders lists direct holdings first
    return found


def global_admin_counts(conn: Connection, tenant: str | None = None) -> dict[str, int]:
    """How many Global Administrators (:func:`global_admins`) each customer whose directory
    roles the store holds has; a customer whose roles were never synced is absent (unknown).
    Read from the whole fleet's role holders at once (one query each way, 5,000 customers)."""
    by_tenant: dict[str, list[RoleHolder]] = defaultdict(list)
    for holder in role_holders(conn, tenant):
        by_tenant[holder.tenant_id].append(holder)
    # A store made before directory_roles was kept has role members only: they are known too.
    known = roles_synced(conn, tenant) | set(by_tenant)
    return {t: len(global_admins(by_tenant[t])) for t in known}


def roles_synced(conn: Connection, tenant: str | None = None) -> set[str]:
    """Tenants whose directory roles the store holds (synced at least once)."""
    stmt = _for(select(directory_roles.c.tenant_id).distinct(), directory_roles.c.tenant_id, tenant)
    return set(conn.execute(stmt).scalars())


# --- users ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserRow:
    tenant_id: str
    id: str
    upn: str | None
    display_name: str | None
    enabled: bool | None
    user_type: str | None
    licenses: tuple[str, ...] | None  # sku ids; None: unknown (synced before licences were)
    created_at: datetime | None


def user_from_row(row: Any) -> UserRow:
    """A row of :func:`user_columns` as a :class:`UserRow`."""
    raw = row.raw if isinstance(row.raw, dict) else {}
    licences = None if row.licenses is None else tuple(s for s in row.licenses.split(",") if s)
    return UserRow(
        row.tenant_id,
        row.id,
        row.upn,
        row.display_name,
        row.account_enabled,
        row.user_type,
        licences,
        parse_time(raw.get("createdDateTime")),
    )


def user_columns() -> Select[Any]:
    u = users.c
    return select(
        u.tenant_id, u.id, u.upn, u.display_name, u.account_enabled, u.user_type, u.licenses, u.raw
    )


def guests(conn: Connection, tenant: str | None = None) -> list[UserRow]:
    stmt = user_columns().where(users.c.user_type == "Guest")
    return [user_from_row(r) for r in conn.execute(_for(stmt, users.c.tenant_id, tenant))]


def users_of(conn: Connection, tenant: str) -> list[UserRow]:
    stmt = user_columns().where(users.c.tenant_id == tenant).order_by(users.c.upn)
    return [user_from_row(r) for r in conn.execute(stmt)]


def disabled_with_licences(conn: Connection, tenant: str | None = None) -> list[UserRow]:
    """Disabled accounts that still hold a licence (a paid seat nobody can use)."""
    u = users.c
    stmt = user_columns().where(u.account_enabled.is_(False), u.licenses != "")
    return [user_from_row(r) for r in conn.execute(_for(stmt, u.tenant_id, tenant))]


# --- managed devices ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceRow:
    tenant_id: str
    id: str
    name: str | None
    operating_system: str | None
    os_version: str | None
    compliance_state: str | None
    is_encrypted: bool | None
    last_sync: datetime | None
    user: str | None  # the primary user's UPN


def managed_devices_of(
    conn: Connection, tenant: str | None = None, *, where: Any = None
) -> Iterator[DeviceRow]:
    """The managed devices matching ``where`` (SQL). The primary user's UPN is taken out of the
    stored object by the database (``json_extract`` / ``->>``): decoding each device's whole
    JSON in Python was most of the device checks' time at 5,000 customers (docs/benchmarks.md,
    "Dashboard search at 5,000 customers")."""
    md = managed_devices.c
    upn = type_coerce(md.raw, JSON)["userPrincipalName"].as_string()
    stmt = select(
        md.tenant_id, md.id, md.device_name, md.operating_system, md.os_version,
        md.compliance_state, md.is_encrypted, md.last_sync, upn.label("upn"),
    )  # fmt: skip
    if where is not None:
        stmt = stmt.where(where)
    for row in conn.execute(_for(stmt, md.tenant_id, tenant)):
        # Intune's "never" is 0001-01-01: no time at all, as far as anyone acting on it cares.
        last = row.last_sync if row.last_sync is None or row.last_sync.year > 1 else None
        yield DeviceRow(
            row.tenant_id,
            row.id,
            row.device_name,
            row.operating_system,
            row.os_version,
            row.compliance_state,
            row.is_encrypted,
            last,
            row.upn or None,
        )


def os_versions(conn: Connection, operating_systems: Iterable[str]) -> list[tuple[str, str]]:
    """The distinct (operating system, version) pairs of the fleet's managed devices of these
    systems: a few hundred, where the devices are hundreds of thousands."""
    md = managed_devices.c
    stmt = (
        select(md.operating_system, md.os_version)
        .where(md.operating_system.in_(list(operating_systems)), md.os_version.is_not(None))
        .distinct()
    )
    return [(row[0], row[1]) for row in conn.execute(stmt)]


# --- licences -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LicenceRow:
    tenant_id: str
    sku_id: str
    part_number: str | None
    status: str | None  # Enabled, Warning, Suspended, …
    bought: int | None  # enabled prepaid units
    assigned: int | None  # consumedUnits
    on_disabled_users: int  # assigned to accounts that are disabled

    @property
    def unused(self) -> int | None:
        if self.bought is None or self.assigned is None:
            return None
        return max(0, self.bought - self.assigned)


def licences(conn: Connection, tenant: str | None = None) -> list[LicenceRow]:
    s = subscribed_skus.c
    stmt = select(
        s.tenant_id, s.sku_id, s.sku_part_number, s.capability_status, s.prepaid_units,
        s.consumed_units,
    ).order_by(s.tenant_id, s.sku_part_number)  # fmt: skip
    # Seats on disabled accounts, per (tenant, sku): licence lists are few distinct strings, so
    # grouping by them and splitting in Python stays one small query on any fleet.
    u = users.c
    combos = (
        select(u.tenant_id, u.licenses, func.count())
        .where(u.account_enabled.is_(False), u.licenses != "")
        .group_by(u.tenant_id, u.licenses)
    )
    disabled: dict[tuple[str, str], int] = {}
    for tenant_id, combo, n in conn.execute(_for(combos, u.tenant_id, tenant)):
        for sku in combo.split(","):
            disabled[tenant_id, sku] = disabled.get((tenant_id, sku), 0) + n
    return [
        LicenceRow(
            row.tenant_id,
            row.sku_id or "",
            row.sku_part_number,
            row.capability_status,
            row.prepaid_units,
            row.consumed_units,
            disabled.get((row.tenant_id, row.sku_id or ""), 0),
        )
        for row in conn.execute(_for(stmt, s.tenant_id, tenant))
    ]
