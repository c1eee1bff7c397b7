"""The fleet store, on SQLite and PostgreSQL alike (every test runs on both)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select

from cspgraph.fleet import store as store_module
from cspgraph.fleet.store import (
    GLOBAL_ADMIN_ROLE_TEMPLATE,
    CheckpointMovedError,
    MemberChanges,
    PullPosition,
    Store,
    group_members,
    managed_devices,
    member_changes_from_delta,
    sqlite_file,
    users,
)
from tests.unit import pg_fixture
from tests.unit.pg_fixture import (
    ALPHA,
    BRAVO,
    CHARLIE,
    DELTA,
    ECHO,
    FOXTROT,
    build_known_fleet,
    user,
)

# The store fixtures, bound here so that pytest finds them; every store test runs on both backends.
pg_database = pg_fixture.pg_database
pg_schema_url = pg_fixture.pg_schema_url
pg_url = pg_fixture.pg_url
store_backend_url = pg_fixture.store_backend_url
store = pg_fixture.store

T = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"


def rows(store: Store, table: Any, tenant: str = T) -> dict[str, Any]:
    with store.engine.connect() as conn:
        result = conn.execute(select(table).where(table.c.tenant_id == tenant))
        return {r.id: r for r in result}


def members(store: Store, group_id: str, tenant: str = T) -> set[str]:
    gm = group_members.c
    stmt = select(gm.member_id).where(gm.tenant_id == tenant, gm.group_id == group_id)
    with store.engine.connect() as conn:
        return set(conn.execute(stmt).scalars())


def page(store: Store, resource: str, objects: list[dict[str, Any]], **kw: Any) -> None:
    removed = kw.pop("removed", [])
    kw.setdefault("next_link", None)
    kw.setdefault("delta_link", None)
    kw.setdefault("full_pull", False)
    store.write_page(T, resource, objects, removed, **kw)


# --- schema -------------------------------------------------------------------------------------


def test_open_creates_the_schema_with_report_indexes(store: Store) -> None:
    inspector = inspect(store.engine)
    tables = set(inspector.get_table_names())
    assert {
        "customers", "users", "groups", "devices", "managed_devices", "organizations",
        "group_members", "directory_roles", "role_members", "checkpoints",
    } <= tables  # fmt: skip
    index_names = {i["name"] for i in inspector.get_indexes("managed_devices")}
    assert "ix_managed_devices_state" in index_names
    assert {c["name"] for c in inspector.get_columns("users")} >= {
        "tenant_id", "id", "upn", "display_name", "account_enabled", "user_type", "raw", "seen_run",
    }  # fmt: skip


def test_reopening_an_existing_store_keeps_its_data(store_backend_url: str) -> None:
    with Store.open(store_backend_url) as first:
        first.upsert_objects(T, "users", [user("u1")])
    with Store.open(store_backend_url) as again:
        assert again.counts(T)["users"] == 1


def test_sqlite_store_is_in_wal_mode_and_a_bare_path_is_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "fleet.db"
    assert sqlite_file(str(path)) == path
    assert sqlite_file("postgresql+psycopg://u@h/db") is None
    with Store.open(str(path)) as opened, opened.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 8192
    assert path.exists()


def test_an_existing_sqlite_database_keeps_its_page_size(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:  # as an earlier cspgraph created it: 4 KiB, WAL
        old.execute("PRAGMA page_size=4096")
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("CREATE TABLE earlier (x)")
    with Store.open(str(path)) as opened, opened.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 4096
        opened.upsert_objects(T, "users", [user("u1")])
        assert opened.counts(T)["users"] == 1


def test_unknown_resource_and_status_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown resource"):
        store.upsert_objects(T, "applications", [user("u1")])
    with pytest.raises(ValueError, match="unknown status"):
        store.set_status(T, "great")


# --- objects ------------------------------------------------------------------------------------


def test_upsert_extracts_typed_columns_and_keeps_the_raw_object(store: Store) -> None:
    raw = user("u1", enabled=False, guest=True) | {"jobTitle": "Ünïcode ✓", "businessPhones": []}
    assert store.upsert_objects(T, "users", [raw]) == 1
    row = rows(store, users)["u1"]
    assert (row.upn, row.display_name, row.account_enabled, row.user_type) == (
        "u1@example.com", "U1", False, "Guest",
    )  # fmt: skip
    assert row.raw == raw


def test_managed_device_columns_and_last_sync_are_typed(store: Store) -> None:
    device = {
        "id": "m1",
        "deviceName": "LAPTOP-1",
        "operatingSystem": "Windows",
        "complianceState": "noncompliant",
        "userId": "u1",
        "lastSyncDateTime": "2026-01-02T03:04:05Z",
    }
    never = {"id": "m2", "userId": "", "lastSyncDateTime": "0001-01-01T00:00:00Z"}
    store.upsert_objects(T, "managedDevices", [device, never])
    got = rows(store, managed_devices)
    assert got["m1"].last_sync == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (got["m1"].operating_system, got["m1"].compliance_state) == ("Windows", "noncompliant")
    assert got["m1"].user_id == "u1"
    assert got["m2"].user_id is None  # Intune sends "" for a device without a user
    assert got["m2"].last_sync == datetime(1, 1, 1, tzinfo=UTC)


def test_the_same_page_twice_changes_nothing(store: Store) -> None:
    objects = [user(f"u{i}") for i in range(50)]
    page(store, "users", objects, next_link="https://graph/next?1")
    before = store.counts(T)
    page(store, "users", objects, next_link="https://graph/next?1")
    assert store.counts(T) == before
    assert before["users"] == 50


def test_an_upsert_updates_a_changed_object(store: Store) -> None:
    store.upsert_objects(T, "users", [user("u1")])
    store.upsert_objects(T, "users", [user("u1", enabled=False) | {"displayName": "Renamed"}])
    row = rows(store, users)["u1"]
    assert (row.display_name, row.account_enabled, row.raw["displayName"]) == (
        "Renamed", False, "Renamed",
    )  # fmt: skip


def test_tenants_are_kept_apart(store: Store) -> None:
    store.upsert_objects(T, "users", [user("u1"), user("u2")])
    store.upsert_objects(OTHER, "users", [user("u1")])
    store.delete_objects(OTHER, "users", ["u1"])
    assert set(rows(store, users)) == {"u1", "u2"}
    assert store.counts(OTHER)["users"] == 0


def test_delete_objects_returns_the_number_deleted(store: Store) -> None:
    store.upsert_objects(T, "users", [user(f"u{i}") for i in range(1200)])
    # More ids than one statement takes, some unknown.
    ids = [f"u{i}" for i in range(1100)] + ["nobody"]
    assert store.delete_objects(T, "users", ids) == 1100
    assert store.counts(T)["users"] == 100


# --- pages: atomicity and delta -------------------------------------------------------------------


def test_a_failure_inside_write_page_leaves_nothing_of_the_page(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    page(store, "users", [user("u1"), user("u2")], next_link="https://graph/page2")
    store.replace_members(T, "g1", ["u1"])
    before = store.checkpoint(T, "users")

    def fail(*_args: Any, **_kw: Any) -> None:
        raise RuntimeError("disk on fire")

    # The checkpoint is the last statement: everything else of the page has run by then.
    monkeypatch.setattr(Store, "_save_checkpoint", fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        page(
            store,
            "users",
            [user("u3"), user("u1", enabled=False)],
            removed=["u2"],
            next_link="https://graph/page3",
            member_changes={"g1": MemberChanges(added=["u3"], removed=["u1"])},
        )
    monkeypatch.undo()

    got = rows(store, users)
    assert set(got) == {"u1", "u2"}
    assert got["u1"].account_enabled is True
    assert members(store, "g1") == {"u1"}
    assert store.checkpoint(T, "users") == before


def test_a_process_killed_mid_page_loses_nothing_committed(store_backend_url: str) -> None:
    # A real crash: the child dies (no exception handling, no rollback) with the page's rows
    # written but its transaction open.
    script = textwrap.dedent(
        """
        import os, sys
        from cspgraph.fleet.store import Store
        store = Store.open(sys.argv[1])
        user = lambda i: {"id": f"u{i}", "accountEnabled": True}
        store.write_page("T", "users", [user(1), user(2)], [], next_link="L2",
                         delta_link=None, full_pull=True)
        Store._save_checkpoint = lambda *a, **k: os._exit(17)
        store.write_page("T", "users", [user(3)], ["u1"], next_link="L3",
                         delta_link=None, full_pull=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, store_backend_url], capture_output=True, timeout=60
    )
    assert done.returncode == 17, done.stderr.decode()

    with Store.open(store_backend_url) as reopened:
        checkpoint = reopened.checkpoint("T", "users")
        assert checkpoint is not None
        assert (checkpoint.next_link, checkpoint.full_pull) == ("L2", True)
        assert set(rows(reopened, users, "T")) == {"u1", "u2"}
        # The resumed pull continues the same run: the final page sweeps only what it did not see.
        reopened.write_page(
            "T", "users", [user("u2"), user("u3")], [], next_link=None, delta_link="D",
            full_pull=True,
        )  # fmt: skip
        assert set(rows(reopened, users, "T")) == {"u1", "u2", "u3"}


