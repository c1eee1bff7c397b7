"""What a sync remembers beyond the inventory: runs, licences, privileged roles by name, what
changed since the last sync, customers no longer listed, failing streaks, the partner apps'
credentials. Real sockets and TLS against the emulator, a real store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import select

from csp_emulator import wellknown
from csp_emulator.server import Emulator
from csp_emulator.world.objects import assigned_units, subscribed_sku_json, user_json
from csp_emulator.world.worldfile import WORLD_SECRETS_EXPIRE, add_role_member
from cspgraph.fleet import inventory, runs
from cspgraph.fleet.history_schema import (
    changes,
    coverage,
    customer_state,
    partner_apps,
    run_customers,
)
from cspgraph.fleet.history_schema import runs as runs_table
from cspgraph.fleet.partner_apps import NO_READ
from cspgraph.fleet.progress import NullProgress
from cspgraph.fleet.report_terminal import render_terminal
from cspgraph.fleet.schema import OBJECT_TABLES, metadata, subscribed_skus
from cspgraph.fleet.store import Store
from cspgraph.fleet.summaries import read_customer_summaries
from cspgraph.fleet.sync import SyncSummary
from tests.e2e.fleet_world import NAMES, NO_INTUNE, RISKY, planted_world
from tests.fleet_helpers import Control, config_for, fleet_world, run_sync

DAY = timedelta(days=1)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as opened:
        yield opened


def rows(store: Store, table: Any, **where: Any) -> list[Any]:
    stmt = select(table)
    for name, value in where.items():
        stmt = stmt.where(table.c[name] == value)
    with store.reading() as conn:
        return list(conn.execute(stmt))


def tenant_of(emu: Emulator, domain: str) -> Any:
    tenant = emu.world.tenant(domain)
    assert tenant is not None
    return tenant


async def test_a_sync_records_its_run_the_licences_and_the_admins_by_name(
    make_emulator: Callable[..., Emulator], tmp_path: Path, store: Store
) -> None:
    emu = make_emulator(planted_world)
    summary = await run_sync(config_for(emu, tmp_path), store)
    assert summary.ok, summary.as_dict()
    assert summary.run_id is not None

    [run] = rows(store, runs_table)
    assert (run.run_id, run.outcome, run.listed) == (summary.run_id, "completed", "partner_center")
    assert run.customers == len(NAMES) and run.statuses == {"ok": len(NAMES)}
    assert run.finished_at >= run.started_at and run.requests == summary.requests

    risky = tenant_of(emu, RISKY)
    recorded = {r.tenant_id: r for r in rows(store, run_customers)}
    assert set(recorded) == {tenant_of(emu, d).id for d in NAMES}
    figures = recorded[risky.id].figures
    # The one count of Global Administrators: the disabled sixth holder is named, not counted.
    assert figures["admins"] == 5 and figures["guests"] == 2
    assert figures["licences_bought"] == 20 and figures["licences_assigned"] == 5
    assert figures["managed"] == 6 and figures["noncompliant"] == 1 and figures["unencrypted"] == 1

    # Licences: bought and assigned as the world holds them, and each user's licences.
    [sku] = rows(store, subscribed_skus, tenant_id=risky.id)
    spb = wellknown.SKUS["SPB"].id
    assert (sku.sku_part_number, sku.prepaid_units, sku.consumed_units) == (
        "SPB", 20, assigned_units(risky, spb),
    )  # fmt: skip
    with store.reading() as conn:
        holders = inventory.role_holders(conn, risky.id)
        users = {u.upn: u for u in inventory.users_of(conn, risky.id)}
    assert users[f"leaver@{RISKY}"].licenses == (spb,)
    assert users[f"helpdesk@{RISKY}"].licenses == ()
    # Privileged roles by name, disabled holders included.
    global_admins = {h.name: h.enabled for h in holders if h.is_global_admin}
    assert global_admins == {
        **{f"ga{i}@{RISKY}": True for i in range(4)},
        f"oldadmin@{RISKY}": False,
        "admin@risky.onmicrosoft.com": True,  # every world-file customer's first admin
    }
    assert [(h.role, h.name) for h in holders if not h.is_global_admin] == [
        ("User Administrator", f"helpdesk@{RISKY}")
    ]
    # What the sync could see: everything at Risky, no Intune at No Intune GmbH.
    seen = {(c.tenant_id, c.resource): (c.available, c.reason) for c in rows(store, coverage)}
    assert seen[risky.id, "managedDevices"] == (True, None)
    assert seen[tenant_of(emu, NO_INTUNE).id, "managedDevices"] == (
        False, "the tenant has no Intune licence",
    )  # fmt: skip
    assert "managed" not in recorded[tenant_of(emu, NO_INTUNE).id].figures  # unknown, not 0
    # The first sync is the baseline of what changes: nothing is "new" yet.
    assert rows(store, changes) == []


async def test_the_next_sync_records_what_changed_where_it_matters(
    make_emulator: Callable[..., Emulator], tmp_path: Path, store: Store
) -> None:
    emu = make_emulator(planted_world)
    config = config_for(emu, tmp_path)
    assert (await run_sync(config, store)).ok
    risky = tenant_of(emu, RISKY)
    device = next(
        d for d in risky.objects["managedDevices"].values() if d["deviceName"] == "RISKY-STALE"
    )
    e3 = wellknown.SKUS["SPE_E3"].id

    def change_the_world() -> dict[str, str]:
        admin = risky.add("users", user_json(risky, f"newboss@{RISKY}"))
        add_role_member(risky, wellknown.ROLE_GLOBAL_ADMIN, admin["id"])
        guest = risky.add(
            "users", user_json(risky, f"visitor_ext.com#EXT#@{RISKY}", user_type="Guest")
        )
        risky.update("managedDevices", device["id"], {"complianceState": "noncompliant"})
        spb = next(iter(risky.objects["subscribedSkus"].values()))
        spb["prepaidUnits"]["enabled"] = 25
        risky.add("subscribedSkus", subscribed_sku_json(risky, "SPE_E3", 10))
        return {"admin": admin["id"], "guest": guest["id"], "spb": spb["skuId"]}

    made = emu.call(change_the_world)
    second = await run_sync(config, store)
    assert second.ok, second.as_dict()

    got = {
        (c.kind, c.item_id): (c.change, c.label, c.before, c.after)
        for c in rows(store, changes, run_id=second.run_id)
    }
    assert got == {
        ("global_admin", made["admin"]): ("added", f"newboss@{RISKY}", None, None),
        ("guest", made["guest"]): ("added", f"visitor_ext.com#EXT#@{RISKY}", None, None),
        ("noncompliant_device", device["id"]): ("added", "RISKY-STALE", None, None),
        ("licence", made["spb"]): ("changed", "SPB", 20, 25),
        ("licence", e3): ("added", "SPE_E3", None, 10),
    }
    assert {c.tenant_id for c in rows(store, changes)} == {risky.id}  # nobody else changed

    # A third sync with the world unchanged records no change at all.
    third = await run_sync(config, store)
    assert third.ok and rows(store, changes, run_id=third.run_id) == []


async def test_admins_stay_unknown_without_the_role_permission(
    make_emulator: Callable[..., Emulator], tmp_path: Path, store: Store
) -> None:
    emu = make_emulator(fleet_world(2, admins=False))
    summary = await run_sync(config_for(emu, tmp_path), store)
    assert summary.ok, summary.as_dict()
    for record in rows(store, coverage, resource="directoryRoles"):
        assert not record.available
        assert "RoleManagement.Read.Directory" in record.reason
    for record in rows(store, run_customers):
        assert "admins" not in record.figures and "users" in record.figures
    with store.reading() as conn:
        assert inventory.roles_synced(conn) == set()


async def test_admins_a_later_sync_could_not_read_are_unknown_not_the_old_count(
    make_emulator: Callable[..., Emulator], tmp_path: Path, store: Store
) -> None:
    """The rows of the last sync that could read the roles stay in the store, but they are not
    today's admins: the report and the export say unknown, as the checks do."""
    readable = make_emulator(fleet_world(2))
    assert (await run_sync(config_for(readable, tmp_path / "a"), store)).ok
    with store.reading() as conn:
        before = read_customer_summaries(conn)
    assert before and all(s.admins is not None for s in before)

    # The same fleet, its app now without the role permission (a consent drifted).
    readable.stop()
    drifted = make_emulator(fleet_world(2, admins=False))
    assert (await run_sync(config_for(drifted, tmp_path / "b"), store)).ok
    with store.reading() as conn:
        after = read_customer_summaries(conn)
        assert inventory.roles_synced(conn)  # the old holders are still there ...
    assert {s.tenant_id for s in after} == {s.tenant_id for s in before}
    assert all(s.admins is None for s in after)  # ... and shown as unknown


