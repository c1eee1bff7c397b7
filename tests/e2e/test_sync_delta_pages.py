"""The fleet sync under Graph's delta page caps: 200 objects and 500 ``members@delta`` entries a
page, big groups spread over several pages and shrinking groups pages make long chains; the
store must still end exactly as the world, in full and in delta rounds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from csp_emulator.server import Emulator
from csp_emulator.world.model import World
from csp_emulator.world.worldfile import demo_world_data, load_world_data
from cspgraph.fleet.store import Store
from tests.e2e.test_sync import (
    Control,
    assert_store_matches_world,
    config_for,
    customer_ids,
    run_sync,
    sqlite_store,
)

__all__ = ["sqlite_store"]  # the fixture, used by name

BIG_GROUP_MEMBERS = 1_300


def capped_world() -> Callable[[], World]:
    """Two customers; the first with 1,500 users in 30 groups, one of them very big."""
    data = demo_world_data(2, seed=5, gdap=False)  # the DAP fleet
    for partner in data["tenant"]:
        for app in partner.get("app", []):  # so that Global Administrators are synced too
            app["application_permissions"] = [
                *app["application_permissions"],
                "RoleManagement.Read.Directory",
            ]
    customers = [t for t in data["tenant"] if t["kind"] == "customer"]
    customers[0]["generate"] = {"users": 1_500, "groups": 30, "devices": 30, "seed": 5}

    def factory() -> World:
        world = load_world_data(data, source="<capped world>")
        tenant = world.tenant(customers[0]["domain"])
        assert tenant is not None
        users = sorted(tenant.objects["users"])
        big = sorted(tenant.objects["groups"])[7]
        for user in users[:BIG_GROUP_MEMBERS]:
            tenant.add_member(big, user)
        return world

    return factory


async def test_a_sync_through_capped_delta_pages_stores_exactly_the_world_and_its_changes(
    make_emulator: Callable[..., Emulator], tmp_path: Path, sqlite_store: Store
) -> None:
    emu = make_emulator(capped_world())
    control = Control(emu)
    config = config_for(emu, tmp_path)
    ids = customer_ids(control)
    # The sync asks for 999 a page; Graph's caps decide.
    first = await run_sync(config, sqlite_store, page_size=999)
    assert first.ok, first.as_dict()
    assert_store_matches_world(sqlite_store, emu, ids)
    biggest = max(first.tenants, key=lambda t: t.received.get("users", 0))
    assert biggest.pages["users"] == 8  # 1,501 users: 200 a page
    # 30 groups and their ~11,000 memberships at 500 a page, the big group among them.
    members = sum(
        len(g.get("_members", ()))
        for g in emu.world.tenants[biggest.tenant_id].objects["groups"].values()
    )
    assert biggest.pages["groups"] >= members // 500

    # Changes in the big group: some members leave, some join; a delta round applies them.
    tenant = emu.world.tenants[biggest.tenant_id]
    big = max(tenant.objects["groups"], key=lambda g: len(tenant.objects["groups"][g]["_members"]))

    def change() -> None:
        group = tenant.objects["groups"][big]
        for member in list(group["_members"])[:600]:
            tenant.remove_member(big, member)
        outsiders = [u for u in sorted(tenant.objects["users"]) if u not in group["_members"]]
        for user in outsiders[:150]:
            tenant.add_member(big, user)

    emu.call(change)
    second = await run_sync(config, sqlite_store, page_size=999)
    assert second.ok, second.as_dict()
    again = next(t for t in second.tenants if t.tenant_id == biggest.tenant_id)
    assert again.modes["groups"] == "delta"
    assert again.pages["groups"] == 2  # 750 membership changes of one group: 500, then 250
    assert_store_matches_world(sqlite_store, emu, ids)
