"""Killed runs (SIGKILL: no cleanup) and a world that changes before the rerun: the rerun ends
with the store equal to the world, and calls a customer current only when it is."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from csp_emulator.server import Emulator
from cspgraph.fleet.store import Store
from tests.fleet_helpers import (
    Control,
    assert_store_matches_world,
    config_for,
    customer_ids,
    fleet_world,
    run_killed,
    run_sync,
)


def changes(control: Control, tenant: str, rng: random.Random, n: int) -> list[Any]:
    """About ``n`` changes of every kind a delta round reports: new and deleted users, renamed
    ones, group memberships added and removed, managed devices falling out of compliance."""
    users = [u["id"] for u in control.call("GET", f"tenants/{tenant}/users")["value"]]
    groups = [g["id"] for g in control.call("GET", f"tenants/{tenant}/groups")["value"]]
    managed = control.call("GET", f"tenants/{tenant}/managedDevices")["value"]
    base = f"tenants/{tenant}"
    calls: list[tuple[str, str, Any]] = []
    doomed = rng.sample(users, min(len(users) // 4, n // 4))
    kept = [u for u in users if u not in doomed]
    calls += [("DELETE", f"{base}/users/{u}", None) for u in doomed]
    calls += [
        ("POST", f"{base}/users", {"userPrincipalName": f"new{rng.getrandbits(32)}@x.example"})
        for _ in range(n // 4)
    ]
    calls += [
        ("PATCH", f"{base}/users/{u}", {"displayName": f"renamed {rng.getrandbits(16)}"})
        for u in rng.sample(kept, min(len(kept), n // 4))
    ]
    for group in groups:
        calls.append(("POST", f"{base}/groups/{group}/members", {"id": rng.choice(kept)}))
    calls += [
        ("PATCH", f"{base}/managedDevices/{d['id']}", {"complianceState": "noncompliant"})
        for d in rng.sample(managed, min(len(managed), 3))
    ]
    return control.calls(calls)


def interrupted_round(store: Store, tenant: str, resource: str) -> bool:
    checkpoint = store.checkpoint(tenant, resource)
    return checkpoint is not None and checkpoint.next_link is not None and not checkpoint.full_pull


async def test_a_killed_delta_round_then_a_changed_world_resumes_to_the_world(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(fleet_world(1, sizes={"users": 240, "groups": 4, "devices": 6}))
    control = Control(emu)
    config = config_for(emu, tmp_path)
    [tenant] = customer_ids(control)
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    with Store.open(db) as store:
        assert (await run_sync(config, store, page_size=100)).ok
    # A long delta round: 160 users renamed, read 5 at a time; killed on its 10th page.
    users = control.call("GET", f"tenants/{tenant}/users")["value"]
    control.calls([
        ("PATCH", f"tenants/{tenant}/users/{u['id']}", {"displayName": f"renamed {i}"})
        for i, u in enumerate(users[:160])
    ])  # fmt: skip
    await run_killed(config, db, tmp_path, after_pages=10, page_size=5, count_only="users")
    with Store.open(db) as store:
        assert interrupted_round(store, tenant, "users")
        # While nobody syncs: users added and deleted, among them some the killed round had
        # already written (the first ids in its order) and some it had not reached.
        ids = sorted(u["id"] for u in users)
        gone = ids[:20] + ids[-20:]
        control.calls([("DELETE", f"tenants/{tenant}/users/{u}", None) for u in gone])
        control.calls([
            ("POST", f"tenants/{tenant}/users", {"userPrincipalName": f"late{i}@x.example"})
            for i in range(30)
        ])  # fmt: skip
        before = datetime.now(UTC)

        summary = await run_sync(config, store, page_size=5)
        assert summary.ok, summary.as_dict()
        [result] = summary.tenants
        assert result.modes["users"] == "resumed"
        assert_store_matches_world(store, emu, [tenant])
        [recorded] = store.customer_summaries()
        assert recorded.status == "ok"
        assert recorded.last_sync_at is not None and recorded.last_sync_at >= before
        # A second run finds nothing more to do: the first one left the store current.
        again = await run_sync(config, store, page_size=5)
        assert again.ok and again.tenants[0].received["users"] == 0


@pytest.mark.parametrize("seed", [5, 6, 7, 8])
async def test_kill_9_at_random_points_with_the_world_changing_ends_at_the_world(
    make_emulator: Callable[..., Emulator], tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    emu = make_emulator(fleet_world(3, sizes={"users": 90, "groups": 5, "devices": 20}))
    control = Control(emu)
    config = config_for(emu, tmp_path)
    tenants = customer_ids(control)
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    # A first run killed somewhere in its full pulls (about 60 pages of 10), the world changes,
    # a second run killed somewhere in its delta rounds, the world changes again: then a rerun.
    await run_killed(config, db, tmp_path, after_pages=rng.randint(2, 50), page_size=10)
    changes(control, rng.choice(tenants), rng, 40)
    with Store.open(db) as store:
        assert (await run_sync(config, store, page_size=10)).ok
    for tenant in tenants:
        changes(control, tenant, rng, 60)
    await run_killed(config, db, tmp_path, after_pages=rng.randint(1, 12), page_size=5)
    changes(control, rng.choice(tenants), rng, 40)
    with Store.open(db) as store:
        summary = await run_sync(config, store, page_size=10)
        assert summary.ok, summary.as_dict()
        assert_store_matches_world(store, emu, tenants)
        assert {s.status for s in store.customer_summaries()} == {"ok"}
