"""Bringing a store made by an earlier cspgraph up to date, in place, when it is opened.

A new store is created at the current version. An existing one gets what it lacks, one numbered
step after another, inside the transaction that opens it, so a crash leaves it as it was:

1. Licences, encryption, OS versions and the names of privileged role holders: new columns
   (``users.licenses``, ``managed_devices.os_version`` and ``is_encrypted``,
   ``role_members.member_type`` and ``display_name``) and new tables (runs, coverage, security
   state, subscribed skus, …). The rows already there cannot know the new columns, so the saved
   position of every users and managed devices pull is forgotten: the next sync pulls them whole
   and fills the columns, instead of deltas that would leave the old rows without licences for
   ever. Until then those columns are NULL, which the report shows as unknown.
2. Whether a customer's GDAP relationship extends itself and when it was created
   (``customer_access.gdap_auto_extend`` and ``gdap_created``), for the GDAP checks. NULL until
   the next sync reads the relationships again (the checks then say so).

The version lives in ``schema_version``. Two processes opening an old store at once take turns:
SQLite's writer lock (the store opens with BEGIN IMMEDIATE) or a PostgreSQL advisory lock.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Column, inspect, select
from sqlalchemy.engine import Connection

from cspgraph.fleet import history_schema
from cspgraph.fleet.schema import managed_devices, metadata, role_members, users

# An arbitrary constant: the PostgreSQL advisory lock that serialises schema changes.
_PG_LOCK = 0x63737067  # "cspg"

Step = Callable[[Connection], None]


def _add_columns(conn: Connection, *columns: Column[object]) -> None:
    existing: dict[str, set[str]] = {}
    inspector = inspect(conn)
    for column in columns:
        table = column.table.name
        if table not in existing:
            existing[table] = {c["name"] for c in inspector.get_columns(table)}
        if column.name in existing[table]:
            continue
        kind = column.type.compile(dialect=conn.dialect)
        # Names and types come from the schema module, never from input.
        conn.exec_driver_sql(f'ALTER TABLE {table} ADD COLUMN "{column.name}" {kind}')


def _step_1_licences_and_history(conn: Connection) -> None:
    _add_columns(
        conn,
        users.c.licenses,
        managed_devices.c.os_version,
        managed_devices.c.is_encrypted,
        role_members.c.member_type,
        role_members.c.display_name,
    )
    conn.exec_driver_sql("DELETE FROM checkpoints WHERE resource IN ('users', 'managedDevices')")


def _step_2_gdap_expiry(conn: Connection) -> None:
    access = history_schema.customer_access.c
    _add_columns(conn, access.gdap_auto_extend, access.gdap_created)


STEPS: tuple[Step, ...] = (_step_1_licences_and_history, _step_2_gdap_expiry)
SCHEMA_VERSION = len(STEPS)


def prepare(conn: Connection) -> int:
    """Create the schema of a new store, or upgrade an existing one; returns the version it was
    at before (the current one for a new store). Runs in the caller's transaction."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
    existed = inspect(conn).has_table("customers")
    metadata.create_all(conn)
    version_table = history_schema.schema_version
    stored = conn.execute(select(version_table.c.version)).scalar_one_or_none()
    if stored is None:
        before = 0 if existed else SCHEMA_VERSION
        conn.execute(version_table.insert().values(id=1, version=before))
    else:
        before = stored
    for step in STEPS[before:]:
        step(conn)
    if before < SCHEMA_VERSION:
        conn.execute(version_table.update().values(version=SCHEMA_VERSION))
    return before
