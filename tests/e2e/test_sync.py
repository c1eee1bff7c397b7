"""The fleet sync end to end: real sockets and TLS against the emulator, a real store.

Every test starts its own emulator (it changes the world) with a small generated fleet whose
contents are known from the world itself, and compares the store with the world afterwards.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from csp_emulator.server import Emulator
from cspgraph.config import config_from_data
from cspgraph.fleet.customers import ListingErrors, partner_center_customers
from cspgraph.fleet.progress import NullProgress
from cspgraph.fleet.store import Store
from cspgraph.fleet.sync import SyncSummary
from cspgraph.http.errors import CspGraphError
from cspgraph.identity import TokenProvider
from tests.fleet_helpers import (
    SECRET_ENV,
    Control,
    assert_store_matches_world,
    config_for,
    customer_ids,
    fleet_world,
    full_dump,
    open_pulls,
    run_killed,
    run_sync,
)
from tests.terminal import run_on_terminal
from tests.unit import pg_fixture

pg_database = pg_fixture.pg_database
pg_schema_url = pg_fixture.pg_schema_url
pg_url = pg_fixture.pg_url


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as store:
        yield store


# -- the tests -----------------------------------------------------------------------------------


async def test_full_sync_stores_exactly_the_world(
    make_emulator: Callable[..., Emulator], tmp_path: Path, sqlite_store: Store
) -> None:
    emu = make_emulator(fleet_world())
    control = Control(emu)
    summary = await run_sync(config_for(emu, tmp_path), sqlite_store)

    tenants = control.customers()
    assert summary.ok, summary.as_dict()
    assert {t.tenant_id for t in summary.tenants} == {t["id"] for t in tenants}
    # The world's own counts (control API) per tenant, against the store's.
    for tenant in tenants:
        counts = sqlite_store.counts(tenant["id"])
        for resource in ("users", "groups", "devices", "managedDevices"):
            assert counts[resource] == tenant["counts"][resource], (tenant["domain"], resource)
        assert counts["organization"] == 1
    assert_store_matches_world(sqlite_store, emu, [t["id"] for t in tenants])
    # Every customer is recorded with its region and status, and has a Global Administrator.
    summaries = {s.tenant_id: s for s in sqlite_store.customer_summaries()}
    assert all(s.status == "ok" and s.admins == 1 for s in summaries.values())
    assert {s.region for s in summaries.values()} == {"NA", "EU"}
    first = summary.tenants[0]
    assert set(first.modes.values()) == {"full"}
    assert summary.requests > 0 and summary.wall_time > 0


async def test_second_run_applies_exactly_the_changes_through_delta(
    make_emulator: Callable[..., Emulator], tmp_path: Path, sqlite_store: Store
) -> None:
    emu = make_emulator(fleet_world())
    control = Control(emu)
    config = config_for(emu, tmp_path)
    first = await run_sync(config, sqlite_store)
    assert first.ok

    ids = customer_ids(control)
    target = max(control.customers(), key=lambda t: t["counts"]["users"])["id"]
    users = control.call("GET", f"tenants/{target}/users")["value"]
    managed = control.call("GET", f"tenants/{target}/managedDevices")["value"]
    groups = control.call("GET", f"tenants/{target}/groups")["value"]
    for n in range(3):
        control.call("POST", f"tenants/{target}/users", {"userPrincipalName": f"new{n}@x.example"})
    soft, hard = users[-1]["id"], users[-2]["id"]
    control.call("DELETE", f"tenants/{target}/users/{soft}")
    control.call("DELETE", f"tenants/{target}/users/{hard}?reason=deleted")
    flipped = [d for d in managed if d["complianceState"] == "compliant"][:2]
    for device in flipped:
        control.call("PATCH", f"tenants/{target}/managedDevices/{device['id']}",
                     {"complianceState": "noncompliant"})  # fmt: skip
    control.call(
        "POST", f"tenants/{target}/groups/{groups[0]['id']}/members", {"id": users[0]["id"]}
    )

    second = await run_sync(config, sqlite_store)
    assert second.ok, second.as_dict()
    assert_store_matches_world(sqlite_store, emu, ids)
    changed = next(t for t in second.tenants if t.tenant_id == target)
    for resource in ("users", "groups", "devices"):
        assert changed.modes[resource] == "delta"
    assert changed.received["users"] == 5  # three new users, two removals
    assert changed.removed["users"] == 2
    quiet = [t for t in second.tenants if t.tenant_id != target]
    assert all(t.received["users"] == 0 for t in quiet)
    # A quiet tenant's delta round is one request; the first run paged through everything.
    assert all(t.pages[r] == 1 for t in quiet for r in ("users", "groups", "devices"))
    biggest = next(t for t in first.tenants if t.tenant_id == target)
    assert biggest.pages["users"] > 1
    assert second.requests < first.requests
    summaries = {s.tenant_id: s for s in sqlite_store.customer_summaries()}
    assert summaries[target].noncompliant == sum(
        1 for d in managed if d["complianceState"] == "noncompliant"
    ) + len(flipped)

    # --full pulls everything again and ends at the same store.
    before = full_dump(sqlite_store)
    third = await run_sync(config, sqlite_store, full=True)
    assert third.ok
    assert all(set(t.modes.values()) == {"full"} for t in third.tenants)
    assert full_dump(sqlite_store) == before


async def test_expired_delta_token_restarts_as_a_full_pull(
    make_emulator: Callable[..., Emulator], tmp_path: Path, sqlite_store: Store
) -> None:
    emu = make_emulator(fleet_world(3))
    control = Control(emu)
    config = config_for(emu, tmp_path)
    assert (await run_sync(config, sqlite_store)).ok
    ids = customer_ids(control)
    gone = control.call("GET", f"tenants/{ids[0]}/users")["value"][-1]["id"]
    control.call("DELETE", f"tenants/{ids[0]}/users/{gone}")
    control.call("POST", "clock", {"seconds": "8d"})  # delta tokens live 7 days

    summary = await run_sync(config, sqlite_store)
    assert summary.ok, summary.as_dict()
    for result in summary.tenants:
        assert result.modes["users"] == "full"
        assert any("saved link refused" in note for note in result.notes)
    assert_store_matches_world(sqlite_store, emu, ids)


async def test_throttling_and_dropped_connections_are_retried(
    make_emulator: Callable[..., Emulator], tmp_path: Path, sqlite_store: Store
) -> None:
    emu = make_emulator(fleet_world(4))
    control = Control(emu)
    control.call("POST", "faults", {"host": "graph", "kind": "429", "rate": 0.3, "count": 12})
    control.call("POST", "faults", {"host": "graph", "kind": "drop", "rate": 0.2, "count": 4})
    summary = await run_sync(config_for(emu, tmp_path), sqlite_store)
    assert summary.ok, summary.as_dict()
    assert summary.throttled == 12  # every injected 429 was seen, waited out and retried
    assert summary.graph["retries"] >= 16
    assert_store_matches_world(sqlite_store, emu, customer_ids(control))


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_interrupted_run_resumes_to_the_same_store(
    make_emulator: Callable[..., Emulator], tmp_path: Path, seed: int
) -> None:
    emu = make_emulator(fleet_world())
    config = config_for(emu, tmp_path)
    ids = customer_ids(Control(emu))

    with Store.open(f"sqlite:///{tmp_path / 'reference.db'}") as reference:
        assert (await run_sync(config, reference)).ok
        expected = full_dump(reference)

    with Store.open(f"sqlite:///{tmp_path / 'interrupted.db'}") as store:
        stop_after = random.Random(seed).randint(3, 40)  # the full run writes ~70 pages
        task: asyncio.Task[SyncSummary] | None = None

        class CancelAfter(NullProgress):
            pages = 0

            def page_written(self, tenant_id: str, resource: str, objects: int) -> None:
                self.pages += 1
                if self.pages == stop_after and task is not None:
                    task.cancel()

        task = asyncio.ensure_future(run_sync(config, store, progress=CancelAfter()))
        with pytest.raises(asyncio.CancelledError):
            await task
        midway = open_pulls(store)

        summary = await run_sync(config, store)
        assert summary.ok, summary.as_dict()
        if midway:
            modes = {m for t in summary.tenants for m in t.modes.values()}
            assert "resumed" in modes
        assert_store_matches_world(store, emu, ids)
        assert full_dump(store) == expected


async def test_run_killed_with_sigkill_resumes_to_the_same_store(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(fleet_world())
    config = config_for(emu, tmp_path)
    ids = customer_ids(Control(emu))
    with Store.open(f"sqlite:///{tmp_path / 'reference.db'}") as reference:
        assert (await run_sync(config, reference)).ok
        expected = full_dump(reference)

    db = f"sqlite:///{tmp_path / 'killed.db'}"
    await run_killed(config, db, tmp_path, after_pages=25)

    with Store.open(db) as store:
        # It died mid-run: 25 of the ~70 pages cannot have finished every customer.
        done = [s for s in store.customer_summaries() if s.status == "ok"]
        assert len(done) < len(ids)
        midway = open_pulls(store)
        summary = await run_sync(config, store)
        assert summary.ok, summary.as_dict()
        if midway:
            assert "resumed" in {m for t in summary.tenants for m in t.modes.values()}
        assert_store_matches_world(store, emu, ids)
        assert full_dump(store) == expected


async def test_failing_customers_are_recorded_and_the_others_sync(
    make_emulator: Callable[..., Emulator], tmp_path: Path, sqlite_store: Store
) -> None:
    emu = make_emulator(fleet_world())
    control = Control(emu)
    tenants = control.customers()
    na = [t for t in tenants if t["region"] == "NA"]
    eu = [t for t in tenants if t["region"] == "EU"]
    assert len(na) >= 2 and eu
    ended = na[1]
    control.call("DELETE", "relationships", {"partner": "partner.com", "customer": ended["id"]})

    # Only the NA identity is configured: EU customers have no partner identity to go through.
    config = config_for(emu, tmp_path, regions=("NA",))
    listed = [t["domain"] for t in tenants] + ["no-such-customer.example"]
    summary = await run_sync(config, sqlite_store, customers=listed)

    by_id = {t.tenant_id: t for t in summary.tenants}
    assert not summary.ok
    lost = by_id[ended["id"]]
    assert lost.status == "propagating"  # Entra cannot tell "ended" from "not there yet"
    assert "700016" in (lost.reason or "")
    for customer in eu:
        result = by_id[customer["id"]]
        assert result.status == "needs_person"
        assert "no partner identity configured for region EU" in (result.reason or "")
        assert result.region == "EU"
    unknown = next(t for t in summary.tenants if t.customer.reference.startswith("no-such"))
    assert unknown.status == "failed" and unknown.tenant_id is None
    healthy = [t["id"] for t in na if t["id"] != ended["id"]]
    assert all(by_id[t].status == "ok" for t in healthy)
    assert_store_matches_world(sqlite_store, emu, healthy)

    recorded = {s.tenant_id: s for s in sqlite_store.customer_summaries()}
    assert recorded[ended["id"]].status == "propagating"
    assert recorded[ended["id"]].status_reason
    assert all(recorded[c["id"]].status == "needs_person" for c in eu)
    assert "no-such-customer.example" not in {s.domain for s in recorded.values()}


async def test_partner_center_lists_the_customers_of_each_region(
    make_emulator: Callable[..., Emulator], tmp_path: Path, sqlite_store: Store
) -> None:
    emu = make_emulator(fleet_world(4, admins=False))
    control = Control(emu)
    summary = await run_sync(config_for(emu, tmp_path), sqlite_store)
    assert summary.ok
    assert sorted(t.tenant_id or "" for t in summary.tenants) == customer_ids(control)
    by_region = {t.tenant_id: t.customer.region for t in summary.tenants}
    assert by_region == {t["id"]: t["region"] for t in control.customers()}
    # Without RoleManagement.Read.Directory the admins are skipped, not the customer.
    for result in summary.tenants:
        assert result.modes["directoryRoles"].startswith("skipped")
    assert all(s.admins is None for s in sqlite_store.customer_summaries())


async def test_a_region_whose_listing_fails_is_reported_and_the_other_syncs(
    make_emulator: Callable[..., Emulator], tmp_path: Path, sqlite_store: Store
) -> None:
    emu = make_emulator(fleet_world(4, admins=False))
    control = Control(emu)
    config = config_for(emu, tmp_path)
    wrong = {**SECRET_ENV, "CSPGRAPH_SECRET_EU": "not-the-secret"}
    config = config_from_data(config.model.model_dump(exclude_none=True), env=wrong)
    summary = await run_sync(config, sqlite_store)
    assert list(summary.listing_errors) == ["EU"]
    assert "7000215" in summary.listing_errors["EU"]  # invalid client secret
    na = sorted(t["id"] for t in control.customers() if t["region"] == "NA")
    assert sorted(t.tenant_id or "" for t in summary.tenants) == na
    assert all(t.status == "ok" for t in summary.tenants) and not summary.ok


async def test_listing_regions_at_once_still_raises_a_failing_region_when_nobody_collects(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(fleet_world(4, admins=False))
    config = config_for(emu, tmp_path)
    wrong = {**SECRET_ENV, "CSPGRAPH_SECRET_EU": "not-the-secret"}
    config = config_from_data(config.model.model_dump(exclude_none=True), env=wrong)
    async with TokenProvider(config) as provider:
        collected = ListingErrors()
        listed = [c async for c in partner_center_customers(provider, errors=collected)]
        assert {c.region for c in listed} == {"NA"} and list(collected.by_region) == ["EU"]
        with pytest.raises(CspGraphError, match="7000215"):
            [c async for c in partner_center_customers(provider)]


async def test_postgresql_store(
    make_emulator: Callable[..., Emulator], tmp_path: Path, pg_url: str
) -> None:
    emu = make_emulator(fleet_world(4))
    control = Control(emu)
    config = config_for(emu, tmp_path)
    ids = customer_ids(control)
    with Store.open(pg_url) as store:
        assert (await run_sync(config, store)).ok
        assert_store_matches_world(store, emu, ids)
        users = control.call("GET", f"tenants/{ids[0]}/users")["value"]
        control.call("DELETE", f"tenants/{ids[0]}/users/{users[-1]['id']}")
        control.call("POST", f"tenants/{ids[1]}/users", {"userPrincipalName": "pg@x.example"})
        again = await run_sync(config, store)
        assert again.ok
        assert all(t.modes["users"] == "delta" for t in again.tenants)
        assert_store_matches_world(store, emu, ids)


def test_sync_command_json_and_customers_file(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    import tomli_w
    import typer
    from typer.testing import CliRunner

    from cspgraph.cli import sync_cmd

    app = typer.Typer()
    app.command("sync")(sync_cmd.sync)

    @app.callback()
    def main() -> None:
        """cspgraph"""

    emu = make_emulator(fleet_world(3))
    control = Control(emu)
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        tomli_w.dumps(config_for(emu, tmp_path).model.model_dump(exclude_none=True))
    )
    domains = [t["domain"] for t in control.customers()]
    listed = tmp_path / "customers.txt"
    listed.write_text("# the fleet\n" + "\n".join(domains[:2]) + "\nnobody.example  # gone\n")
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    args = ["sync", "--config", str(config_file), "--db", db, "--json", "--no-progress"]

    run = CliRunner().invoke(app, [*args, "--customers-file", str(listed)], env=SECRET_ENV)
    assert run.exit_code == 1, run.output  # one customer could not be synced
    data = json.loads(run.stdout)
    assert data["totals"]["customers"] == 3
    assert data["totals"]["status"] == {"ok": 2, "failed": 1}
    assert data["requests"] > 0 and "throttled" in data and data["wall_time_s"] > 0
    by_customer = {t["customer"]: t for t in data["tenants"]}
    assert by_customer["nobody.example"]["status"] == "failed"
    assert by_customer[domains[0]]["received"]["users"] > 0

    run = CliRunner().invoke(app, [*args, "--customers", domains[2]], env=SECRET_ENV)
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["tenants"][0]["modes"]["users"] == "full"
    run = CliRunner().invoke(app, [*args, "--customers", ",".join(domains)], env=SECRET_ENV)
    assert run.exit_code == 0, run.output
    modes = {t["customer"]: t["modes"]["users"] for t in json.loads(run.stdout)["tenants"]}
    assert set(modes.values()) == {"delta"}

    # Without --json, piped: JSON all the same (stdout is not a terminal).
    piped = CliRunner().invoke(app, [*args[:5], "--no-progress"], env=SECRET_ENV)
    assert piped.exit_code == 0, piped.output
    assert json.loads(piped.stdout)["totals"]["status"] == {"ok": 3}  # Partner Center's list
    # On a terminal: the summary table, and where the store is.
    table = run_on_terminal([*args[:5], "--no-progress"], env=SECRET_ENV)
    assert table.returncode == 0, table.output
    assert "3 ok" in table.output
    assert "store: " in table.output and re.search(r"next: \S*cspgraph report", table.output)


def test_store_calls_are_retried_after_a_deadlock() -> None:
    from sqlalchemy.exc import DBAPIError

    from cspgraph.fleet.store_writer import _with_db_retries

    class Deadlock(Exception):
        sqlstate = "40P01"

    class Broken(Exception):
        sqlstate = "42P01"  # undefined table: not worth another try

    calls: list[int] = []

    def flaky(fails: int, error: type[Exception]) -> str:
        calls.append(1)
        if len(calls) <= fails:
            raise DBAPIError("INSERT …", None, error())
        return "written"

    assert _with_db_retries(flaky, 2, Deadlock) == "written"
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(DBAPIError):
        _with_db_retries(flaky, 1, Broken)
    assert len(calls) == 1
