"""A store made by an earlier cspgraph is upgraded in place when opened, on SQLite and
PostgreSQL: new columns and tables appear, its data stays, and the pulls whose rows lack the new
columns start over so the next sync fills them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    MetaData,
    String,
    Table,
    create_engine,
    inspect,
    select,
)

from cspgraph.fleet import migrations
from cspgraph.fleet.checks import gdap, run_checks
from cspgraph.fleet.history_schema import HISTORY_TABLES, customer_access, schema_version
from cspgraph.fleet.schema import RawJson, UtcDateTime, users
from cspgraph.fleet.store import Store
from tests.unit import pg_fixture

pg_database = pg_fixture.pg_database
pg_schema_url = pg_fixture.pg_schema_url
pg_url = pg_fixture.pg_url
store_backend_url = pg_fixture.store_backend_url

T = "00000000-0000-0000-0000-0000000000aa"


def version_0() -> MetaData:
    """The store's schema before version 1, as cspgraph 0.1 created it (with the column types it
    used, which have not changed)."""
    md = MetaData()

    def objects(name: str, *typed: Column[Any]) -> None:
        Table(
            name, md, Column("tenant_id", String, primary_key=True),
            Column("id", String, primary_key=True), *typed,
            Column("raw", RawJson(), nullable=False), Column("seen_run", String),
        )  # fmt: skip

    Table(
        "customers", md, Column("tenant_id", String, primary_key=True),
        Column("domain", String), Column("display_name", String), Column("region", String),
        Column("status", String), Column("status_reason", String), Column("error_class", String),
        Column("status_at", UtcDateTime()),
        Column("last_sync_at", UtcDateTime()),
    )  # fmt: skip
    objects("users", Column("upn", String), Column("display_name", String),
            Column("account_enabled", Boolean), Column("user_type", String))  # fmt: skip
    objects("groups", Column("display_name", String), Column("security_enabled", Boolean))
    objects("devices", Column("display_name", String), Column("operating_system", String),
            Column("account_enabled", Boolean))  # fmt: skip
    objects("managed_devices", Column("device_name", String), Column("operating_system", String),
            Column("compliance_state", String), Column("user_id", String),
            Column("last_sync", UtcDateTime()))  # fmt: skip
    objects("organizations", Column("display_name", String), Column("country", String))
    for name, columns in (
        ("group_members", ("tenant_id", "group_id", "member_id")),
        ("role_members", ("tenant_id", "role_template_id", "member_id")),
    ):
        Table(name, md, *(Column(c, String, primary_key=True) for c in columns),
              sqlite_with_rowid=False)  # fmt: skip
    Table(
        "directory_roles", md, Column("tenant_id", String, primary_key=True),
        Column("role_template_id", String, primary_key=True), Column("display_name", String),
    )  # fmt: skip
    Table(
        "checkpoints", md, Column("tenant_id", String, primary_key=True),
        Column("resource", String, primary_key=True), Column("next_link", String),
        Column("delta_link", String), Column("full_pull", Boolean, nullable=False),
        Column("run_id", String), Column("updated_at", UtcDateTime(), nullable=False),
    )  # fmt: skip
    return md


def make_version_0_store(url: str) -> None:
    md = version_0()
    engine = create_engine(url)
    now = datetime(2026, 1, 2, tzinfo=UTC)
    with engine.begin() as conn:
        md.create_all(conn)
        t = md.tables
        conn.execute(t["customers"].insert().values(tenant_id=T, domain="old.example", status="ok"))
        conn.execute(
            t["users"].insert().values(
                tenant_id=T, id="u1", upn="u1@old.example", account_enabled=True,
                user_type="Member", raw={"id": "u1"},
            )
        )  # fmt: skip
        conn.execute(
            t["role_members"]
            .insert()
            .values(
                tenant_id=T, role_template_id="62e90394-69f5-4237-9190-012177145e10", member_id="u1"
            )
        )
        for resource in ("users", "groups", "managedDevices"):
            conn.execute(
                t["checkpoints"].insert().values(
                    tenant_id=T, resource=resource, delta_link=f"https://graph/{resource}?d",
                    full_pull=False, updated_at=now,
                )
            )  # fmt: skip
    engine.dispose()


def columns(store: Store, table: str) -> set[str]:
    return {c["name"] for c in inspect(store.engine).get_columns(table)}


def test_an_old_store_is_upgraded_in_place_and_keeps_its_data(store_backend_url: str) -> None:
    make_version_0_store(store_backend_url)
    with Store.open(store_backend_url) as store:
        assert {"licenses"} <= columns(store, "users")
        assert {"os_version", "is_encrypted"} <= columns(store, "managed_devices")
        assert {"member_type", "display_name"} <= columns(store, "role_members")
        tables = set(inspect(store.engine).get_table_names())
        assert {t.name for t in HISTORY_TABLES} | {"subscribed_skus"} <= tables
        with store.reading() as conn:
            assert conn.execute(select(schema_version.c.version)).scalar_one() == (
                migrations.SCHEMA_VERSION
            )
        # The data is still there, and what it lacks reads as unknown (NULL), not as "none".
        assert store.counts(T)["users"] == 1
        [summary] = store.customer_summaries()
        assert (summary.domain, summary.status, summary.admins) == ("old.example", "ok", 1)
        with store.reading() as conn:
            licences = conn.execute(select(users.c.licenses)).scalar_one()
        assert licences is None
        # Users and managed devices start over (their rows lack the new columns); groups keep
        # their delta link.
        assert store.checkpoint(T, "users") is None
        assert store.checkpoint(T, "managedDevices") is None
        groups = store.checkpoint(T, "groups")
        assert groups is not None and groups.delta_link == "https://graph/groups?d"
        # The upgraded store takes the new data.
        store.upsert_objects(T, "users", [{"id": "u2", "assignedLicenses": [{"skuId": "S1"}]}])


def test_opening_an_upgraded_store_again_changes_nothing(store_backend_url: str) -> None:
    make_version_0_store(store_backend_url)
    Store.open(store_backend_url).close()
    with Store.open(store_backend_url) as store:
        store.save_checkpoint(T, "users", next_link=None, delta_link="https://d", full_pull=False)
    with Store.open(store_backend_url) as store:
        # A second opening runs no step again: the new checkpoint survives.
        again = store.checkpoint(T, "users")
        assert again is not None and again.delta_link == "https://d"


def test_a_new_store_starts_at_the_current_version(store_backend_url: str) -> None:
    with Store.open(store_backend_url) as store, store.reading() as conn:
        assert conn.execute(select(schema_version.c.version)).scalar_one() == (
            migrations.SCHEMA_VERSION
        )


def test_two_openings_of_an_old_store_at_once_take_turns(store_backend_url: str) -> None:
    import threading

    url = store_backend_url
    make_version_0_store(url)
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            Store.open(url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Store.open(url) as store:
        assert "licenses" in columns(store, "users")


def test_a_version_1_store_gains_what_the_gdap_checks_read_and_they_read_it_as_unknown(
    store_backend_url: str,
) -> None:
    url = store_backend_url
    with Store.open(url) as store:
        store.upsert_customer(T, domain="old.example", display_name="Old", region="NA")
    engine = create_engine(url)
    with engine.begin() as conn:  # the store as version 1 left it
        for column in ("gdap_auto_extend", "gdap_created"):
            conn.exec_driver_sql(f"ALTER TABLE customer_access DROP COLUMN {column}")
        conn.exec_driver_sql("UPDATE schema_version SET version = 1")
        conn.execute(
            customer_access.insert().values(
                tenant_id=T, mode="gdap-app", gdap_known=True, gdap_relationship="old-one",
                gdap_status="active", gdap_end=datetime(2026, 1, 20, tzinfo=UTC),
                gdap_relationships=1,
            )
        )  # fmt: skip
    engine.dispose()
    with Store.open(url) as store:
        assert {"gdap_auto_extend", "gdap_created"} <= columns(store, "customer_access")
        with store.reading() as conn:
            assert conn.execute(select(schema_version.c.version)).scalar_one() == 2
        results = run_checks(
            store, now=datetime(2026, 1, 10, tzinfo=UTC), checks=gdap.CHECKS, tenants=[T]
        )
    [ending] = results.findings
    assert ending.check_id == "gdap.expiring"
    assert "whether it auto-extends is unknown" in ending.summary
