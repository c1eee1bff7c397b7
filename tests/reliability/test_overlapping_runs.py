"""Two sync runs on one store at the same time, on SQLite and PostgreSQL: nothing is lost.

Each run has its own store connection pool and writer, as two processes would; they meet only in
the database. The second run starts once the first has written a few pages (its progress says
so), never after a sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from csp_emulator.server import Emulator
from cspgraph.config import Config
from cspgraph.fleet.leases import TenantLeases
from cspgraph.fleet.progress import NullProgress
from cspgraph.fleet.store import Store
from cspgraph.fleet.sync import SyncSummary
from tests.fleet_helpers import (
    Control,
    assert_store_matches_world,
    config_for,
    customer_ids,
    fleet_world,
    run_sync,
)
from tests.unit import pg_fixture

pg_database = pg_fixture.pg_database
pg_schema_url = pg_fixture.pg_schema_url
pg_url = pg_fixture.pg_url


@pytest.fixture(params=pg_fixture.BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return pg_fixture.store_url(request, request.param, tmp_path)


class AfterPages(NullProgress):
    """Sets ``reached`` once ``pages`` pages have been written."""

    def __init__(self, pages: int) -> None:
        self.pages = pages
        self.written = 0
        self.reached = asyncio.Event()

    def page_written(self, tenant_id: str, resource: str, objects: int) -> None:
        self.written += 1
        if self.written >= self.pages:
            self.reached.set()


async def overlapped(
    first: Callable[[NullProgress], Awaitable[SyncSummary]],
    second: Callable[[], Awaitable[SyncSummary]],
    *,
    after_pages: int,
) -> tuple[SyncSummary, SyncSummary]:
    """Start ``first``; once it has written ``after_pages`` pages, run ``second`` alongside."""
    progress = AfterPages(after_pages)
    running = asyncio.ensure_future(first(progress))
    reached = asyncio.ensure_future(progress.reached.wait())
    await asyncio.wait({running, reached}, return_when=asyncio.FIRST_COMPLETED)
    reached.cancel()
    assert progress.reached.is_set(), "the first run ended before the second could start"
    other = await second()
    return await running, other


USERS_ONLY: dict[str, Any] = {"resources": ["users"], "page_size": 5}


World = tuple[Emulator, Config, list[str]]


def a_big_tenant(make: Callable[..., Emulator], tmp_path: Path) -> World:
    """The issue's first case: one tenant of 400 users, to be pulled 5 at a time."""
    emu = make(fleet_world(1, sizes={"users": 400, "groups": 2, "devices": 4}))
    return emu, config_for(emu, tmp_path), customer_ids(Control(emu))


def three_tenants(make: Callable[..., Emulator], tmp_path: Path) -> World:
    """The issue's second case, smaller: tenants with many managed devices."""
    emu = make(fleet_world(3, sizes={"users": 30, "devices": 20, "managed_devices": 120}))
    return emu, config_for(emu, tmp_path), customer_ids(Control(emu))


async def test_a_second_full_sync_started_mid_pull_loses_no_user(
    make_emulator: Callable[..., Emulator], tmp_path: Path, store_url: str
) -> None:
    emu, config, ids = a_big_tenant(make_emulator, tmp_path)
    options = USERS_ONLY
    with Store.open(store_url) as one, Store.open(store_url) as two:
        first, second = await overlapped(
            lambda progress: run_sync(config, one, progress=progress, **options),
            lambda: run_sync(config, two, **options),
            after_pages=3,
        )
        assert first.ok, first.as_dict()
        assert_store_matches_world(one, emu, ids, ("users",))
        # The second run left the customer to the first, and says so.
        (held,) = second.tenants
        assert held.status == "running" and not second.ok
        assert "another sync run" in (held.reason or "")
        assert not held.pages  # it did not touch the customer
        # A later delta sync finds nothing to repair.
        again = await run_sync(config, two, **options)
        assert again.ok and again.tenants[0].received["users"] == 0
        assert_store_matches_world(two, emu, ids, ("users",))


