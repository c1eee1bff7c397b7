"""How many customers and requests a fleet sync keeps in flight follows Graph, not a knob.

The emulator's latency model holds every Graph answer for a fixed time (no jitter, no slow
tail), and records when each wait began: the requests in flight at once are counted on the
server's side from that record, never from the client's own figures. No test measures time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from csp_emulator.server import Emulator
from cspgraph.fleet.customers import CustomerRef
from cspgraph.fleet.progress import NullProgress
from cspgraph.fleet.store import Store
from tests.fleet_helpers import (
    Control,
    assert_store_matches_world,
    config_for,
    customer_ids,
    fleet_world,
    run_sync,
    world_snapshot,
)

# The old fixed setting: 16 customers and at most 30 connections, so at most 30 in flight.
OLD_CONNECTION_CAP = 30
GRAPH_LATENCY = 0.3
# The 429 test's world and latency: once Graph refuses a quarter of the answers, the client
# keeps only a few requests in flight for the rest of the run (the limiter pauses each refused
# tenant for its backoff, the window halves itself), so the run lasts far longer than a clean
# one: 40 customers at 0.3 s took ~40 s, 20 at 0.1 s take ~8 s. The claim is the same; the
# window's own halving is tested on a fake clock in tests/unit/test_inflight_window.py.
THROTTLED_CUSTOMERS = 20
THROTTLED_LATENCY = 0.1
SMALL = {"users": 6, "groups": 2, "devices": 2, "managed_devices": 2}


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as store:
        yield store


def slow_graph(control: Control, seconds: float = GRAPH_LATENCY) -> None:
    """Every Graph answer held ``seconds``, exactly."""
    flat = {"base": seconds, "per_object": 0.0, "jitter": 0.0, "tail_share": 0.0}
    control.call("PUT", "settings", {"latency": {"graph": flat}})
    control.call("DELETE", "latency/log")


def graph_waits(control: Control) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    after = 0
    while True:
        page = control.call("GET", f"latency/log?after={after}&limit=100000")
        records += [r for r in page["value"] if r["host"] == "graph"]
        if not page["more"]:
            return records
        after = page["next_after"]


def most_at_once(records: list[dict[str, Any]]) -> int:
    """The most answers the server held at the same moment."""
    events = sorted(
        [(r["at"], 1) for r in records] + [(r["at"] + r["seconds"], -1) for r in records],
        key=lambda e: (e[0], e[1]),  # an answer that ends frees its place before the next begins
    )
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


class StartOrder(NullProgress):
    def __init__(self) -> None:
        self.order: list[str] = []

    def tenant_started(self, customer: CustomerRef) -> None:
        self.order.append(customer.reference)


async def test_requests_in_flight_grow_past_the_old_fixed_cap_when_graph_is_slow(
    make_emulator: Callable[..., Emulator], tmp_path: Path, sqlite_store: Store
) -> None:
    emu = make_emulator(fleet_world(40, sizes=SMALL))
    control = Control(emu)
    slow_graph(control)
    summary = await run_sync(config_for(emu, tmp_path), sqlite_store, concurrency=512)

    assert summary.ok, summary.as_dict()
    peak = most_at_once(graph_waits(control))
    # 40 customers × 7 resources could be in flight, and the budgets allow thousands.
    assert peak > OLD_CONNECTION_CAP, peak
    assert_store_matches_world(sqlite_store, emu, customer_ids(control))


async def test_requests_in_flight_shrink_when_graph_answers_429(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(fleet_world(THROTTLED_CUSTOMERS, sizes=SMALL))
    control = Control(emu)
    slow_graph(control, THROTTLED_LATENCY)
    with Store.open(f"sqlite:///{tmp_path / 'clean.db'}") as clean:
        assert (await run_sync(config_for(emu, tmp_path), clean)).ok
    clean_peak = most_at_once(graph_waits(control))

    control.call("DELETE", "latency/log")
    # A quarter of Graph's answers refused with 429 for the whole run.
    control.call("POST", "faults", {"host": "graph", "kind": "429", "rate": 0.25})
    with Store.open(f"sqlite:///{tmp_path / 'throttled.db'}") as throttled:
        summary = await run_sync(config_for(emu, tmp_path), throttled)
        assert summary.ok, summary.as_dict()
        assert summary.throttled > 0
        assert_store_matches_world(throttled, emu, customer_ids(control))  # nothing lost
    records = graph_waits(control)
    refused = [r for r in records if r["status"] == 429]
    # What the client sent once it had seen the first 429 (and everything it had sent before
    # was answered): at most half of what the same sync kept in flight without them.
    seen_at = min(r["at"] + r["seconds"] for r in refused) + THROTTLED_LATENCY
    after = [r for r in records if r["at"] >= seen_at]
    assert after, "the run went on after the first 429"
    assert most_at_once(after) * 2 <= clean_peak, (most_at_once(after), clean_peak)


def chain_size(snapshot: dict[str, Any]) -> int:
    """What a customer's longest chain pulls, read from the world: its largest resource, the
    groups with their memberships."""
    return max(
        len(snapshot["users"]),
        len(snapshot["groups"]) + len(snapshot["members"]),
        len(snapshot["devices"]),
        len(snapshot["managedDevices"]),
    )


async def test_the_largest_customers_start_first_once_the_store_knows_their_size(
    make_emulator: Callable[..., Emulator], tmp_path: Path, sqlite_store: Store
) -> None:
    emu = make_emulator(fleet_world(12))  # the demo's varied sizes
    control = Control(emu)
    ids = customer_ids(control)
    named = random.Random(7).sample(ids, len(ids))
    config = config_for(emu, tmp_path)

    first = StartOrder()  # a first run: no size known, so the order they were named in
    assert (await run_sync(config, sqlite_store, customers=named, progress=first, concurrency=1)).ok
    assert first.order == named

    second = StartOrder()
    assert (await run_sync(config, sqlite_store, customers=named, progress=second)).ok
    sizes = {tid: chain_size(snap) for tid, snap in world_snapshot(emu, ids).items()}
    started = [sizes[t] for t in second.order]
    assert started == sorted(started, reverse=True)
    assert sorted(second.order) == sorted(ids)
