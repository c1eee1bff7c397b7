"""The checks tests/e2e/test_checks.py leaves out, each found where it is planted and not where it
is not: a customer never synced (`sync.never`), a region whose customer list cannot be read
(`sync.listing`), and a new privileged role assignment between two syncs
(`changes.new_privileged_role`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from csp_emulator import wellknown
from csp_emulator.server import Emulator
from csp_emulator.world.objects import user_json
from csp_emulator.world.worldfile import add_role_member
from cspgraph.config import config_from_data
from cspgraph.fleet.checks import CheckResults, Severity, run_checks
from cspgraph.fleet.store import Store
from tests.e2e.conftest import Planted
from tests.fleet_helpers import SECRET_ENV, Control, config_for, fleet_world, run_sync

NEW_TENANT = "0000abcd-0000-0000-0000-000000000000"


def found(results: CheckResults, check: str) -> set[str]:
    return {results.name_of(f.tenant_id) for f in results.findings if f.check_id == check}


def test_a_customer_never_synced_is_said_so_and_no_synced_one_is(
    planted: Planted, tmp_path: Path
) -> None:
    url = planted.copy_of(tmp_path / "fleet.db")
    with Store.open(url) as store:
        assert found(run_checks(store), "sync.never") == set()  # every planted one synced
        # Listed (by Partner Center, or named) but not synced yet.
        store.upsert_customer(NEW_TENANT, domain="new.example", display_name="New Co", region="NA")
        results = run_checks(store)
    assert found(results, "sync.never") == {"New Co"}
    [never] = [f for f in results.findings if f.check_id == "sync.never"]
    assert never.severity is Severity.INFO and never.summary == "Not synced yet"
    # Nothing else is claimed about it: its inventory is unknown, not clean.
    assert {f.check_id for f in results.findings if f.tenant_id == NEW_TENANT} == {"sync.never"}


async def test_a_region_whose_customer_list_cannot_be_read_is_a_finding(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(fleet_world(4, sizes={"users": 3, "groups": 1, "devices": 1}))
    config = config_for(emu, tmp_path)
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as store:
        healthy = await run_sync(config, store)  # every region listed by Partner Center
        assert healthy.ok, healthy.as_dict()
        assert found(run_checks(store), "sync.listing") == set()
        wrong = {**SECRET_ENV, "CSPGRAPH_SECRET_EU": "not-the-secret"}
        broken = config_from_data(config.model.model_dump(exclude_none=True), env=wrong)
        summary = await run_sync(broken, store)
        assert set(summary.listing_errors) == {"EU"}
        results = run_checks(store)
    [listing] = [f for f in results.findings if f.check_id == "sync.listing"]
    assert listing.tenant_id is None and listing.subject == "EU"
    assert listing.severity is Severity.HIGH
    assert [o.id for o in listing.objects] == ["EU"] and "7000215" in listing.objects[0].detail


async def test_a_new_privileged_role_assignment_is_news_once(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(fleet_world(3, sizes={"users": 4, "groups": 1, "devices": 1}))
    control = Control(emu)
    customers = [t for t in control.customers() if t["region"] == "NA"]
    target = emu.world.tenants[customers[0]["id"]]
    config = config_for(emu, tmp_path)
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as store:
        assert (await run_sync(config, store)).ok
        # The first sync is the baseline: nothing is new yet.
        assert found(run_checks(store), "changes.new_privileged_role") == set()

        def new_helpdesk() -> None:
            user = target.add("users", user_json(target, f"helper@{target.default_domain}"))
            add_role_member(target, wellknown.ROLE_HELPDESK_ADMIN, user["id"])

        emu.call(new_helpdesk)
        assert (await run_sync(config, store)).ok
        results = run_checks(store)
        [news] = [f for f in results.findings if f.check_id == "changes.new_privileged_role"]
        assert news.tenant_id == target.id and news.severity is Severity.MEDIUM
        assert [o.name for o in news.objects] == [
            f"Helpdesk Administrator: helper@{target.default_domain}"
        ]
        # Not a Global Administrator: that check stays quiet.
        assert found(results, "changes.new_global_admin") == set()
        # The sync after: nothing changed, so nothing is new.
        assert (await run_sync(config, store)).ok
        assert found(run_checks(store), "changes.new_privileged_role") == set()