def test_a_delta_page_applies_removals_and_member_changes(store: Store) -> None:
    page(store, "users", [user("u1"), user("u2"), user("u3")], delta_link="d1", full_pull=True)
    page(store, "groups", [{"id": "g1", "displayName": "G", "securityEnabled": True}])
    store.replace_members(T, "g1", ["u1", "u2"])

    page(
        store,
        "users",
        [user("u4"), {"id": "u2", "@removed": {"reason": "deleted"}}],
        removed=["u3"],
        delta_link="d2",
    )
    # Graph reports a change of membership alone as id + members@delta.
    groups_page = [{"id": "g1", "members@delta": [{"id": "u4"}, {"id": "u1", "@removed": {}}]}]
    changes = member_changes_from_delta(groups_page)
    assert changes == {"g1": MemberChanges(added=["u4"], removed=["u1"])}
    page(store, "groups", groups_page, member_changes=changes, delta_link="gd2")
    assert set(rows(store, users)) == {"u1", "u4"}
    assert members(store, "g1") == {"u4"}
    group = rows(store, store_module.groups)["g1"]
    assert group.display_name == "G"  # the membership-only entry did not blank the group
    assert "members@delta" not in group.raw
    checkpoint = store.checkpoint(T, "users")
    assert checkpoint is not None
    assert (checkpoint.next_link, checkpoint.delta_link, checkpoint.full_pull) == (
        None,
        "d2",
        False,
    )


