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

The tables and row builders are in :mod:`cspgraph.fleet.schema`, the report's summaries and their
queries in :mod:`cspgraph.fleet.summaries`; their public names are importable from here too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Table, create_engine, delete, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.sql.dml import Insert

from cspgraph.fleet.schema import (
    DIRECTORY_MEMBERS,
    OBJECT_TABLES,
    RESOURCES,
    ROW_BUILDERS,
    STATUSES,
    RawJson,
    RowBuilder,
    UtcDateTime,
    checkpoints,
    customers,
    devices,
    directory_roles,
    group_members,
    groups,
    is_membership_only,
    json_text,
    managed_devices,
    metadata,
    organizations,
    role_members,
    sqlite_managed_device_row,
    users,
)
from cspgraph.fleet.summaries import (
    GLOBAL_ADMIN_ROLE_TEMPLATE,
    CustomerSummary,
    FleetTotals,
    attention_order,
    read_compliance_by_customer,
    read_customer_summaries,
    read_os_mix,
    totals_of,
)

# The tables, their row builders and the report's value types live in schema.py and summaries.py;
# they stay importable from here, where they were first defined.
__all__ = [
    "DIRECTORY_MEMBERS",
    "GLOBAL_ADMIN_ROLE_TEMPLATE",
    "OBJECT_TABLES",
    "RESOURCES",
    "ROW_BUILDERS",
    "STATUSES",
    "Checkpoint",
    "CustomerSummary",
    "FleetTotals",
    "MemberChanges",
    "RawJson",
    "RowBuilder",
    "Store",
    "UtcDateTime",
    "attention_order",
    "checkpoints",
    "customers",
    "devices",
    "directory_roles",
    "group_members",
    "groups",
    "managed_devices",
    "member_changes_from_delta",
    "metadata",
    "normalize_url",
    "organizations",
    "role_members",
    "sqlite_file",
    "totals_of",
    "users",
]

# Ids per statement when deleting by id list: well under SQLite's and PostgreSQL's parameter caps.
_ID_CHUNK = 500


def _now() -> datetime:
    return datetime.now(UTC)


# --- Checkpoints and membership changes -----------------------------------------------------------


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


# --- Opening --------------------------------------------------------------------------------------


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
            self._builders["managedDevices"] = sqlite_managed_device_row

    @classmethod
    def open(cls, url: str) -> Store:
        """Open (and create if needed) the store at ``url``: a SQLAlchemy URL
        (``sqlite:///fleet.db``, ``postgresql+psycopg://user@host/db``) or a bare SQLite path."""
        url = normalize_url(url)
        engine = create_engine(url, json_serializer=json_text, json_deserializer=orjson.loads)
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
            objects = [o for o in objects if not is_membership_only(o)]
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
            return read_customer_summaries(conn)

    def fleet_totals(self) -> FleetTotals:
        return totals_of(self.customer_summaries())

    def os_mix(self) -> dict[str, int]:
        """Managed devices per operating system, fleet-wide, most common first."""
        with self._reading() as conn:
            return read_os_mix(conn)

    def compliance_by_customer(self) -> dict[str, dict[str, int]]:
        """tenant id -> managed devices per compliance state."""
        with self._reading() as conn:
            return read_compliance_by_customer(conn)
