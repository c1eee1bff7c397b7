"""The fleet store: every customer's directory and Intune inventory, in SQLite or PostgreSQL.

One table per Graph resource, keyed by (tenant_id, id), with a few typed columns that the report
queries and the object as received (``raw``, JSON). A page is written with one ``executemany``
of plain dicts through ``INSERT ... ON CONFLICT DO UPDATE`` (built with SQLAlchemy Core, compiled
once per store), so a page written twice changes nothing, and the sync streams pages without ever
holding a whole tenant in memory. Every write runs such prepared driver SQL on a pooled DBAPI
connection (see :class:`Store`); the report's queries are SQLAlchemy Core.

Resumability rests on one rule: a page's objects, its removals, its membership changes and the
checkpoint that says "continue after this page" commit in one transaction
(:meth:`Store.write_page`). Whatever kills the process, the store holds either the page and the
link after it, or neither.

Full (non-delta) pulls cannot see deletions, so they mark and sweep: every row written during a full
pull carries that pull's run id in ``seen_run``; the page that completes the pull deletes the rows
of that tenant and resource that the run did not see. The run id lives in the checkpoint row, so a
pull resumed after a crash keeps marking with the same id.

Two runs must never interleave one pull: the sync holds a lease per customer
(:mod:`cspgraph.fleet.leases`), and, whether or not a lease is held, a page written with a
:class:`PullPosition` commits only while the checkpoint is where that stream left it (the link the
page was fetched from, the run id of its full pull). A page of a run that another run has
overtaken raises :class:`CheckpointMovedError` and writes nothing, so no sweep ever runs under a
mark that another run's pages did not carry.

The tables and row builders are in :mod:`cspgraph.fleet.schema`, the report's summaries and their
queries in :mod:`cspgraph.fleet.summaries`; their public names are importable from here too.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Table, create_engine, event, func, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql.dml import Insert

from cspgraph.fleet import migrations
from cspgraph.fleet.outcomes import CustomerStatus
from cspgraph.fleet.schema import (
    DIRECTORY_MEMBERS,
    OBJECT_TABLES,
    RESOURCES,
    ROW_BUILDERS,
    ROW_COLUMNS,
    STATUSES,
    RawJson,
    RowBuilder,
    UtcDateTime,
    _sqlite_time,
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
from cspgraph.fleet.store_url import masked, open_error
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
from cspgraph.http.errors import TransientError

log = logging.getLogger(__name__)

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
    "CheckpointMovedError",
    "CustomerSummary",
    "FleetTotals",
    "MemberChanges",
    "PullPosition",
    "RawJson",
    "RoleMember",
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
class PullPosition:
    """Where a stream's pull stands as the stream knows it: ``link``, the nextLink or deltaLink
    its next page is fetched from (None: the first page of a new full pull), and ``run_id``, the
    mark of its full pull (None: a delta round)."""

    link: str | None
    run_id: str | None


class CheckpointMovedError(TransientError):
    """A page was not written: the checkpoint of its pull is no longer where the stream left it,
    because another sync run wrote this customer's resource in the meantime."""

    def __init__(self, tenant_id: str, resource: str) -> None:
        super().__init__(
            f"{resource}: another sync run wrote this customer's {resource} at the same time; "
            "this run stopped there and wrote nothing over it",
            tenant=tenant_id,
            reason="another sync run wrote this customer at the same time: run again",
        )