def test_member_delta_and_replace(store: Store) -> None:
    store.replace_members(T, "g1", ["a", "b", "c"])
    store.apply_member_delta(T, "g1", added=["d", "a"], removed=["b", "zz"])
    assert members(store, "g1") == {"a", "c", "d"}
    store.replace_members(T, "g1", ["e"])
    assert members(store, "g1") == {"e"}
    store.replace_members(T, "g1", [])
    assert members(store, "g1") == set()


def test_deleting_objects_removes_their_memberships(store: Store) -> None:
    store.upsert_objects(T, "users", [user("u1"), user("u2")])
    store.upsert_objects(T, "groups", [{"id": "g1"}, {"id": "g2"}])
    store.replace_members(T, "g1", ["u1", "u2", "g2"])
    store.replace_members(T, "g2", ["u1"])
    store.upsert_role_members(T, GLOBAL_ADMIN_ROLE_TEMPLATE, "Global Administrator", ["u1"])
    store.delete_objects(T, "users", ["u1"])
    store.delete_objects(T, "groups", ["g2"])
    assert members(store, "g1") == {"u2"}
    assert members(store, "g2") == set()
    assert store.counts(T)["members"] == 1


def test_deleting_many_objects_at_once_touches_only_theirs(store: Store) -> None:
    ids = [f"u{i}" for i in range(1500)]
    store.upsert_objects(T, "users", [user(i) for i in ids])
    store.upsert_objects(OTHER, "users", [user("u1")])
    store.replace_members(T, "g1", ids)
    store.replace_members(OTHER, "g1", ["u1"])
    gone = ids[::2]  # every other one, interleaved with those that stay
    assert store.delete_objects(T, "users", [*gone, "never-existed"]) == len(gone)
    assert set(rows(store, users)) == set(ids[1::2])
    assert members(store, "g1") == set(ids[1::2])
    assert members(store, "g1", tenant=OTHER) == {"u1"}  # another tenant's u1 is untouched


