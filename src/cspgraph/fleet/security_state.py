"""What changed since the last sync, where it matters for security: new Global Administrators
and privileged role holders, new guests, devices that turned non-compliant, licences bought or
dropped.

After each successful sync of a customer, :func:`record` reads the customer's state from the
store, compares it with the state the previous successful sync left (``security_state``) and
writes the differences to ``changes`` under the run. The first sync of a customer only records
the state: everything would be "new" otherwise. A kind whose data this sync could not read (no
role permission, no Intune licence, a ``--resources`` subset) keeps its old state and reports
nothing, so an unreadable kind never looks like "everything was removed".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from cspgraph.fleet import inventory
from cspgraph.fleet.history_schema import changes, customer_state, security_state
from cspgraph.fleet.resources import ADMIN_ROLES
from cspgraph.fleet.schema import managed_devices, users
from cspgraph.fleet.store import Store

GLOBAL_ADMIN = "global_admin"
PRIVILEGED_ROLE = "privileged_role"
GUEST = "guest"
NONCOMPLIANT_DEVICE = "noncompliant_device"
LICENCE = "licence"
KINDS = (GLOBAL_ADMIN, PRIVILEGED_ROLE, GUEST, NONCOMPLIANT_DEVICE, LICENCE)
# The resource each kind is read from.
SOURCE: dict[str, str] = {
    GLOBAL_ADMIN: ADMIN_ROLES,
    PRIVILEGED_ROLE: ADMIN_ROLES,
    GUEST: "users",
    NONCOMPLIANT_DEVICE: "managedDevices",
    LICENCE: "subscribedSkus",
}
ADDED, REMOVED, CHANGED = "added", "removed", "changed"
_MARK = ""  # the item that says "this kind was recorded" (an empty set is still a state)


@dataclass(frozen=True, slots=True)
class Item:
    label: str | None
    value: int | None = None


def read_state(
    conn: Any, tenant: str, kinds: set[str]
) -> tuple[dict[str, dict[str, Item]], dict[str, Any]]:
    """The customer's current state of ``kinds`` and its figures, from the store."""
    state: dict[str, dict[str, Item]] = {}
    figures: dict[str, Any] = {}
    if GLOBAL_ADMIN in kinds or PRIVILEGED_ROLE in kinds:
        holders = inventory.role_holders(conn, tenant)
        admins = {h.holder_id: Item(h.label) for h in holders if h.is_global_admin}
        state[GLOBAL_ADMIN] = admins
        state[PRIVILEGED_ROLE] = {
            f"{h.role_template_id}:{h.holder_id}": Item(f"{h.role}: {h.label}")
            for h in holders
            if not h.is_global_admin
        }
        figures["admins"] = len(inventory.global_admins(holders))  # as the report counts
        figures["privileged"] = len({h.holder_id for h in holders})
    if GUEST in kinds:
        u = users.c
        row = conn.execute(
            select(
                func.count(),
                func.sum(case((u.account_enabled.is_(True), 1), else_=0)),
                func.sum(case((u.user_type == "Guest", 1), else_=0)),
            ).where(u.tenant_id == tenant)
        ).one()
        figures.update(users=row[0], users_enabled=row[1] or 0, guests=row[2] or 0)
        state[GUEST] = {g.id: Item(g.upn or g.display_name) for g in inventory.guests(conn, tenant)}
    if NONCOMPLIANT_DEVICE in kinds:
        md = managed_devices.c
        row = conn.execute(
            select(
                func.count(),
                func.sum(case((md.compliance_state == "noncompliant", 1), else_=0)),
                func.sum(case((md.is_encrypted.is_(False), 1), else_=0)),
            ).where(md.tenant_id == tenant)
        ).one()
        figures.update(managed=row[0], noncompliant=row[1] or 0, unencrypted=row[2] or 0)
        state[NONCOMPLIANT_DEVICE] = {
            d.id: Item(d.name)
            for d in inventory.managed_devices_of(
                conn, tenant, where=md.compliance_state == "noncompliant"
            )
        }
    if LICENCE in kinds:
        skus = inventory.licences(conn, tenant)
        state[LICENCE] = {s.sku_id: Item(s.part_number, s.bought) for s in skus}
        figures["licences_bought"] = sum(s.bought or 0 for s in skus)
        figures["licences_assigned"] = sum(s.assigned or 0 for s in skus)
    return state, figures


