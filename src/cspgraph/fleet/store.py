"""The fleet store: every customer's directory and Intune inventory, in SQLite or PostgreSQL.

One table per Graph resource, keyed by (tenant_id, id), with a few typed columns that the report
queries and the object as received (``raw``, JSON). A page is written with one ``executemany``
of plain dicts through ``INSERT ... ON CONFLICT DO UPDATE`` (built with SQLAlchemy Core, compiled
once per dialect), so a page written twice changes nothing, and the sync streams pages without ever
holding a whole tenant in memory.

Resumability rests on one rule: a page's objects, its removals, its membership changes and the
checkpoint that says "continue after this page" commit in one transaction
(:meth:`Store.write_page`). Whatever kills the process, the store holds either the page and the
link after it, or neither.

Full (non-delta) pulls cannot see deletions, so they mark and sweep: every row written during a full
pull carries that pull's run id in ``seen_run``; the page that completes the pull deletes the rows
of that tenant and resource that the run did not see. The run id lives in the checkpoint row, so a
pull resumed after a crash keeps marking with the same id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
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
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    literal,
    select,
    union,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.sql.dml import Insert

RESOURCES = ("users", "groups", "devices", "managedDevices", "organization")
# The resources whose objects can be members of groups and directory roles.
DIRECTORY_MEMBERS = ("users", "groups", "devices")
STATUSES = ("ok", "running", "propagating", "needs_person", "failed")
# Entra built-in role template id, the same in every tenant (public Entra docs).
GLOBAL_ADMIN_ROLE_TEMPLATE = "62e90394-69f5-4237-9190-012177145e10"

# Ids per statement when deleting by id list: well under SQLite's and PostgreSQL's parameter caps.
_ID_CHUNK = 500


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
        "raw": _dumps(o),
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
        "raw": _dumps(o),
        "seen_run": run,
    }


def _device_row(tenant_id: str, o: Mapping[str, Any], run: str | None) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "id": o["id"],
        "display_name": o.get("displayName"),
        "operating_system": o.get("operatingSystem"),
        "account_enabled": o.get("accountEnabled"),
        "raw": _dumps(o),
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
        "raw": _dumps(o),
        "seen_run": run,
    }


def _organization_row(tenant_id: str, o: Mapping[str, Any], run: str | None) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "id": o["id"],
        "display_name": o.get("displayName"),
        "country": o.get("countryLetterCode"),
        "raw": _dumps(o),
        "seen_run": run,
    }


def _sqlite_managed_device_row(
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


def _is_membership_only(o: Mapping[str, Any]) -> bool:
    """A groups delta reports a change of members alone as ``{"id", "members@delta"}``; writing
    that as the group's row would erase its name and flags."""
    return all(k == "id" or "@" in k for k in o)


def _dumps(value: Any) -> str:
    # Text, not bytes: SQLite's json_* functions read a BLOB as its binary JSONB format.
    return orjson.dumps(value).decode()


def _now() -> datetime:
    return datetime.now(UTC)