# --- full pulls: mark and sweep -----------------------------------------------------------------


def test_a_full_pull_removes_what_it_did_not_see(store: Store) -> None:
    page(store, "users", [user(f"u{i}") for i in range(1, 6)], full_pull=True, delta_link="d0")
    store.replace_members(T, "g1", ["u4", "u1"])

    store.begin_full_pull(T, "users", "run-2")
    started = store.checkpoint(T, "users")
    assert started is not None
    assert (started.run_id, started.delta_link, started.next_link) == ("run-2", None, None)
    page(store, "users", [user("u1"), user("u2")], full_pull=True, next_link="p2")
    assert store.counts(T)["users"] == 5  # nothing is swept before the pull completes
    page(store, "users", [user("u3")], full_pull=True, delta_link="d1")

    assert set(rows(store, users)) == {"u1", "u2", "u3"}
    assert members(store, "g1") == {"u1"}
    done = store.checkpoint(T, "users")
    assert done is not None
    assert (done.run_id, done.delta_link, done.next_link) == (None, "d1", None)
    assert store.finish_full_pull(T, "users", "run-2") == 0  # write_page already swept


def test_finish_full_pull_sweeps_objects_upserted_outside_pages(store: Store) -> None:
    store.upsert_objects(T, "managedDevices", [{"id": f"m{i}"} for i in range(4)])
    store.upsert_objects(OTHER, "managedDevices", [{"id": "m0"}])
    store.begin_full_pull(T, "managedDevices", "r1")
    store.upsert_objects(T, "managedDevices", [{"id": "m0"}, {"id": "m2"}])
    assert store.finish_full_pull(T, "managedDevices", "r1") == 2
    assert store.counts(T)["managedDevices"] == 2
    assert store.counts(OTHER)["managedDevices"] == 1
    checkpoint = store.checkpoint(T, "managedDevices")
    assert checkpoint is not None and checkpoint.run_id is None


def test_a_full_pull_keeps_groups_it_lists_by_id_only(store: Store) -> None:
    page(store, "groups", [{"id": "g1", "displayName": "G"}, {"id": "g2"}], full_pull=True)
    page(store, "groups", [{"id": "g1"}, {"id": "g2"}], full_pull=True)
    assert set(rows(store, store_module.groups)) == {"g1", "g2"}


def test_a_new_full_pull_after_a_finished_one_marks_afresh(store: Store) -> None:
    # No begin_full_pull: write_page starts a run on the first full page, ends it on the last.
    page(store, "devices", [{"id": "d1"}, {"id": "d2"}], full_pull=True)
    page(store, "devices", [{"id": "d1"}], full_pull=True, next_link="more")
    page(store, "devices", [], full_pull=True)
    assert set(rows(store, store_module.devices)) == {"d1"}


# --- positions: a page is written only where its stream left the pull ---------------------------


def test_a_full_pull_another_run_began_refuses_the_first_runs_pages_and_sweeps_nothing(
    store: Store,
) -> None:
    page(store, "managedDevices", [{"id": f"m{i}"} for i in range(6)], full_pull=True)
    store.begin_full_pull(T, "managedDevices", "run-a")
    page(store, "managedDevices", [{"id": "m0"}], full_pull=True, next_link="a2",
         position=PullPosition(None, "run-a"))  # fmt: skip
    # Another run begins its own pull of the same resource.
    store.begin_full_pull(T, "managedDevices", "run-b")
    page(store, "managedDevices", [{"id": "m1"}, {"id": "m2"}], full_pull=True, next_link="b2",
         position=PullPosition(None, "run-b"))  # fmt: skip
    # Run a's last page would sweep everything it did not see (m1…m5): refused, nothing written.
    with pytest.raises(CheckpointMovedError, match="another sync run"):
        page(store, "managedDevices", [{"id": "new"}], full_pull=True,
             position=PullPosition("a2", "run-a"))  # fmt: skip
    assert set(rows(store, managed_devices)) == {f"m{i}" for i in range(6)}
    # Run b completes its pull: exactly what it saw is kept.
    page(store, "managedDevices", [{"id": "m3"}], full_pull=True,
         position=PullPosition("b2", "run-b"))  # fmt: skip
    assert set(rows(store, managed_devices)) == {"m1", "m2", "m3"}