async def test_two_delta_syncs_at_once_keep_every_managed_device(
    make_emulator: Callable[..., Emulator], tmp_path: Path, store_url: str
) -> None:
    emu, config, ids = three_tenants(make_emulator, tmp_path)
    with Store.open(store_url) as one, Store.open(store_url) as two:
        assert (await run_sync(config, one)).ok  # an established store
        first, second = await overlapped(
            lambda progress: run_sync(config, one, progress=progress, page_size=5),
            lambda: run_sync(config, two, page_size=5),
            after_pages=2,
        )
        assert first.ok, first.as_dict()
        assert_store_matches_world(one, emu, ids)
        # Every customer was synced by one run or the other; the one that left a customer alone
        # says so, and nobody reports success for a customer it did not sync.
        synced = {t.tenant_id for s in (first, second) for t in s.tenants if t.status == "ok"}
        assert synced == set(ids)
        for result in second.tenants:
            if result.status != "ok":
                assert result.status == "running" and "another sync run" in (result.reason or "")


async def test_a_second_sync_with_wait_syncs_each_customer_after_the_first(
    make_emulator: Callable[..., Emulator], tmp_path: Path, store_url: str
) -> None:
    emu = make_emulator(fleet_world(2, sizes={"users": 120, "devices": 10}))
    control = Control(emu)
    config = config_for(emu, tmp_path)
    ids = customer_ids(control)
    with Store.open(store_url) as one, Store.open(store_url) as two:

        async def second() -> SyncSummary:
            # A change the first run may or may not see; the waiting run must.
            control.call("POST", f"tenants/{ids[0]}/users", {"userPrincipalName": "late@x.example"})
            waiting = TenantLeases(two, poll=0.05)
            return await run_sync(config, two, page_size=5, wait=True, leases=waiting)

        first, waited = await overlapped(
            lambda progress: run_sync(config, one, progress=progress, page_size=5),
            second,
            after_pages=2,
        )
        assert first.ok and waited.ok, waited.as_dict()
        assert {t.tenant_id for t in waited.tenants} == set(ids)
        assert_store_matches_world(two, emu, ids)


# -- without the lease's protection: a run that took over a live run's lease ---------------------
# A run whose renewals stopped (a stalled process) loses its lease after the ttl, and another run
# takes it while the first still works. Simulated by a second run whose clock is an hour ahead, so
# that it finds every lease expired. The pages' positions must keep the two from losing data.


def ahead_of_time(store: Store) -> TenantLeases:
    return TenantLeases(store, clock=lambda: time.time() + 3600)


async def test_runs_that_both_hold_a_tenant_still_lose_no_user(
    make_emulator: Callable[..., Emulator], tmp_path: Path, store_url: str
) -> None:
    emu, config, ids = a_big_tenant(make_emulator, tmp_path)
    options = USERS_ONLY
    with Store.open(store_url) as one, Store.open(store_url) as two:
        first, second = await overlapped(
            lambda progress: run_sync(config, one, progress=progress, **options),
            lambda: run_sync(config, two, leases=ahead_of_time(two), **options),
            after_pages=3,
        )
        outcomes = sorted([first.tenants[0], second.tenants[0]], key=lambda t: t.status.value)
        # One run finished the pull; the other was refused at its first page after the winner's.
        assert [t.status.value for t in outcomes] == ["failed", "ok"], outcomes
        assert "another sync run wrote this customer" in (outcomes[0].reason or "")
        assert_store_matches_world(one, emu, ids, ("users",))


async def test_delta_syncs_that_both_hold_their_tenants_keep_every_managed_device(
    make_emulator: Callable[..., Emulator], tmp_path: Path, store_url: str
) -> None:
    emu, config, ids = three_tenants(make_emulator, tmp_path)
    with Store.open(store_url) as one, Store.open(store_url) as two:
        assert (await run_sync(config, one)).ok
        first, second = await overlapped(
            lambda progress: run_sync(config, one, progress=progress, page_size=5),
            lambda: run_sync(config, two, page_size=5, leases=ahead_of_time(two)),
            after_pages=2,
        )
        # Each resource of each customer was completed by one run or the other (a run refused
        # on one resource still completes the others), and a run says when it was refused.
        assert_store_matches_world(one, emu, ids)
        for result in [*first.tenants, *second.tenants]:
            reason = result.reason or ""
            if result.status == "failed":  # refused at a page
                assert "another sync run wrote this customer" in reason, result.as_dict()
            elif result.status == "running":  # found the other's lease when it began
                assert "another sync run is syncing this customer" in reason, result.as_dict()
            else:
                assert result.status == "ok", result.as_dict()