# --- Public value types ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where the pull of one (tenant, resource) stands.

    ``next_link`` is set while a pull is in progress (resume there); ``delta_link`` once a pull has
    completed (the next run asks for changes only). ``run_id`` is the mark of an unfinished full
    pull."""

    next_link: str | None
    delta_link: str | None
    full_pull: bool
    updated_at: datetime
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class MemberChanges:
    """Membership changes of one group. ``replace=True`` means ``added`` is the complete list."""

    added: Sequence[str] = ()
    removed: Sequence[str] = ()
    replace: bool = False


def member_changes_from_delta(groups: Sequence[Mapping[str, Any]]) -> dict[str, MemberChanges]:
    """The ``members@delta`` annotations of a groups delta page, as ``write_page``'s
    ``member_changes``. Additions and removals only, never a replacement: a big group's members
    can be spread over several pages of the same delta round."""
    changes: dict[str, MemberChanges] = {}
    for group in groups:
        entries = group.get("members@delta")
        if not entries:
            continue
        added = [e["id"] for e in entries if "@removed" not in e]
        removed = [e["id"] for e in entries if "@removed" in e]
        changes[group["id"]] = MemberChanges(added, removed)
    return changes


@dataclass(frozen=True, slots=True)
class CustomerSummary:
    """Everything the report shows about one customer."""

    tenant_id: str
    display_name: str
    domain: str | None
    region: str | None
    status: str | None  # None: never synced
    status_reason: str | None
    error_class: str | None
    status_at: datetime | None
    last_sync_at: datetime | None
    users: int = 0
    users_enabled: int = 0
    guests: int = 0
    admins: int | None = None  # None: directory roles were never synced for this customer
    groups: int = 0
    devices: int = 0
    managed_devices: int = 0
    managed_by_os: dict[str, int] = field(default_factory=dict)
    compliance: dict[str, int] = field(default_factory=dict)

    @property
    def users_disabled(self) -> int:
        return self.users - self.users_enabled

    @property
    def noncompliant(self) -> int:
        return self.compliance.get("noncompliant", 0)

    @property
    def needs_attention(self) -> bool:
        return self.status == "failed" or self.noncompliant > 0


@dataclass(frozen=True, slots=True)
class FleetTotals:
    customers: int
    users: int
    users_enabled: int
    guests: int
    admins: int
    groups: int
    devices: int
    managed_devices: int
    customers_noncompliant: int
    compliance: dict[str, int]
    os_mix: dict[str, int]
    sync_health: dict[str, int]  # status -> customers; "never" for customers not yet synced
    last_sync_at: datetime | None  # the most recent successful sync of any customer
    oldest_sync_at: datetime | None  # the least recent one: how stale the fleet view can be

    @property
    def users_disabled(self) -> int:
        return self.users - self.users_enabled

    @property
    def noncompliant(self) -> int:
        return self.compliance.get("noncompliant", 0)


# Problems first: a failed sync hides the customer's current state, then people to chase.
_STATUS_RANK = {"failed": 0, "needs_person": 1, "propagating": 2, "running": 3, None: 4, "ok": 5}


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
        key = s.status or "never"
        health[key] = health.get(key, 0) + 1
    return FleetTotals(
        customers=len(summaries),
        users=sum(s.users for s in summaries),
        users_enabled=sum(s.users_enabled for s in summaries),
        guests=sum(s.guests for s in summaries),
        admins=sum(s.admins or 0 for s in summaries),
        groups=sum(s.groups for s in summaries),
        devices=sum(s.devices for s in summaries),
        managed_devices=sum(s.managed_devices for s in summaries),
        customers_noncompliant=sum(1 for s in summaries if s.noncompliant),
        compliance=dict(sorted(compliance.items(), key=lambda kv: -kv[1])),
        os_mix=dict(sorted(os_mix.items(), key=lambda kv: -kv[1])),
        sync_health=health,
        last_sync_at=max(synced, default=None),
        oldest_sync_at=min(synced, default=None),
    )


# --- Opening -------------------------------------------------------------------------------------


def normalize_url(url: str) -> str:
    """Accept a SQLAlchemy URL or a bare file path (taken as SQLite)."""
    if "://" in url:
        return url
    return f"sqlite:///{Path(url).expanduser()}"


def sqlite_file(url: str) -> Path | None:
    """The database file behind a SQLite URL, or None for other backends and in-memory SQLite."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so that "begin" below decides it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: the report reads while the sync writes. NORMAL is crash-safe in WAL mode (a kill
        # loses nothing committed; only power loss can drop the last transactions).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that reads first and then
        # writes fails with SQLITE_BUSY without waiting when another writer got in between.
        immediate = conn.get_execution_options().get("cspgraph_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Store:
    """The fleet database. Safe to share between threads: every call checks out its own
    connection and runs in its own transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self._dialect!r}: use SQLite or PostgreSQL")
        self._upserts = {
            name: self._driver_sql(self._upsert_statement(t)) for name, t in OBJECT_TABLES.items()
        }
        self._add_member = self._driver_sql(self._insert(group_members).on_conflict_do_nothing())
        self._add_role_member = self._insert(role_members).on_conflict_do_nothing()
        self._builders = dict(ROW_BUILDERS)
        if self._dialect == "sqlite":
            self._builders["managedDevices"] = _sqlite_managed_device_row

    @classmethod
    def open(cls, url: str) -> Store:
        """Open (and create if needed) the store at ``url``: a SQLAlchemy URL
        (``sqlite:///fleet.db``, ``postgresql+psycopg://user@host/db``) or a bare SQLite path."""
        url = normalize_url(url)
        engine = create_engine(url, json_serializer=_dumps, json_deserializer=orjson.loads)
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine)
        file = sqlite_file(url)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
        store = cls(engine)
        with store._writing() as conn:
            metadata.create_all(conn)
        return store

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        return self._engine

    # --- plumbing ----------------------------------------------------------------------------

    def _insert(self, table: Table) -> Any:
        # Both dialects spell ON CONFLICT the same way but through their own insert() construct.
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        return insert(table)

    def _driver_sql(self, stmt: Insert) -> str:
        """The statement as the driver's own SQL with named parameters, for executemany with the
        rows the builders make (compiled once; SQLAlchemy's per-row processing is skipped)."""
        dialect = sqlite.dialect(paramstyle="named") if self._dialect == "sqlite" else None
        return str(stmt.compile(dialect=dialect or self._engine.dialect))

    def _upsert_statement(self, table: Table) -> Insert:
        stmt = self._insert(table)
        keys = {c.name for c in table.primary_key.columns}
        changed = [c.name for c in table.columns if c.name not in keys]
        return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
            index_elements=list(table.primary_key.columns),
            set_={name: stmt.excluded[name] for name in changed},
            # Rewriting an identical row costs I/O on SQLite and a dead tuple on PostgreSQL;
            # a repeated full pull mostly sends identical objects.
            where=table.c.raw.is_distinct_from(stmt.excluded.raw)
            | table.c.seen_run.is_distinct_from(stmt.excluded.seen_run),
        )

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(cspgraph_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        # One transaction with one snapshot, so the report's figures add up while a sync writes.
        # SQLite's transactions are snapshots already; PostgreSQL's default is per statement.
        with self._engine.connect() as conn:
            if self._dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @staticmethod
    def _table(resource: str) -> Table:
        try:
            return OBJECT_TABLES[resource]
        except KeyError:
            raise ValueError(
                f"unknown resource {resource!r}; expected one of {RESOURCES}"
            ) from None

    # --- customers -----------------------------------------------------------------------------

    def upsert_customer(
        self, tenant_id: str, *, domain: str | None, display_name: str | None, region: str | None
    ) -> None:
        values = {"domain": domain, "display_name": display_name, "region": region}
        stmt = self._insert(customers).values(tenant_id=tenant_id, **values)
        # A later run that names customers by list knows less than Partner Center did: keep what
        # is already known rather than overwrite it with nothing.
        keep = {k: func.coalesce(stmt.excluded[k], customers.c[k]) for k in values}
        with self._writing() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=["tenant_id"], set_=keep))

    def clear_members(self, tenant_id: str) -> None:
        """Forget a tenant's group memberships, before a full pull of its groups reads them again.

        A full pull reports each group's members as additions only, so memberships that ended
        while no delta link was kept would otherwise stay for ever."""
        with self._writing() as conn:
            conn.execute(delete(group_members).where(group_members.c.tenant_id == tenant_id))

    def set_status(
        self,
        tenant_id: str,
        status: str,
        *,
        reason: str | None = None,
        error_class: str | None = None,
    ) -> None:
        """Record a customer's sync status; ``ok`` also stamps ``last_sync_at``."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {STATUSES}")
        now = _now()
        values: dict[str, Any] = {
            "status": status,
            "status_reason": reason,
            "error_class": error_class,
            "status_at": now,
        }
        if status == "ok":
            values["last_sync_at"] = now
        stmt = self._insert(customers).values(tenant_id=tenant_id, **values)
        with self._writing() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=["tenant_id"], set_=values))

    # --- objects -------------------------------------------------------------------------------

    def upsert_objects(
        self, tenant_id: str, resource: str, objects: Sequence[Mapping[str, Any]]
    ) -> int:
        """Insert or update objects as Graph returned them; returns how many were written."""
        self._table(resource)
        with self._writing() as conn:
            run = self._active_run(conn, tenant_id, resource)
            return self._upsert(conn, tenant_id, resource, objects, run)

    def delete_objects(self, tenant_id: str, resource: str, ids: Sequence[str]) -> int:
        self._table(resource)
        with self._writing() as conn:
            return self._delete(conn, tenant_id, resource, ids)

    def _upsert(
        self,
        conn: Connection,
        tenant_id: str,
        resource: str,
        objects: Sequence[Mapping[str, Any]],
        run: str | None,
    ) -> int:
        build = self._builders[resource]
        if resource == "groups" and run is None:
            # Not during a full pull: there every object is whole, and must be marked as seen.
            objects = [o for o in objects if not _is_membership_only(o)]
        rows = [build(tenant_id, o, run) for o in objects]
        if rows:
            conn.exec_driver_sql(self._upserts[resource], rows)
        return len(rows)

    def _delete(self, conn: Connection, tenant_id: str, resource: str, ids: Sequence[str]) -> int:
        table = self._table(resource)
        deleted = 0
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = list(ids[start : start + _ID_CHUNK])
            result = conn.execute(
                delete(table).where(table.c.tenant_id == tenant_id, table.c.id.in_(chunk))
            )
            deleted += result.rowcount
            if resource not in DIRECTORY_MEMBERS:
                continue
            # A deleted object is no longer anyone's member, and a deleted group has no members.
            conn.execute(
                delete(group_members).where(
                    group_members.c.tenant_id == tenant_id, group_members.c.member_id.in_(chunk)
                )
            )
            conn.execute(
                delete(role_members).where(
                    role_members.c.tenant_id == tenant_id, role_members.c.member_id.in_(chunk)
                )
            )
            if resource == "groups":
                conn.execute(
                    delete(group_members).where(
                        group_members.c.tenant_id == tenant_id, group_members.c.group_id.in_(chunk)
                    )
                )
        return deleted

    # --- memberships ---------------------------------------------------------------------------

    def replace_members(self, tenant_id: str, group_id: str, member_ids: Sequence[str]) -> None:
        with self._writing() as conn:
            self._apply_members(conn, tenant_id, group_id, MemberChanges(member_ids, (), True))

    def apply_member_delta(
        self, tenant_id: str, group_id: str, added: Sequence[str], removed: Sequence[str]
    ) -> None:
        with self._writing() as conn:
            self._apply_members(conn, tenant_id, group_id, MemberChanges(added, removed))

    def _apply_members(
        self, conn: Connection, tenant_id: str, group_id: str, changes: MemberChanges
    ) -> None:
        where = (group_members.c.tenant_id == tenant_id) & (group_members.c.group_id == group_id)
        if changes.replace:
            conn.execute(delete(group_members).where(where))
        elif changes.removed:
            removed = list(changes.removed)
            for start in range(0, len(removed), _ID_CHUNK):
                chunk = removed[start : start + _ID_CHUNK]
                conn.execute(
                    delete(group_members).where(where, group_members.c.member_id.in_(chunk))
                )
        if changes.added:
            rows = [
                {"tenant_id": tenant_id, "group_id": group_id, "member_id": m}
                for m in changes.added
            ]
            conn.exec_driver_sql(self._add_member, rows)

    def upsert_role_members(
        self, tenant_id: str, role_template_id: str, display_name: str, member_ids: Sequence[str]
    ) -> None:
        """Replace the members of one activated directory role (``directoryRoles`` has no delta
        and no paging, so the sync always has the complete list)."""
        role = {"display_name": display_name}
        with self._writing() as conn:
            conn.execute(
                self._insert(directory_roles)
                .values(tenant_id=tenant_id, role_template_id=role_template_id, **role)
                .on_conflict_do_update(index_elements=["tenant_id", "role_template_id"], set_=role)
            )
            conn.execute(
                delete(role_members).where(
                    role_members.c.tenant_id == tenant_id,
                    role_members.c.role_template_id == role_template_id,
                )
            )
            if member_ids:
                rows = [
                    {"tenant_id": tenant_id, "role_template_id": role_template_id, "member_id": m}
                    for m in member_ids
                ]
                conn.execute(self._add_role_member, rows)

    # --- pages and checkpoints -----------------------------------------------------------------

    def write_page(
        self,
        tenant_id: str,
        resource: str,
        objects: Sequence[Mapping[str, Any]],
        removed_ids: Sequence[str],
        *,
        next_link: str | None,
        delta_link: str | None,
        full_pull: bool,
        member_changes: Mapping[str, MemberChanges] | None = None,
    ) -> None:
        """Store one page of a pull and the checkpoint after it, atomically.

        Objects carrying ``@removed`` (as delta pages deliver them) are deleted like
        ``removed_ids``. ``member_changes`` maps group id to its membership changes.

        With ``full_pull=True`` the rows are marked with the pull's run id (the one recorded by
        :meth:`begin_full_pull`, or a new one on the first page); the page that completes the pull
        (``next_link=None``) also deletes the rows this run did not see, in the same transaction.
        """
        self._table(resource)
        present = [o for o in objects if "@removed" not in o]
        gone = list(removed_ids)
        if len(present) != len(objects):
            gone += [o["id"] for o in objects if "@removed" in o]
        with self._writing() as conn:
            run: str | None = None
            if full_pull:
                run = self._active_run(conn, tenant_id, resource) or uuid.uuid4().hex
            self._upsert(conn, tenant_id, resource, present, run)
            if gone:
                self._delete(conn, tenant_id, resource, gone)
            for group_id, changes in (member_changes or {}).items():
                self._apply_members(conn, tenant_id, group_id, changes)
            if run is not None and next_link is None:
                self._sweep(conn, tenant_id, resource, run)
                run = None
            self._save_checkpoint(conn, tenant_id, resource, next_link, delta_link, full_pull, run)

    def save_checkpoint(
        self,
        tenant_id: str,
        resource: str,
        *,
        next_link: str | None,
        delta_link: str | None,
        full_pull: bool,
    ) -> None:
        """Record a checkpoint on its own (keeps the run id of a full pull in progress)."""
        with self._writing() as conn:
            run = self._active_run(conn, tenant_id, resource)
            self._save_checkpoint(conn, tenant_id, resource, next_link, delta_link, full_pull, run)

    def checkpoint(self, tenant_id: str, resource: str) -> Checkpoint | None:
        c = checkpoints.c
        stmt = select(c.next_link, c.delta_link, c.full_pull, c.updated_at, c.run_id).where(
            c.tenant_id == tenant_id, c.resource == resource
        )
        with self._reading() as conn:
            row = conn.execute(stmt).one_or_none()
        if row is None:
            return None
        return Checkpoint(row.next_link, row.delta_link, row.full_pull, row.updated_at, row.run_id)

    def clear_checkpoints(self, tenant_id: str) -> None:
        """Forget where every pull of this customer stands: the next sync starts full pulls."""
        with self._writing() as conn:
            conn.execute(delete(checkpoints).where(checkpoints.c.tenant_id == tenant_id))

    def begin_full_pull(self, tenant_id: str, resource: str, run_id: str) -> None:
        """Start a full pull from scratch: pages written from now on are marked with ``run_id``.

        The old delta link is dropped, so that a crash before the first page starts over."""
        self._table(resource)
        with self._writing() as conn:
            self._save_checkpoint(conn, tenant_id, resource, None, None, True, run_id)

    def finish_full_pull(self, tenant_id: str, resource: str, run_id: str) -> int:
        """Delete the rows a full pull did not see; returns how many. :meth:`write_page` does this
        itself on the last page, so calling this afterwards finds nothing more to delete."""
        self._table(resource)
        with self._writing() as conn:
            deleted = self._sweep(conn, tenant_id, resource, run_id)
            conn.execute(
                update(checkpoints)
                .where(
                    checkpoints.c.tenant_id == tenant_id,
                    checkpoints.c.resource == resource,
                    checkpoints.c.run_id == run_id,
                )
                .values(run_id=None, updated_at=_now())
            )
            return deleted

    def _active_run(self, conn: Connection, tenant_id: str, resource: str) -> str | None:
        c = checkpoints.c
        stmt = select(c.run_id).where(c.tenant_id == tenant_id, c.resource == resource)
        run: str | None = conn.execute(stmt).scalar_one_or_none()
        return run

    def _sweep(self, conn: Connection, tenant_id: str, resource: str, run_id: str) -> int:
        table = self._table(resource)
        unseen = select(table.c.id).where(
            table.c.tenant_id == tenant_id, table.c.seen_run.is_distinct_from(run_id)
        )
        ids = list(conn.execute(unseen).scalars())
        return self._delete(conn, tenant_id, resource, ids) if ids else 0

    def _save_checkpoint(
        self,
        conn: Connection,
        tenant_id: str,
        resource: str,
        next_link: str | None,
        delta_link: str | None,
        full_pull: bool,
        run_id: str | None,
    ) -> None:
        values = {
            "next_link": next_link,
            "delta_link": delta_link,
            "full_pull": full_pull,
            "run_id": run_id,
            "updated_at": _now(),
        }
        stmt = self._insert(checkpoints).values(tenant_id=tenant_id, resource=resource, **values)
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["tenant_id", "resource"], set_=values)
        )

    # --- counts and report queries -------------------------------------------------------------

    def counts(self, tenant_id: str | None = None) -> dict[str, int]:
        """Rows per resource, plus ``members`` (group memberships), fleet-wide or for one tenant."""
        result: dict[str, int] = {}
        tables = [*OBJECT_TABLES.items(), ("members", group_members)]
        with self._reading() as conn:
            for name, table in tables:
                stmt = select(func.count()).select_from(table)
                if tenant_id is not None:
                    stmt = stmt.where(table.c.tenant_id == tenant_id)
                result[name] = conn.execute(stmt).scalar_one()
        return result

    def customer_summaries(self) -> list[CustomerSummary]:
        """One summary per customer, customers needing attention first (see attention_order)."""
        with self._reading() as conn:
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
            admins_by = self._admins_by_tenant(conn)
            managed: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
            md = managed_devices.c
            stmt = select(md.tenant_id, md.operating_system, md.compliance_state, func.count())
            stmt = stmt.group_by(md.tenant_id, md.operating_system, md.compliance_state)
            for tenant, os, state, n in conn.execute(stmt):
                by_os, by_state = managed.setdefault(tenant, ({}, {}))
                by_os[os or "unknown"] = by_os.get(os or "unknown", 0) + n
                by_state[state or "unknown"] = by_state.get(state or "unknown", 0) + n
            rows = conn.execute(select(customers)).all()

        summaries = []
        for row in rows:
            t = row.tenant_id
            n_users, n_enabled, n_guests = users_by.get(t, (0, 0, 0))
            by_os, by_state = managed.get(t, ({}, {}))
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
                    admins=admins_by.get(t),
                    groups=groups_by.get(t, 0),
                    devices=devices_by.get(t, 0),
                    managed_devices=sum(by_os.values()),
                    managed_by_os=by_os,
                    compliance=by_state,
                )
            )
        summaries.sort(key=attention_order)
        return summaries

    def _admins_by_tenant(self, conn: Connection) -> dict[str, int]:
        """Users holding Global Administrator, directly or through a role-assignable group (such
        groups cannot nest, so one level of expansion is complete). Tenants whose roles were
        synced but that have no such user get 0; tenants without synced roles are absent."""
        rm, gm = role_members.c, group_members.c
        is_ga = rm.role_template_id == GLOBAL_ADMIN_ROLE_TEMPLATE
        holders = union(
            select(rm.tenant_id, rm.member_id.label("user_id")).where(is_ga),
            select(rm.tenant_id, gm.member_id.label("user_id"))
            .join(group_members, and_(gm.tenant_id == rm.tenant_id, gm.group_id == rm.member_id))
            .where(is_ga),
        ).subquery()
        counted = (
            select(holders.c.tenant_id, func.count(holders.c.user_id.distinct()))
            .join(
                users,
                and_(users.c.tenant_id == holders.c.tenant_id, users.c.id == holders.c.user_id),
            )
            .group_by(holders.c.tenant_id)
        )
        result: dict[str, int] = {
            t: 0 for t in conn.execute(select(directory_roles.c.tenant_id).distinct()).scalars()
        }
        for tenant, n in conn.execute(counted):
            result[tenant] = n
        return result

    def fleet_totals(self) -> FleetTotals:
        return totals_of(self.customer_summaries())

    def os_mix(self) -> dict[str, int]:
        """Managed devices per operating system, fleet-wide, most common first."""
        os = func.coalesce(managed_devices.c.operating_system, literal("unknown"))
        stmt = select(os, func.count()).group_by(os).order_by(func.count().desc())
        with self._reading() as conn:
            return {name: n for name, n in conn.execute(stmt)}

    def compliance_by_customer(self) -> dict[str, dict[str, int]]:
        """tenant id -> managed devices per compliance state."""
        md = managed_devices.c
        state = func.coalesce(md.compliance_state, literal("unknown"))
        stmt = select(md.tenant_id, state, func.count()).group_by(md.tenant_id, state)
        result: dict[str, dict[str, int]] = {}
        with self._reading() as conn:
            for tenant, name, n in conn.execute(stmt):
                result.setdefault(tenant, {})[name] = n
        return result


def _counts_by_tenant(conn: Connection, table: Table) -> dict[str, int]:
    stmt = select(table.c.tenant_id, func.count()).group_by(table.c.tenant_id)
    return {tenant: n for tenant, n in conn.execute(stmt)}


def _grouped(conn: Connection, stmt: Any) -> dict[str, tuple[int, int, int]]:
    return {row[0]: (row[1], row[2], row[3]) for row in conn.execute(stmt)}