def test_two_streams_at_one_position_write_once(store: Store) -> None:
    store.begin_full_pull(T, "users", "run-a")
    page(store, "users", [user("u1")], full_pull=True, next_link="p2",
         position=PullPosition(None, "run-a"))  # fmt: skip
    # Both runs continue from p2 (the second resumed the first's pull): the first write wins.
    at_p2 = PullPosition("p2", "run-a")
    page(store, "users", [user("u2")], full_pull=True, next_link="p3", position=at_p2)
    with pytest.raises(CheckpointMovedError):
        page(store, "users", [user("u2")], full_pull=True, next_link="p3", position=at_p2)
    checkpoint = store.checkpoint(T, "users")
    assert checkpoint is not None and checkpoint.next_link == "p3"


def test_a_delta_round_writes_only_from_the_link_the_checkpoint_holds(store: Store) -> None:
    page(store, "users", [user("u1"), user("u2")], full_pull=True, delta_link="d1")
    round_from_d1 = PullPosition("d1", None)
    page(store, "users", [{"id": "u2", "@removed": {}}], next_link="n1", position=round_from_d1)
    # A second round from the same deltaLink, as a concurrent run would start it: refused.
    with pytest.raises(CheckpointMovedError):
        page(store, "users", [user("u3")], delta_link="d2", position=round_from_d1)
    page(store, "users", [user("u3")], delta_link="d2", position=PullPosition("n1", None))
    assert set(rows(store, users)) == {"u1", "u3"}
    # A delta page cannot land in a full pull under way, nor a full pull's page in a round.
    store.begin_full_pull(T, "users", "run-f")
    with pytest.raises(CheckpointMovedError):
        page(store, "users", [user("u4")], delta_link="d3", position=PullPosition("d2", None))
    with pytest.raises(ValueError, match="run id"):
        page(store, "users", [user("u4")], position=PullPosition(None, "run-f"))


# --- checkpoints, status, counts ------------------------------------------------------------------


def test_checkpoint_round_trip_and_clear(store: Store) -> None:
    assert store.checkpoint(T, "users") is None
    store.save_checkpoint(T, "users", next_link="n1", delta_link=None, full_pull=True)
    store.save_checkpoint(T, "groups", next_link=None, delta_link="d1", full_pull=False)
    store.save_checkpoint(OTHER, "users", next_link=None, delta_link="d9", full_pull=False)
    got = store.checkpoint(T, "users")
    assert got is not None
    assert (got.next_link, got.delta_link, got.full_pull) == ("n1", None, True)
    assert got.updated_at.tzinfo is not None
    assert abs((datetime.now(UTC) - got.updated_at).total_seconds()) < 3600

    store.clear_checkpoints(T)
    assert store.checkpoint(T, "users") is None
    assert store.checkpoint(T, "groups") is None
    assert store.checkpoint(OTHER, "users") is not None


def test_status_ok_stamps_last_sync_and_failure_keeps_it(store: Store) -> None:
    store.upsert_customer(T, domain="t.example", display_name="T", region="EU")
    store.set_status(T, "ok")
    [ok] = store.customer_summaries()
    assert ok.status == "ok" and ok.last_sync_at is not None

    store.set_status(T, "failed", reason="boom", error_class="transient")
    [failed] = store.customer_summaries()
    assert (failed.status, failed.status_reason, failed.error_class) == (
        "failed", "boom", "transient",
    )  # fmt: skip
    assert failed.last_sync_at == ok.last_sync_at
    assert failed.status_at is not None and failed.status_at >= ok.last_sync_at

    # A status for a tenant never upserted still creates its row, named by its id.
    store.set_status(OTHER, "running")
    assert {s.display_name for s in store.customer_summaries()} == {"T", OTHER}