def record(
    store: Store,
    cursor: Any,
    tenant: str,
    run_id: str,
    modes: Mapping[str, str],
    now: datetime,
) -> dict[str, Any]:
    """Compare, write the changes and the new state; returns the customer's figures. Runs on
    the writer thread inside the run's transaction (``cursor``); reads what is committed."""
    readable = {k for k, source in SOURCE.items() if _read(modes.get(source))}
    if not readable:
        return {}
    with store.reading() as conn:
        current, figures = read_state(conn, tenant, readable)
        previous = _previous(conn, tenant, readable)
    sql = store.driver_sql
    change_rows: list[tuple[Any, ...]] = []
    at = store.driver_time(now)
    for kind in readable:
        now_items = current.get(kind, {})
        before = previous.get(kind)
        if before is not None:  # the first record of a kind is a baseline, not news
            for item_id, item in now_items.items():
                old = before.get(item_id)
                if old is None:
                    change_rows.append(
                        (run_id, tenant, kind, item_id, ADDED, item.label, None, item.value, at)
                    )
                elif old.value != item.value:
                    change_rows.append(
                        (run_id, tenant, kind, item_id, CHANGED, item.label, old.value, item.value,
                         at)
                    )  # fmt: skip
            for item_id, old in before.items():
                if item_id not in now_items:
                    change_rows.append(
                        (run_id, tenant, kind, item_id, REMOVED, old.label, old.value, None, at)
                    )
        if before is not None and before == now_items:
            continue  # nothing to rewrite
        cursor.execute(
            sql("DELETE FROM security_state WHERE tenant_id = ? AND kind = ?"), (tenant, kind)
        )
        rows: list[tuple[str, str, str, str | None, int | None]] = [
            (tenant, kind, _MARK, None, None)
        ]
        rows += [(tenant, kind, i, item.label, item.value) for i, item in now_items.items()]
        cursor.executemany(
            sql(
                "INSERT INTO security_state (tenant_id, kind, item_id, label, value)"
                " VALUES (?, ?, ?, ?, ?)"
            ),
            rows,
        )
    if change_rows:
        cursor.executemany(
            sql(
                "INSERT INTO changes (run_id, tenant_id, kind, item_id, change, label, before,"
                " after, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            change_rows,
        )
    return figures


def _read(mode: str | None) -> bool:
    return mode is not None and not mode.startswith("skipped")


def _previous(conn: Any, tenant: str, kinds: set[str]) -> dict[str, dict[str, Item]]:
    s = security_state.c
    stmt = select(s.kind, s.item_id, s.label, s.value).where(
        s.tenant_id == tenant, s.kind.in_(sorted(kinds))
    )
    out: dict[str, dict[str, Item]] = {}
    for kind, item_id, label, value in conn.execute(stmt):
        items = out.setdefault(kind, {})
        if item_id != _MARK:
            items[item_id] = Item(label, value)
    return out


# --- reading what changed -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    tenant_id: str
    run_id: str
    kind: str
    item_id: str
    change: str  # added | removed | changed
    label: str | None
    before: int | None
    after: int | None
    at: datetime

    @property
    def text(self) -> str:
        what = self.label or self.item_id
        if self.kind == LICENCE and self.change == CHANGED:
            return f"{what}: {self.before} → {self.after} seats"
        if self.kind == LICENCE and self.change == ADDED:
            return f"{what}: bought ({self.after} seats)"
        return what


def latest_changes(conn: Any, tenant: str | None = None) -> list[Change]:
    """Per customer, what its last recorded sync changed (its most recent run with a state)."""
    c, s = changes.c, customer_state.c
    stmt = (
        select(c.tenant_id, c.run_id, c.kind, c.item_id, c.change, c.label, c.before, c.after, c.at)
        .join(customer_state, (s.tenant_id == c.tenant_id) & (s.state_run_id == c.run_id))
        .order_by(c.tenant_id, c.kind, c.change, c.label)
    )
    if tenant is not None:
        stmt = stmt.where(c.tenant_id == tenant)
    return [Change(*row) for row in conn.execute(stmt)]
