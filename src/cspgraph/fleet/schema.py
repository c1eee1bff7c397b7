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
    Index,
    MetaData,
    String,
    Table,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB

RESOURCES = ("users", "groups", "devices", "managedDevices", "organization")
# The resources whose objects can be members of groups and directory roles.
DIRECTORY_MEMBERS = ("users", "groups", "devices")
STATUSES = ("ok", "running", "propagating", "needs_person", "failed")


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


# JSONB on PostgreSQL makes the raw objects queryable there; plain JSON text on SQLite.
RawJson = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

metadata = MetaData()


def _object_table(name: str, *typed: Column[Any]) -> Table:
    return Table(
        name,
        metadata,
        Column("tenant_id", String, primary_key=True),
        Column("id", String, primary_key=True),
        *typed,
        Column("raw", RawJson, nullable=False),
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
)
organizations = _object_table(
    "organizations",
    Column("display_name", String),
    Column("country", String),
)

group_members = Table(
    "group_members",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("group_id", String, primary_key=True),
    Column("member_id", String, primary_key=True),
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

# Only what the report and the delete paths read; every extra index is paid on each upsert.
Index("ix_users_enabled", users.c.tenant_id, users.c.account_enabled, users.c.user_type)
Index(
    "ix_managed_devices_state",
    managed_devices.c.tenant_id,
    managed_devices.c.compliance_state,
    managed_devices.c.operating_system,
)
Index("ix_group_members_member", group_members.c.tenant_id, group_members.c.member_id)

OBJECT_TABLES: dict[str, Table] = {
    "users": users,
    "groups": groups,
    "devices": devices,
    "managedDevices": managed_devices,
    "organization": organizations,
}


# --- Graph object -> row ------------------------------------------------------------------------
# One small function per resource, producing the driver's own values (JSON already serialised):
# the upserts bypass SQLAlchemy's per-row parameter processing, which measured as half the CPU
# of the write path.

RowBuilder = Callable[[str, Mapping[str, Any], "str | None"], dict[str, Any]]


def _user_row(tenant_id: str, o: Mapping[str, Any], run: str | None) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "id": o["id"],
        "upn": o.get("userPrincipalName"),
        "display_name": o.get("displayName"),
        "account_enabled": o.get("accountEnabled"),
        "user_type": o.get("userType"),
        "raw": json_text(o),
        "seen_run": run,
    }


def _group_row(tenant_id: str, o: Mapping[str, Any], run: str | None) -> dict[str, Any]:
    if "members@delta" in o:
        # Membership lives in group_members; a big group's member list must not bloat the row.
        o = {k: v for k, v in o.items() if k != "members@delta"}
    return {
        "tenant_id": tenant_id,
        "id": o["id"],
        "display_name": o.get("displayName"),
        "security_enabled": o.get("securityEnabled"),
        "raw": json_text(o),
        "seen_run": run,
    }


def _device_row(tenant_id: str, o: Mapping[str, Any], run: str | None) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "id": o["id"],
        "display_name": o.get("displayName"),
        "operating_system": o.get("operatingSystem"),
        "account_enabled": o.get("accountEnabled"),
        "raw": json_text(o),
        "seen_run": run,
    }


def _managed_device_row(tenant_id: str, o: Mapping[str, Any], run: str | None) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "id": o["id"],
        "device_name": o.get("deviceName"),
        "operating_system": o.get("operatingSystem"),
        "compliance_state": o.get("complianceState"),
        "user_id": o.get("userId") or None,
        "last_sync": _parse_time(o.get("lastSyncDateTime")),
        "raw": json_text(o),
        "seen_run": run,
    }


def _organization_row(tenant_id: str, o: Mapping[str, Any], run: str | None) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "id": o["id"],
        "display_name": o.get("displayName"),
        "country": o.get("countryLetterCode"),
        "raw": json_text(o),
        "seen_run": run,
    }


def sqlite_managed_device_row(
    tenant_id: str, o: Mapping[str, Any], run: str | None
) -> dict[str, Any]:
    row = _managed_device_row(tenant_id, o, run)
    row["last_sync"] = _sqlite_time(row["last_sync"])
    return row


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
}


def _parse_time(value: Any) -> datetime | None:
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