def test_upsert_customer_updates_in_place(store: Store) -> None:
    store.upsert_customer(T, domain="old.example", display_name="Old", region="NA")
    store.set_status(T, "ok")
    store.upsert_customer(T, domain="new.example", display_name="New", region="EU")
    [summary] = store.customer_summaries()
    assert (summary.display_name, summary.domain, summary.region, summary.status) == (
        "New", "new.example", "EU", "ok",
    )  # fmt: skip


def test_counts_per_tenant_and_fleet(store: Store) -> None:
    build_known_fleet(store)
    assert store.counts(ALPHA) == {
        "users": 5, "groups": 2, "devices": 3, "managedDevices": 3, "organization": 1,
        "subscribedSkus": 0, "members": 6,
    }  # fmt: skip
    assert store.counts() == {
        "users": 11, "groups": 2, "devices": 3, "managedDevices": 10, "organization": 1,
        "subscribedSkus": 0, "members": 6,
    }  # fmt: skip


# --- report queries -----------------------------------------------------------------------------


def test_summaries_put_sync_problems_and_noncompliant_customers_first(store: Store) -> None:
    build_known_fleet(store)
    summaries = store.customer_summaries()
    # Every sync problem first (needs a person, then failed), then non-compliant (most first),
    # then the rest by status: a customer whose sync needs a person no longer sorts below
    # healthy ones.
    assert [s.tenant_id for s in summaries] == [FOXTROT, BRAVO, DELTA, ALPHA, ECHO, CHARLIE]
    by_id = {s.tenant_id: s for s in summaries}

    alpha = by_id[ALPHA]
    assert (alpha.users, alpha.users_enabled, alpha.users_disabled, alpha.guests) == (5, 4, 1, 1)
    assert (alpha.admins, alpha.groups, alpha.devices, alpha.managed_devices) == (2, 2, 3, 3)
    assert alpha.managed_by_os == {"Windows": 2, "iOS": 1}
    assert alpha.compliance == {"compliant": 2, "noncompliant": 1}
    assert alpha.noncompliant == 1 and alpha.needs_attention

    bravo = by_id[BRAVO]
    assert bravo.admins is None  # roles never synced: unknown, not zero
    assert (bravo.status, bravo.status_reason, bravo.error_class) == (
        "failed", "HTTP 500 from Graph", "transient",
    )  # fmt: skip
    assert bravo.needs_attention and bravo.last_sync_at is None

    assert by_id[CHARLIE].admins == 1 and not by_id[CHARLIE].needs_attention
    assert by_id[DELTA].noncompliant == 3
    assert by_id[ECHO].status is None and by_id[ECHO].users == 0
    assert by_id[FOXTROT].status_reason == "GDAP relationship missing"


def test_admins_follow_user_deletion(store: Store) -> None:
    build_known_fleet(store)
    store.delete_objects(ALPHA, "users", ["a2"])
    by_id = {s.tenant_id: s for s in store.customer_summaries()}
    assert by_id[ALPHA].admins == 1


def test_fleet_totals_os_mix_and_compliance(store: Store) -> None:
    build_known_fleet(store)
    totals = store.fleet_totals()
    assert (totals.customers, totals.users, totals.users_enabled, totals.users_disabled) == (
        6, 11, 10, 1,
    )  # fmt: skip
    assert (totals.admins, totals.groups, totals.devices, totals.managed_devices) == (3, 2, 3, 10)
    assert totals.noncompliant == 4 and totals.customers_noncompliant == 2
    assert totals.compliance == {"compliant": 5, "noncompliant": 4, "inGracePeriod": 1}
    assert totals.sync_health == {"failed": 1, "ok": 3, "needs_person": 1, "never": 1}
    assert totals.last_sync_at is not None and totals.oldest_sync_at is not None
    assert totals.oldest_sync_at <= totals.last_sync_at

    assert store.os_mix() == {"Windows": 6, "macOS": 2, "iOS": 1, "Android": 1}
    assert next(iter(store.os_mix())) == "Windows"
    assert store.compliance_by_customer() == {
        ALPHA: {"compliant": 2, "noncompliant": 1},
        BRAVO: {"compliant": 1},
        CHARLIE: {"compliant": 2, "inGracePeriod": 1},
        DELTA: {"noncompliant": 3},
    }
