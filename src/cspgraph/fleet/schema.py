"""The fleet store's schema: its tables, their typed columns and indexes, and how a Graph object
becomes a row.

One table per Graph resource, keyed by (tenant_id, id), with a few typed columns that the report
queries and the object as received (``raw``, JSON); ``seen_run`` is the mark-and-sweep mark of a
full pull (see :mod:`cspgraph.fleet.store`). A resource's table and its row builder change
together: a new typed column needs both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
)
from sqlalchemy.types import TypeEngine

from cspgraph.fleet.outcomes import CustomerStatus

RESOURCES = ("users", "groups", "devices", "managedDevices", "organization", "subscribedSkus")
# The resources whose objects can be members of groups and directory roles.
DIRECTORY_MEMBERS = ("users", "groups", "devices")
STATUSES = tuple(status.value for status in CustomerStatus)  # what customers.status may hold


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the backend stores.

    SQLite keeps no zone; without this a value read back would be naive and compare wrongly with
    the aware datetimes the rest of cspgraph uses."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RawJson(TypeDecorator[Any]):
    """JSONB on PostgreSQL, which makes the raw objects queryable there; JSON text on SQLite.

    A type of its own rather than ``JSON().with_variant(JSONB(), "postgresql")``: naming JSONB at
    import time loads SQLAlchemy's whole PostgreSQL dialect package (~16 ms), which a SQLite
    sync never needs."""

    impl = JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(JSON(none_as_null=True))


metadata = MetaData()


def _object_table(name: str, *typed: Column[Any]) -> Table:
    return Table(
        name,
        metadata,
        Column("tenant_id", String, primary_key=True),
        Column("id", String, primary_key=True),
        *typed,
        Column("raw", RawJson(), nullable=False),
        Column("seen_run", String),
    )


customers = Table(
    "customers",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("domain", String),
    Column("display_name", String),
    Column("region", String),
    Column("status", String),
    Column("status_reason", String),
    Column("error_class", String),
    Column("status_at", UtcDateTime),
    Column("last_sync_at", UtcDateTime),
)

users = _object_table(
    "users",
    Column("upn", String),
    Column("display_name", String),
    Column("account_enabled", Boolean),
    Column("user_type", String),
    # The sku ids of assignedLicenses, sorted and comma-separated ("" for none); NULL when the
    # object came without assignedLicenses (a store synced before licences were): unknown.
    Column("licenses", String),
)
groups = _object_table(
    "groups",
    Column("display_name", String),
    Column("security_enabled", Boolean),
)
devices = _object_table(
    "devices",
    Column("display_name", String),
    Column("operating_system", String),
    Column("account_enabled", Boolean),
)
managed_devices = _object_table(
    "managed_devices",
    Column("device_name", String),
    Column("operating_system", String),
    Column("compliance_state", String),
    Column("user_id", String),
    Column("last_sync", UtcDateTime),
    Column("os_version", String),
    Column("is_encrypted", Boolean),
)
organizations = _object_table(
    "organizations",
    Column("display_name", String),
    Column("country", String),
)
# The licences a customer bought (GET /subscribedSkus, whole each run): seats bought (enabled
# prepaid units) and assigned (consumedUnits).
subscribed_skus = _object_table(
    "subscribed_skus",
    Column("sku_id", String),
    Column("sku_part_number", String),
    Column("capability_status", String),
    Column("prepaid_units", Integer),
    Column("consumed_units", Integer),
)

# The membership tables are their primary key and nothing else: WITHOUT ROWID stores each row
# once, in the key's own B-tree, instead of a rowid table plus a key index (on the bench fleet,
# 119,000 memberships were 40 % of the database, and every row was written twice).
group_members = Table(
    "group_members",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("group_id", String, primary_key=True),
    Column("member_id", String, primary_key=True),
    sqlite_with_rowid=False,
)
directory_roles = Table(
    "directory_roles",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("role_template_id", String, primary_key=True),
    Column("display_name", String),
)
role_members = Table(
    "role_members",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("role_template_id", String, primary_key=True),
    Column("member_id", String, primary_key=True),
    # What the role's member list said of the member: "user", "group", "servicePrincipal", and
    # its name (UPN or display name), so a report names admins the store has no row for.
    Column("member_type", String),
    Column("display_name", String),
    sqlite_with_rowid=False,
)
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("resource", String, primary_key=True),
    Column("next_link", String),
    Column("delta_link", String),
    Column("full_pull", Boolean, nullable=False),
    Column("run_id", String),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Which sync run may write a customer's rows (fleet/leases.py), one row per tenant held. Times are
# seconds since the epoch by the database's own clock, so machines sharing a store agree on them;
# machine, pid and pid_started let a run on the same machine see that a holder died (kill -9).
sync_leases = Table(
    "sync_leases",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("holder", String, nullable=False),
    Column("machine", String),
    Column("pid", Integer),
    Column("pid_started", String),
    Column("acquired_at", Float(precision=53), nullable=False),
    Column("expires_at", Float(precision=53), nullable=False),
)

# Only what the report and the delete paths read; every extra index is paid on each upsert.
Index("ix_users_enabled", users.c.tenant_id, users.c.account_enabled, users.c.user_type)
Index(
    "ix_managed_devices_state",
    managed_devices.c.tenant_id,
    managed_devices.c.compliance_state,
    managed_devices.c.operating_system,
)
# No index of memberships by member: only deleting an object looks them up that way, once per
# page of deletions (store.py), while every sync writes them; the index cost a fifth of the
# store's CPU on the bench fleet. The report joins memberships by group, the primary key's order.

OBJECT_TABLES: dict[str, Table] = {
    "users": users,
    "groups": groups,
    "devices": devices,
    "managedDevices": managed_devices,
    "organization": organizations,
    "subscribedSkus": subscribed_skus,
}


# --- Graph object -> row ------------------------------------------------------------------------
# One small function per resource, producing the driver's own values (JSON already serialised) as
# a tuple in the table's column order: the upserts bypass SQLAlchemy's per-row parameter
# processing (half the CPU of the write path, measured), and positional parameters spare the
# driver a name lookup per value.

RowBuilder = Callable[[str, Mapping[str, Any], "str | None"], tuple[Any, ...]]


def _user_row(tenant_id: str, o: Mapping[str, Any], run: str | None) -> tuple[Any, ...]:
    get = o.get
    return (
        tenant_id,
        o["id"],
        get("userPrincipalName"),
        get("displayName"),
        get("accountEnabled"),
        get("userType"),
        licence_ids(o),
        json_text(o),
        run,
    )


def licence_ids(user: Mapping[str, Any]) -> str | None:
    """The ``licenses`` column: sku ids sorted and comma-separated; None when not sent."""
    assigned = user.get("assignedLicenses")
    if not isinstance(assigned, list):
        return None
    ids = {str(a["skuId"]).lower() for a in assigned if isinstance(a, dict) and a.get("skuId")}
    return ",".join(sorted(ids))


def _group_row(tenant_id: str, o: Mapping[str, Any], run: str | None) -> tuple[Any, ...]:
    if "members@delta" in o:
        # Membership lives in group_members; a big group's member list must not bloat the row.
        o = {k: v for k, v in o.items() if k != "members@delta"}
    return (tenant_id, o["id"], o.get("displayName"), o.get("securityEnabled"), json_text(o), run)


def _device_row(tenant_id: str, o: Mapping[str, Any], run: str | None) -> tuple[Any, ...]:
    get = o.get
    return (
        tenant_id,
        o["id"],
        get("displayName"),
        get("operatingSystem"),
        get("accountEnabled"),
        json_text(o),
        run,
    )


def _managed_device_row(tenant_id: str, o: Mapping[str, Any], run: str | None) -> tuple[Any, ...]:
    get = o.get
    return (
        tenant_id,
        o["id"],
        get("deviceName"),
        get("operatingSystem"),
        get("complianceState"),
        get("userId") or None,
        parse_time(get("lastSyncDateTime")),
        get("osVersion"),
        get("isEncrypted"),
        json_text(o),
        run,
    )


def _organization_row(tenant_id: str, o: Mapping[str, Any], run: str | None) -> tuple[Any, ...]:
    return (tenant_id, o["id"], o.get("displayName"), o.get("countryLetterCode"), json_text(o), run)


def _subscribed_sku_row(tenant_id: str, o: Mapping[str, Any], run: str | None) -> tuple[Any, ...]:
    get = o.get
    prepaid = get("prepaidUnits")
    enabled = prepaid.get("enabled") if isinstance(prepaid, dict) else None
    return (
        tenant_id,
        o["id"],
        str(get("skuId") or "").lower() or None,
        get("skuPartNumber"),
        get("capabilityStatus"),
        enabled if isinstance(enabled, int) else None,
        get("consumedUnits") if isinstance(get("consumedUnits"), int) else None,
        json_text(o),
        run,
    )


def sqlite_managed_device_row(
    tenant_id: str, o: Mapping[str, Any], run: str | None
) -> tuple[Any, ...]:
    row = _managed_device_row(tenant_id, o, run)
    at = _LAST_SYNC_AT
    return (*row[:at], _sqlite_time(row[at]), *row[at + 1 :])


def _sqlite_time(value: datetime | None) -> str | None:
    """A UTC timestamp as SQLAlchemy's SQLite DateTime stores it (naive), so reads parse it."""
    if value is None:
        return None
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