async def test_a_customer_no_longer_listed_is_marked_gone_and_pruned_on_demand(
    make_emulator: Callable[..., Emulator], tmp_path: Path, store: Store
) -> None:
    emu = make_emulator(fleet_world(3))
    control = Control(emu)
    config = config_for(emu, tmp_path)
    assert (await run_sync(config, store)).ok
    na = [t for t in control.customers() if t["region"] == "NA"]
    leaving = na[0]["id"]
    control.call("DELETE", "relationships", {"partner": "partner.com", "customer": leaving})

    # A sync of named customers knows nothing of who left: nobody is marked.
    named = await run_sync(config, store, customers=[na[-1]["domain"]])
    assert named.gone == [] and all(r.gone_since is None for r in rows(store, customer_state))

    summary = await run_sync(config, store)
    assert summary.ok and summary.gone == [leaving]
    [state] = rows(store, customer_state, tenant_id=leaving)
    assert abs(state.gone_since - datetime.now(UTC)) < DAY
    assert store.counts(leaving)["users"] > 0  # its data is kept until --prune
    console = Console(record=True, width=220, color_system=None)
    render_terminal(store, console)
    with store.reading() as conn:
        [name] = [s.display_name for s in read_customer_summaries(conn) if s.tenant_id == leaving]
    [row] = [x for x in console.export_text().splitlines() if x.strip().startswith(name)]
    assert " gone " in row and " OK " not in row  # not "OK" in the terminal table

    again = await run_sync(config, store)  # still gone: the first date is kept
    [later] = rows(store, customer_state, tenant_id=leaving)
    assert again.gone == [leaving] and later.gone_since == state.gone_since

    assert runs.prune_gone(store) == [leaving]
    with store.reading() as conn:
        for table in metadata.sorted_tables:
            if "tenant_id" in table.c:
                found = conn.execute(select(table).where(table.c.tenant_id == leaving)).all()
                assert found == [], table.name
    others = [t["id"] for t in control.customers() if t["id"] != leaving]
    assert all(store.counts(t)["users"] > 0 for t in others)
    assert runs.prune_gone(store) == []


