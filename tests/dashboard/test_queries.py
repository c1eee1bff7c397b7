"""The customer list's search, filters, sort and pages, answered by the database, on SQLite and
PostgreSQL alike; its figures agree with the report's own counts of the inventory."""

from __future__ import annotations

import pytest

from cspgraph.dashboard import queries
from cspgraph.dashboard.queries import ListQuery, customer_detail, fleet_figures, list_customers
from cspgraph.fleet import inventory
from cspgraph.fleet.store import Store
from tests.dashboard.fleets import SYNCED, known_fleet_with_runs, record_run
from tests.unit import pg_fixture
from tests.unit.pg_fixture import ALPHA, BRAVO, ECHO

pg_database = pg_fixture.pg_database
pg_schema_url = pg_fixture.pg_schema_url
pg_url = pg_fixture.pg_url
store_backend_url = pg_fixture.store_backend_url
store = pg_fixture.store


def listed(store: Store, **query: object) -> queries.CustomerPage:
    with store.reading() as conn:
        return list_customers(conn, ListQuery(**query))  # type: ignore[arg-type]


def names(page: queries.CustomerPage) -> list[str]:
    return [row.name for row in page.rows]


def test_the_figures_are_the_ones_the_report_counts(store: Store) -> None:
    known_fleet_with_runs(store)
    rows = {row.tenant_id: row for row in listed(store, per_page=100).rows}
    with store.reading() as conn:
        holders = inventory.role_holders(conn)
        roles_known = inventory.roles_synced(conn)
    for summary in store.customer_summaries():
        row = rows[summary.tenant_id]
        assert row.name == summary.display_name
        if summary.tenant_id in SYNCED:
            assert (row.users, row.guests) == (summary.users, summary.guests)
            # The one count of Global Administrators (users, once each; not the app Alpha
            # has among them), the report's; unknown without the roles.
            assert row.admins == summary.admins
            assert row.admins == (
                len(inventory.global_admins(h for h in holders if h.tenant_id == row.tenant_id))
                if row.tenant_id in roles_known
                else None
            )
            assert (row.managed, row.noncompliant) == (
                summary.managed_devices, summary.noncompliant
            )  # fmt: skip
        else:  # never synced successfully: unknown, not 0
            assert (row.users, row.admins, row.managed) == (None, None, None)


def test_search_matches_name_domain_or_tenant_id_case_insensitively(store: Store) -> None:
    known_fleet_with_runs(store, extra=3)
    assert names(listed(store, search="ALPHA")) == ["Alpha Ltd"]
    assert names(listed(store, search="bravo.exam")) == ["Bravo GmbH"]
    assert names(listed(store, search=ECHO[:8])) == ["Echo BV"]
    assert listed(store, search="extra").total == 3
    # LIKE's wildcards are the user's text, not patterns.
    assert listed(store, search="%").total == 0
    assert listed(store, search="_").total == 0
    assert listed(store, search="nobody at all").rows == []


def test_a_customer_without_a_name_is_named_searched_and_sorted_by_its_organization(
    store: Store,
) -> None:
    known_fleet_with_runs(store)
    unnamed = "0000aaaa-0000-0000-0000-00000000beef"
    store.upsert_customer(unnamed, domain="zz-org.example", display_name=None, region="EU")
    store.write_page(
        unnamed, "organization", [{"id": unnamed, "displayName": "Aardvark Org"}], [],
        next_link=None, delta_link=None, full_pull=True,
    )  # fmt: skip
    found = listed(store, search="aardvark")
    assert (names(found), found.total) == (["Aardvark Org"], 1)
    assert names(listed(store, sort="name"))[0] == "Aardvark Org"
    # Neither a name nor an organization: its domain.
    bare = "0000aaaa-0000-0000-0000-00000000f00d"
    store.upsert_customer(bare, domain="bare.example", display_name=None, region="EU")
    assert names(listed(store, search="bare.ex")) == ["bare.example"]


def test_filters_by_status_never_synced_and_region(store: Store) -> None:
    extra = known_fleet_with_runs(store, extra=2)
    assert names(listed(store, status="failed")) == ["Bravo GmbH"]
    never = {row.tenant_id for row in listed(store, status=queries.NEVER, per_page=100).rows}
    assert never == {ECHO, *extra}
    assert {row.tenant_id for row in listed(store, region="NA").rows} == set(extra)
    assert listed(store, status="ok", region="NA").total == 0