ROW_BUILDERS: dict[str, RowBuilder] = {
    "users": _user_row,
    "groups": _group_row,
    "devices": _device_row,
    "managedDevices": _managed_device_row,
    "organization": _organization_row,
    "subscribedSkus": _subscribed_sku_row,
}
# What each builder's tuple holds, in order: the store checks its compiled upserts against these.
_TYPED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": (
        "tenant_id",
        "id",
        "upn",
        "display_name",
        "account_enabled",
        "user_type",
        "licenses",
    ),
    "groups": ("tenant_id", "id", "display_name", "security_enabled"),
    "devices": ("tenant_id", "id", "display_name", "operating_system", "account_enabled"),
    "managedDevices": (
        "tenant_id",
        "id",
        "device_name",
        "operating_system",
        "compliance_state",
        "user_id",
        "last_sync",
        "os_version",
        "is_encrypted",
    ),
    "organization": ("tenant_id", "id", "display_name", "country"),
    "subscribedSkus": (
        "tenant_id",
        "id",
        "sku_id",
        "sku_part_number",
        "capability_status",
        "prepaid_units",
        "consumed_units",
    ),
}
ROW_COLUMNS = {name: (*typed, "raw", "seen_run") for name, typed in _TYPED_COLUMNS.items()}
_LAST_SYNC_AT = ROW_COLUMNS["managedDevices"].index("last_sync")  # SQLite stores it as text


def parse_time(value: Any) -> datetime | None:
    """A Graph timestamp as aware UTC; None for anything that is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        # Graph times are UTC ("Z"); a zone-less one is taken as UTC too.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def is_membership_only(o: Mapping[str, Any]) -> bool:
    """A groups delta reports a change of members alone as ``{"id", "members@delta"}``; writing
    that as the group's row would erase its name and flags."""
    return all(k == "id" or "@" in k for k in o)


def json_text(value: Any) -> str:
    # Text, not bytes: SQLite's json_* functions read a BLOB as its binary JSONB format.
    return orjson.dumps(value).decode()


def _now() -> datetime:
    return datetime.now(UTC)