async def test_failing_runs_are_counted_until_a_sync_succeeds(
    make_emulator: Callable[..., Emulator], tmp_path: Path, store: Store
) -> None:
    emu = make_emulator(fleet_world(2))
    control = Control(emu)
    config = config_for(emu, tmp_path)
    target = next(t for t in control.customers() if t["region"] == "NA")
    pair = {"partner": "partner.com", "customer": target["id"]}
    control.call("DELETE", "relationships", pair)
    for expected in (1, 2, 3):
        summary = await run_sync(config, store, customers=[target["domain"]])
        assert summary.tenants[0].status.value == "propagating"
        [state] = rows(store, customer_state, tenant_id=target["id"])
        assert state.failing_runs == expected and state.failing_since is not None
    first_failure = state.failing_since

    control.call("POST", "relationships", {**pair, "in_effect": True})
    summary = await run_sync(config, store, customers=[target["domain"]])
    assert summary.ok, summary.as_dict()
    [state] = rows(store, customer_state, tenant_id=target["id"])
    assert (state.failing_runs, state.failing_since) == (0, None)
    history = sorted(
        rows(store, run_customers, tenant_id=target["id"]), key=lambda r: r.finished_at
    )
    assert [r.status for r in history] == ["propagating"] * 3 + ["ok"]
    assert history[0].finished_at >= first_failure


async def test_each_regions_app_credential_end_is_recorded_or_unknown(
    make_emulator: Callable[..., Emulator], tmp_path: Path, store: Store
) -> None:
    emu = make_emulator(planted_world)
    assert (await run_sync(config_for(emu, tmp_path), store)).ok
    apps = {a.region: a for a in rows(store, partner_apps)}
    na, eu = apps["NA"], apps["EU"]
    assert na.credential == "secret" and na.unknown_reason is None
    assert abs(na.expires_at - (datetime.now(UTC) + 10 * DAY)) < timedelta(minutes=5)
    assert (eu.credential, eu.expires_at, eu.unknown_reason) == ("secret", None, NO_READ)

    # A world file's secrets end in 2100: read as such when the app may read itself.
    emu2 = make_emulator(fleet_world(1))
    emu2.call(lambda: _grant_self_read(emu2))
    with Store.open(f"sqlite:///{tmp_path / 'second.db'}") as second:
        assert (await run_sync(config_for(emu2, tmp_path), second)).ok
        na2 = {a.region: a for a in rows(second, partner_apps)}["NA"]
    assert na2.expires_at == datetime.fromtimestamp(WORLD_SECRETS_EXPIRE, UTC)


def _grant_self_read(emu: Emulator) -> None:
    from csp_emulator.world.worldfile import grant_app_role

    partner = emu.world.tenant("partner.com")
    assert partner is not None
    sp = partner.service_principal_by_app_id("6731de76-14a6-49ae-97bc-6eba6914391e")
    graph = partner.service_principal_by_app_id(wellknown.GRAPH_APP_ID)
    assert sp is not None and graph is not None
    permission = wellknown.APPLICATION_PERMISSIONS["Application.Read.All"].id
    grant_app_role(partner, sp, graph, permission, emu.world.clock.now())


async def test_an_interrupted_run_is_recorded_as_interrupted(
    make_emulator: Callable[..., Emulator], tmp_path: Path, store: Store
) -> None:
    emu = make_emulator(fleet_world(4))
    task: asyncio.Task[SyncSummary] | None = None

    class CancelAfterOne(NullProgress):
        def tenant_finished(self, result: Any) -> None:
            if task is not None:
                task.cancel()

    task = asyncio.ensure_future(
        run_sync(config_for(emu, tmp_path), store, progress=CancelAfterOne(), concurrency=1)
    )
    with pytest.raises(asyncio.CancelledError):
        await task
    [run] = rows(store, runs_table)
    assert run.outcome == "interrupted" and run.finished_at is not None
    finished = rows(store, run_customers, run_id=run.run_id)
    assert 1 <= len(finished) < 4  # the customers that finished before the interruption


def test_every_object_table_has_a_resource_the_sync_pulls() -> None:
    from cspgraph.fleet.resources import PULLS

    assert {p.resource for p in PULLS} == set(OBJECT_TABLES)