@dataclass(frozen=True, slots=True)
class RoleMember:
    """A holder of a directory role as the role's member list names it."""

    id: str
    kind: str | None = None  # user, group, servicePrincipal
    name: str | None = None  # a user's UPN, anything else's display name


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
        # 8 KiB pages for a new database (an existing one keeps its own): the sync's writes are
        # B-tree inserts at random keys, and every page they touch goes through the WAL; twice
        # the page, half the pages and their headers. Replaying the bench fleet: 0.45 -> 0.41
        # CPU s. Must come before WAL mode, which fixes the page size.
        cursor.execute("PRAGMA page_size=8192")
        # WAL: the report reads while the sync writes. NORMAL is crash-safe in WAL mode (a kill
        # loses nothing committed; only power loss can drop the last transactions).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        # 16 MiB of page cache: enough for the upserts' index pages, and full already at 100
        # customers, so memory stays flat as the fleet grows (64 MiB made peak RSS grow 1.36x
        # from 100 to 1,000 customers, measured in bench/).
        cursor.execute("PRAGMA cache_size=-16384")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that reads first and then
        # writes fails with SQLITE_BUSY without waiting when another writer got in between.
        immediate = conn.get_execution_options().get("cspgraph_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class StoreOpenError(ValueError):
    """The store could not be opened; the message (one line, password masked) says why."""


def _private_sqlite_file(file: Path) -> None:
    """Create a new store's file 0600 before SQLite does (SQLite would create it 0644 under the
    usual umask, and its -wal and -shm files take the database's mode): it holds every
    customer's directory. An existing file readable by others is narrowed, as the token cache
    is, when it is ours."""
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if not _is_sqlite_file(file):
            return  # not a store (a typo'd --db, /etc/passwd): opening it says so; touch nothing
        for path in (file, file.with_name(file.name + "-wal"), file.with_name(file.name + "-shm")):
            with suppress(FileNotFoundError, PermissionError):  # not ours: the owner's to narrow
                mode = path.stat().st_mode
                if stat.S_ISREG(mode) and mode & (stat.S_IRWXG | stat.S_IRWXO):
                    os.chmod(path, 0o600)
                    log.warning("%s was readable by others; narrowed it to 0600", path)
        return
    os.close(fd)


def _is_sqlite_file(file: Path) -> bool:
    """True for an SQLite database (its 16-byte header) or an empty file SQLite would adopt."""
    try:
        with open(file, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    return head in (b"", b"SQLite format 3\x00")


class Store:
    """The fleet database. Safe to share between threads: every call checks out its own
    connection and runs in its own transaction.

    Writes (and the checkpoint reads of the sync) run the driver's own SQL, prepared once per
    store, on a pooled DBAPI connection (:meth:`_writing`): the sync makes a few transactions per
    page and per customer, and SQLAlchemy's per-call statement building, coercion and cache-key
    generation measured as most of its CPU. Driver errors are raised as SQLAlchemy's
    :class:`~sqlalchemy.exc.DBAPIError`, as before. The report's queries stay SQLAlchemy Core."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self._dialect!r}: use SQLite or PostgreSQL")
        self._sqlite = self._dialect == "sqlite"
        self._ambient = threading.local()  # the cursor of this thread's batch(), if any
        dbapi = engine.dialect.loaded_dbapi
        self._dbapi_error: type[Exception] = dbapi.Error
        self._upserts = {name: self._upsert_sql(name) for name in OBJECT_TABLES}
        self._builders = dict(ROW_BUILDERS)
        if self._sqlite:
            self._builders["managedDevices"] = sqlite_managed_device_row
        # "IS DISTINCT FROM" as each dialect spells it (SQLite's IS NOT is null-safe).
        distinct = "IS NOT" if self._sqlite else "IS DISTINCT FROM"
        sql = self._sql
        self._sql_save_checkpoint = sql(
            "INSERT INTO checkpoints"
            " (tenant_id, resource, next_link, delta_link, full_pull, run_id, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, resource) DO UPDATE SET"
            " next_link = excluded.next_link, delta_link = excluded.delta_link,"
            " full_pull = excluded.full_pull, run_id = excluded.run_id,"
            " updated_at = excluded.updated_at"
        )
        self._sql_checkpoint = sql(
            "SELECT next_link, delta_link, full_pull, updated_at, run_id FROM checkpoints"
            " WHERE tenant_id = ? AND resource = ?"
        )
        self._sql_active_run = sql(
            "SELECT run_id FROM checkpoints WHERE tenant_id = ? AND resource = ?"
        )
        # FOR UPDATE: on PostgreSQL two transactions must not both find the position theirs.
        # SQLite's writers hold the database's write lock from BEGIN IMMEDIATE already.
        lock = "" if self._sqlite else " FOR UPDATE"
        self._sql_position = sql(
            "SELECT next_link, delta_link, run_id FROM checkpoints"  # noqa: S608 - constants
            f" WHERE tenant_id = ? AND resource = ?{lock}"
        )
        self._sql_end_run = sql(
            "UPDATE checkpoints SET run_id = NULL, updated_at = ?"
            " WHERE tenant_id = ? AND resource = ? AND run_id = ?"
        )
        self._sql_clear_checkpoints = sql("DELETE FROM checkpoints WHERE tenant_id = ?")
        # A later run that names customers by list knows less than Partner Center did: keep what
        # is already known rather than overwrite it with nothing.
        self._sql_upsert_customer = sql(
            "INSERT INTO customers (tenant_id, domain, display_name, region) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (tenant_id) DO UPDATE SET"
            " domain = coalesce(excluded.domain, customers.domain),"
            " display_name = coalesce(excluded.display_name, customers.display_name),"
            " region = coalesce(excluded.region, customers.region)"
        )
        # last_sync_at is given for "ok" only; any other status keeps the last one.
        self._sql_set_status = sql(
            "INSERT INTO customers"
            " (tenant_id, status, status_reason, error_class, status_at, last_sync_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET"
            " status = excluded.status, status_reason = excluded.status_reason,"
            " error_class = excluded.error_class, status_at = excluded.status_at,"
            " last_sync_at = coalesce(excluded.last_sync_at, customers.last_sync_at)"
        )
        self._sql_clear_members = sql("DELETE FROM group_members WHERE tenant_id = ?")
        self._sql_drop_group_members = sql(
            "DELETE FROM group_members WHERE tenant_id = ? AND group_id = ?"
        )
        self._sql_remove_member = sql(
            "DELETE FROM group_members WHERE tenant_id = ? AND group_id = ? AND member_id = ?"
        )
        self._sql_add_member = sql(
            "INSERT INTO group_members (tenant_id, group_id, member_id) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING"
        )
        # PostgreSQL: a page's links in one statement, two arrays, instead of psycopg's
        # executemany (a statement per link in a pipeline, dumped in Python): its pipeline was
        # the largest holder of a Celery worker's GIL (py-spy --gil, 1,000 customers).
        self._sql_add_members = (
            "INSERT INTO group_members (tenant_id, group_id, member_id)"
            " SELECT %s, g, m FROM unnest(%s::text[], %s::text[]) AS links(g, m)"
            " ON CONFLICT DO NOTHING"
        )
        self._sql_upsert_role = sql(
            "INSERT INTO directory_roles (tenant_id, role_template_id, display_name)"
            " VALUES (?, ?, ?) ON CONFLICT (tenant_id, role_template_id) DO UPDATE SET"
            " display_name = excluded.display_name"
        )
        self._sql_drop_role_members = sql(
            "DELETE FROM role_members WHERE tenant_id = ? AND role_template_id = ?"
        )
        self._sql_add_role_member = sql(
            "INSERT INTO role_members"
            " (tenant_id, role_template_id, member_id, member_type, display_name)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        )
        # Table and column names below are the schema's own constants, never input.
        unseen = "SELECT id FROM {} WHERE tenant_id = ? AND seen_run {} ?"
        self._sql_unseen = {
            name: sql(unseen.format(t.name, distinct)) for name, t in OBJECT_TABLES.items()
        }
        # Deleting by a list of ids in one statement: the list as a JSON array on SQLite, an
        # array on PostgreSQL. One statement, not one per id: memberships have no index by
        # member (see schema.py), so each statement scans the tenant's memberships once.
        self._sql_delete_in: dict[tuple[str, str], str] = {}
        for table, column in [
            *((t.name, "id") for t in OBJECT_TABLES.values()),
            ("group_members", "member_id"),
            ("group_members", "group_id"),
            ("role_members", "member_id"),
        ]:
            listed = "IN (SELECT value FROM json_each(?))" if self._sqlite else "= ANY(?)"
            match = f"{column} {listed}"
            self._sql_delete_in[table, column] = sql(
                f"DELETE FROM {table} WHERE tenant_id = ? AND {match}"  # noqa: S608
            )

    @classmethod
    def open(cls, url: str) -> Store:
        """Open (and create if needed) the store at ``url``: a SQLAlchemy URL
        (``sqlite:///fleet.db``, ``postgresql+psycopg://user@host/db``) or a bare SQLite path.

        A new SQLite file is created 0600 (SQLite gives its -wal and -shm files the database's
        mode). Anything that stops the store from opening (an unsupported or unparsable URL, a
        missing driver, an unwritable path, a file that is not a database, a server that does
        not answer) raises :class:`StoreOpenError`, whose one-line message never holds the
        password."""
        url = normalize_url(url)
        try:
            return cls._open(url)
        except StoreOpenError:
            raise
        except ModuleNotFoundError as exc:
            raise StoreOpenError(
                f"{masked(url)}: its database driver ({exc.name}) is not installed; for "
                "PostgreSQL use postgresql+psycopg://… (`pip install 'cspgraph[postgres]'`)"
            ) from None
        except (ValueError, OSError, SQLAlchemyError) as exc:
            raise StoreOpenError(open_error(url, exc)) from None

    @classmethod
    def _open(cls, url: str) -> Store:
        backend = make_url(url).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StoreOpenError(
                f"{masked(url)}: unsupported database {backend!r}; use SQLite "
                "(sqlite:///fleet.db, or a path) or PostgreSQL (postgresql+psycopg://…)"
            )
        engine = create_engine(url, json_serializer=json_text, json_deserializer=orjson.loads)
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine)
        file = sqlite_file(url)
        if file is not None:
            _private_sqlite_file(file)
        store = cls(engine)
        with engine.connect() as conn:
            conn.execution_options(cspgraph_write=True)
            with conn.begin():
                migrations.prepare(conn)  # creates a new store, upgrades an old one
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

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._dialect

    def driver_sql(self, text: str) -> str:
        """SQL written with ``?`` placeholders, in this driver's parameter style (for modules
        that keep tables of their own in the store, such as the leases)."""
        return self._sql(text)

    @contextmanager
    def write_transaction(self) -> Iterator[Any]:
        """One write transaction (the current :meth:`batch`'s, inside one) on a pooled
        connection, yielding a DBAPI cursor for :meth:`driver_sql` statements: committed when
        the block ends, rolled back on any exception; driver errors are raised as SQLAlchemy's
        :class:`~sqlalchemy.exc.DBAPIError`."""
        with self._writing() as cursor:
            yield cursor

    # --- for the modules that keep tables of their own (runs, partner apps, notifications) ------

    def reading(self) -> AbstractContextManager[Connection]:
        """A read transaction with one snapshot, for SQLAlchemy Core queries."""
        return self._reading()

    def driver_time(self, value: datetime | None) -> Any:
        """A timestamp as this driver takes it for a :class:`UtcDateTime` column."""
        return None if value is None else self._time(value)

    def read_driver_time(self, value: Any) -> datetime | None:
        """A :class:`UtcDateTime` column's value read on a DBAPI cursor, as aware UTC."""
        return None if value is None else self._read_time(value)

    # --- plumbing ----------------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        """Driver SQL written with ``?`` placeholders, in this driver's parameter style."""
        return text if self._sqlite else text.replace("?", "%s")

    def _insert(self, table: Table) -> Any:
        # Both dialects spell ON CONFLICT the same way but through their own insert() construct.
        if self._dialect == "postgresql":
            from sqlalchemy.dialects import postgresql  # ~16 ms: only a PostgreSQL store needs it

            return postgresql.insert(table)
        return sqlite.insert(table)

    def _upsert_sql(self, resource: str) -> str:
        """The resource's upsert as the driver's own SQL with positional parameters, for
        executemany with the tuples its row builder makes (compiled once; SQLAlchemy's per-row
        processing is skipped)."""
        positional = "qmark" if self._sqlite else "format"
        dialect_class: Any = type(self._engine.dialect)
        dialect = dialect_class(paramstyle=positional)
        compiled = self._upsert_statement(OBJECT_TABLES[resource]).compile(dialect=dialect)
        if tuple(compiled.positiontup or ()) != ROW_COLUMNS[resource]:
            raise AssertionError(f"{resource}: row builder and upsert disagree on column order")
        return str(compiled)

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

    def _time(self, value: datetime) -> Any:
        """A UTC timestamp as the driver takes it for a :class:`UtcDateTime` column."""
        return _sqlite_time(value) if self._sqlite else value

    @staticmethod
    def _read_time(value: Any) -> datetime:
        """A :class:`UtcDateTime` column's value as the driver returned it, as aware UTC."""
        if isinstance(value, str):  # SQLite: naive UTC text, as SQLAlchemy writes it
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @contextmanager
    def _writing(self) -> Iterator[Any]:
        """One write transaction on a pooled connection; yields a DBAPI cursor.

        SQLite's writers take the write lock up front (``BEGIN IMMEDIATE``): a deferred
        transaction that reads first and then writes fails with SQLITE_BUSY without waiting when
        another writer got in between. Commits on success, rolls back on any exception."""
        with self._transaction(write=True) as cursor:
            yield cursor

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run every store call this thread makes inside the block in one write transaction.

        Each call is atomic on its own; grouping calls keeps each one whole (its page and its
        checkpoint still commit together) while one commit serves many: on the sync's fleet a
        commit per page was a third of the writer's time. Either every call of the block commits
        or none does (any exception rolls the whole block back). Blocks do not nest."""
        if getattr(self._ambient, "cursor", None) is not None:
            raise RuntimeError("Store.batch() blocks do not nest")
        committed: list[Callable[[], None]] = []
        with self._transaction(write=True) as cursor:
            self._ambient.cursor = cursor
            self._ambient.committed = committed
            try:
                yield
            finally:
                self._ambient.cursor = None
                self._ambient.committed = None
        for fn in committed:
            fn()

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once what this thread has written is committed: at once, unless inside
        a :meth:`batch`, whose commit calls it (and whose rollback forgets it). For bookkeeping
        that other connections must not see ahead of the rows it describes (a lease's holder
        counted it held while the batch that inserts its row was still open, and a renewal on
        another connection, not seeing the row yet, judged it lost: PostgreSQL, under load)."""
        committed = getattr(self._ambient, "committed", None)
        if committed is None:
            fn()
        else:
            committed.append(fn)

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Any]:
        ambient = getattr(self._ambient, "cursor", None)
        if ambient is not None:  # inside batch(): its transaction is this call's
            yield ambient
            return
        fairy = self._engine.raw_connection()
        dbapi_conn: Any = fairy.dbapi_connection
        cursor: Any = None
        try:
            cursor = dbapi_conn.cursor()
            if self._sqlite and write:
                cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            dbapi_conn.commit()
        except BaseException as exc:
            self._abandon(fairy, dbapi_conn, cursor, exc)
            if isinstance(exc, self._dbapi_error):
                raise self._wrap(fairy, cursor, exc) from exc
            raise
        finally:
            if cursor is not None:
                with suppress(Exception):
                    cursor.close()
            fairy.close()

    def _abandon(self, fairy: Any, dbapi_conn: Any, cursor: Any, exc: BaseException) -> None:
        try:
            dbapi_conn.rollback()
        except Exception:
            fairy.invalidate(exc if isinstance(exc, Exception) else None)

    def _wrap(self, fairy: Any, cursor: Any, exc: Exception) -> BaseException:
        """A driver error as SQLAlchemy raises it (what the sync's retry logic looks at)."""
        dialect = self._engine.dialect
        error: Any = exc  # a DBAPI error (self._dbapi_error), which the stubs cannot name
        disconnect = dialect.is_disconnect(error, fairy.dbapi_connection, cursor)
        if disconnect and fairy.is_valid:
            fairy.invalidate(exc)
        wrapped = DBAPIError.instance(
            None, None, exc, self._dbapi_error, connection_invalidated=disconnect, dialect=dialect
        )
        return wrapped.with_traceback(exc.__traceback__)

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
        with self._writing() as cursor:
            cursor.execute(self._sql_upsert_customer, (tenant_id, domain, display_name, region))

    def clear_members(self, tenant_id: str) -> None:
        """Forget a tenant's group memberships, before a full pull of its groups reads them again.

        A full pull reports each group's members as additions only, so memberships that ended
        while no delta link was kept would otherwise stay for ever."""
        with self._writing() as cursor:
            cursor.execute(self._sql_clear_members, (tenant_id,))

    def set_status(
        self,
        tenant_id: str,
        status: CustomerStatus | str,
        *,
        reason: str | None = None,
        error_class: str | None = None,
    ) -> None:
        """Record a customer's sync status; ``ok`` also stamps ``last_sync_at``."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {STATUSES}")
        # The plain value: a driver may store an enum by its name (psycopg does), not its value.
        value = CustomerStatus(status).value
        now = self._time(_now())
        last_sync = now if value == CustomerStatus.OK else None
        with self._writing() as cursor:
            cursor.execute(
                self._sql_set_status, (tenant_id, value, reason, error_class, now, last_sync)
            )

    # --- objects -------------------------------------------------------------------------------

    def upsert_objects(
        self, tenant_id: str, resource: str, objects: Sequence[Mapping[str, Any]]
    ) -> int:
        """Insert or update objects as Graph returned them; returns how many were written."""
        self._table(resource)
        with self._writing() as cursor:
            run = self._active_run(cursor, tenant_id, resource)
            return self._upsert(cursor, tenant_id, resource, objects, run)

    def delete_objects(self, tenant_id: str, resource: str, ids: Sequence[str]) -> int:
        self._table(resource)
        with self._writing() as cursor:
            return self._delete(cursor, tenant_id, resource, ids)

    def _upsert(
        self,
        cursor: Any,
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
            cursor.executemany(self._upserts[resource], rows)
        return len(rows)

    def _delete_in(
        self, cursor: Any, table: str, column: str, tenant_id: str, ids: Sequence[str]
    ) -> int:
        """Delete a tenant's rows whose ``column`` is one of ``ids``; returns how many."""
        if not ids:
            return 0
        sql = self._sql_delete_in[table, column]
        if self._sqlite:
            cursor.execute(sql, (tenant_id, json_text(list(ids))))
        else:
            cursor.execute(sql, (tenant_id, list(ids)))
        return int(cursor.rowcount)

    def _delete(self, cursor: Any, tenant_id: str, resource: str, ids: Sequence[str]) -> int:
        table = self._table(resource).name
        deleted = self._delete_in(cursor, table, "id", tenant_id, ids)
        if resource in DIRECTORY_MEMBERS:
            # A deleted object is no longer anyone's member, and a deleted group has no members.
            self._delete_in(cursor, "group_members", "member_id", tenant_id, ids)
            self._delete_in(cursor, "role_members", "member_id", tenant_id, ids)
            if resource == "groups":
                self._delete_in(cursor, "group_members", "group_id", tenant_id, ids)
        return deleted

    # --- memberships ---------------------------------------------------------------------------

    def replace_members(self, tenant_id: str, group_id: str, member_ids: Sequence[str]) -> None:
        with self._writing() as cursor:
            changes = {group_id: MemberChanges(member_ids, (), True)}
            self._apply_members(cursor, tenant_id, changes)

    def apply_member_delta(
        self, tenant_id: str, group_id: str, added: Sequence[str], removed: Sequence[str]
    ) -> None:
        with self._writing() as cursor:
            self._apply_members(cursor, tenant_id, {group_id: MemberChanges(added, removed)})

    def _apply_members(
        self, cursor: Any, tenant_id: str, changes: Mapping[str, MemberChanges]
    ) -> None:
        """Apply the membership changes of several groups: every removal (or replacement) first,
        then every addition in one statement. Each row belongs to one group, so this is the same
        as applying the groups one after another."""
        replaced = [(tenant_id, g) for g, c in changes.items() if c.replace]
        if replaced:
            cursor.executemany(self._sql_drop_group_members, replaced)
        removed = [
            (tenant_id, g, m) for g, c in changes.items() if not c.replace for m in c.removed
        ]
        if removed:
            cursor.executemany(self._sql_remove_member, removed)
        if self._sqlite:
            added = [(tenant_id, g, m) for g, c in changes.items() for m in c.added]
            if added:
                cursor.executemany(self._sql_add_member, added)
            return
        groups = [g for g, c in changes.items() for _ in c.added]
        if groups:
            members = [m for c in changes.values() for m in c.added]
            cursor.execute(self._sql_add_members, (tenant_id, groups, members))

    def upsert_role_members(
        self,
        tenant_id: str,
        role_template_id: str,
        display_name: str,
        member_ids: Sequence[str | RoleMember],
    ) -> None:
        """Replace the members of one activated directory role (``directoryRoles`` has no delta
        and no paging, so the sync always has the complete list)."""
        self.replace_roles(tenant_id, {role_template_id: (display_name, member_ids)})

    def replace_roles(
        self, tenant_id: str, roles: Mapping[str, tuple[str, Sequence[str | RoleMember]]]
    ) -> None:
        """Replace the members of several directory roles (template id -> (role name, members))
        in one transaction; a role given with no members is recorded as synced and empty."""
        with self._writing() as cursor:
            for template, (name, members) in roles.items():
                cursor.execute(self._sql_upsert_role, (tenant_id, template, name))
                cursor.execute(self._sql_drop_role_members, (tenant_id, template))
                rows = [
                    (tenant_id, template, m.id, m.kind, m.name)
                    if isinstance(m, RoleMember)
                    else (tenant_id, template, m, None, None)
                    for m in members
                ]
                if rows:
                    cursor.executemany(self._sql_add_role_member, rows)

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
        position: PullPosition | None = None,
    ) -> None:
        """Store one page of a pull and the checkpoint after it, atomically.

        Objects carrying ``@removed`` (as delta pages deliver them) are deleted like
        ``removed_ids``. ``member_changes`` maps group id to its membership changes.

        With ``full_pull=True`` the rows are marked with the pull's run id (``position``'s, else
        the one recorded by :meth:`begin_full_pull`, or a new one on the first page); the page
        that completes the pull (``next_link=None``) also deletes the rows this run did not see,
        in the same transaction.

        ``position``: where the stream that fetched this page believes the pull stands (the link
        the page came from, its full pull's run id). The page is written only if the checkpoint
        is still there; otherwise another run has moved it, and :class:`CheckpointMovedError` is
        raised with nothing written.
        """
        self._table(resource)
        if position is not None and full_pull != (position.run_id is not None):
            raise ValueError("a full pull's page needs its run id in position, a delta page none")
        present = [o for o in objects if "@removed" not in o]
        gone = list(removed_ids)
        if len(present) != len(objects):
            gone += [o["id"] for o in objects if "@removed" in o]
        with self._writing() as cursor:
            run: str | None = None
            if position is not None:
                self._check_position(cursor, tenant_id, resource, position)
                run = position.run_id
            elif full_pull:
                run = self._active_run(cursor, tenant_id, resource) or uuid.uuid4().hex
            self._upsert(cursor, tenant_id, resource, present, run)
            if gone:
                self._delete(cursor, tenant_id, resource, gone)
            if member_changes:
                self._apply_members(cursor, tenant_id, member_changes)
            if run is not None and next_link is None:
                self._sweep(cursor, tenant_id, resource, run)
                run = None
            self._save_checkpoint(
                cursor, tenant_id, resource, next_link, delta_link, full_pull, run
            )

    def _check_position(
        self, cursor: Any, tenant_id: str, resource: str, position: PullPosition
    ) -> None:
        """Raise :class:`CheckpointMovedError` unless the checkpoint is where ``position`` says.

        A full pull's page: the checkpoint carries its run id and the link the page came from
        (none for the first page, which :meth:`begin_full_pull` prepared). A delta round's page:
        no full pull under way, and the checkpoint's nextLink (or, for the round's first page,
        its deltaLink) is the link the page came from."""
        cursor.execute(self._sql_position, (tenant_id, resource))
        row = cursor.fetchone()
        next_link, delta_link, run_id = row if row is not None else (None, None, None)
        if position.run_id is not None:
            here = run_id == position.run_id and next_link == position.link
        else:
            here = run_id is None and (next_link or delta_link) == position.link
        if not here:
            raise CheckpointMovedError(tenant_id, resource)

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
        with self._writing() as cursor:
            run = self._active_run(cursor, tenant_id, resource)
            self._save_checkpoint(
                cursor, tenant_id, resource, next_link, delta_link, full_pull, run
            )

    def checkpoint(self, tenant_id: str, resource: str) -> Checkpoint | None:
        with self._transaction(write=False) as cursor:
            cursor.execute(self._sql_checkpoint, (tenant_id, resource))
            row = cursor.fetchone()
        if row is None:
            return None
        next_link, delta_link, full_pull, updated_at, run_id = row
        return Checkpoint(
            next_link, delta_link, bool(full_pull), self._read_time(updated_at), run_id
        )

    def clear_checkpoints(self, tenant_id: str) -> None:
        """Forget where every pull of this customer stands: the next sync starts full pulls."""
        with self._writing() as cursor:
            cursor.execute(self._sql_clear_checkpoints, (tenant_id,))

    def begin_full_pull(self, tenant_id: str, resource: str, run_id: str) -> None:
        """Start a full pull from scratch: pages written from now on are marked with ``run_id``.

        The old delta link is dropped, so that a crash before the first page starts over."""
        self._table(resource)
        with self._writing() as cursor:
            self._save_checkpoint(cursor, tenant_id, resource, None, None, True, run_id)

    def finish_full_pull(self, tenant_id: str, resource: str, run_id: str) -> int:
        """Delete the rows a full pull did not see; returns how many. :meth:`write_page` does this
        itself on the last page, so calling this afterwards finds nothing more to delete."""
        self._table(resource)
        with self._writing() as cursor:
            deleted = self._sweep(cursor, tenant_id, resource, run_id)
            cursor.execute(self._sql_end_run, (self._time(_now()), tenant_id, resource, run_id))
            return deleted

    def _active_run(self, cursor: Any, tenant_id: str, resource: str) -> str | None:
        cursor.execute(self._sql_active_run, (tenant_id, resource))
        row = cursor.fetchone()
        return None if row is None else row[0]

    def _sweep(self, cursor: Any, tenant_id: str, resource: str, run_id: str) -> int:
        cursor.execute(self._sql_unseen[resource], (tenant_id, run_id))
        ids = [row[0] for row in cursor.fetchall()]
        return self._delete(cursor, tenant_id, resource, ids) if ids else 0

    def _save_checkpoint(
        self,
        cursor: Any,
        tenant_id: str,
        resource: str,
        next_link: str | None,
        delta_link: str | None,
        full_pull: bool,
        run_id: str | None,
    ) -> None:
        cursor.execute(
            self._sql_save_checkpoint,
            (
                tenant_id,
                resource,
                next_link,
                delta_link,
                full_pull,
                run_id,
                self._time(_now()),
            ),
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