def test_sorts_by_a_figure_with_unknown_last_in_either_direction(store: Store) -> None:
    known_fleet_with_runs(store, extra=2)
    summaries = {s.tenant_id: s for s in store.customer_summaries()}
    most = listed(store, sort="users", descending=True, per_page=100).rows
    known = [row for row in most if row.users is not None]
    assert [row.users for row in known] == sorted(
        (summaries[row.tenant_id].users for row in known), reverse=True
    )
    assert all(row.users is None for row in most[len(known) :])
    fewest = listed(store, sort="users", descending=False, per_page=100).rows
    assert [row.users for row in fewest[: len(known)]] == sorted(r.users for r in known)
    assert all(row.users is None for row in fewest[len(known) :])
    by_name = names(listed(store, sort="name", per_page=100))
    assert by_name == sorted(by_name, key=str.lower)


def test_problems_come_first_by_default(store: Store) -> None:
    known_fleet_with_runs(store)
    statuses = [row.status for row in listed(store, per_page=100).rows]
    assert statuses[:2] == ["needs_person", "failed"]
    assert statuses[-1] == "ok"


def test_pages_split_the_list_without_overlap(store: Store) -> None:
    known_fleet_with_runs(store, extra=25)
    seen: list[str] = []
    first = listed(store, sort="name", per_page=10)
    assert first.total == 31 and first.pages == 4
    for page in range(1, 5):
        seen += [row.tenant_id for row in listed(store, sort="name", per_page=10, page=page).rows]
    assert len(seen) == len(set(seen)) == 31


def test_query_parameters_from_a_url_are_checked(store: Store) -> None:
    query = ListQuery.from_params(
        {"q": "  x ", "status": "DROP TABLE", "sort": "nonsense", "page": "-3", "dir": "up"}
    )
    assert (query.search, query.status, query.sort, query.page) == ("x", "", "attention", 1)
    assert ListQuery.from_params({"sort": "users"}).descending  # the most first
    assert not ListQuery.from_params({"sort": "users", "dir": "asc"}).descending
    assert ListQuery.from_params({"sort": "users", "dir": "asc"}).params() == {
        "sort": "users", "dir": "asc"
    }  # fmt: skip


def test_fleet_figures_add_up_the_known_and_say_how_many_are_known(store: Store) -> None:
    known_fleet_with_runs(store, extra=1)
    summaries = store.customer_summaries()
    with store.reading() as conn:
        figures = fleet_figures(conn)
    synced = [s for s in summaries if s.tenant_id in SYNCED]
    assert figures.customers == len(summaries)
    assert figures.users == sum(s.users for s in synced)
    rows = listed(store, per_page=100).rows
    assert figures.admins == sum(row.admins or 0 for row in rows)
    assert figures.admins_known == len([s for s in synced if s.admins is not None]) == 2
    assert figures.by_status["never"] == 2  # echo and the extra one
    assert figures.sync_problems == 2  # bravo failed, foxtrot needs a person


@pytest.mark.parametrize("tenant", [ALPHA, BRAVO])
def test_a_customer_page_reads_its_objects_and_history(store: Store, tenant: str) -> None:
    known_fleet_with_runs(store)
    with store.reading() as conn:
        detail = customer_detail(conn, tenant)
        assert customer_detail(conn, "no-such-tenant") is None
    assert detail is not None
    summary = next(s for s in store.customer_summaries() if s.tenant_id == tenant)
    assert detail.users_total == summary.users == len(detail.users)
    assert detail.devices_total == summary.managed_devices
    [run] = detail.history
    assert run.status == ("ok" if tenant == ALPHA else "failed")
    if tenant == ALPHA:
        assert run.figures["users"] == summary.users
        users = {h.name for h in detail.admins if h.is_global_admin and h.kind == "user"}
        assert users == {"a1@example.com", "a2@example.com"}
    else:
        assert run.figures == {} and not detail.roles_known


def test_admins_a_later_sync_could_not_read_are_unknown_not_the_old_ones(store: Store) -> None:
    known_fleet_with_runs(store)
    record_run(store, "run-2", SYNCED, roles_unreadable=(ALPHA,))
    with store.reading() as conn:
        detail = customer_detail(conn, ALPHA)
        assert inventory.role_holders(conn, ALPHA)  # the first sync's rows are still there
    assert detail is not None
    assert not detail.roles_known and "directoryRoles" in detail.unreadable
    assert detail.row.admins is None  # the list's figure: unknown too


def test_a_pages_transaction_runs_without_jit_on_postgresql_and_only_that_one(
    store: Store,
) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("JIT compilation is PostgreSQL's")
    with store.reading() as conn:
        before = conn.exec_driver_sql("SHOW jit").scalar()
        queries.interactive(conn)
        assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
    with store.reading() as conn:  # the setting was the transaction's own
        assert conn.exec_driver_sql("SHOW jit").scalar() == before
