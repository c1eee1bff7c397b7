"""Every fault the emulator injects, on every host, during a fleet sync: each run ends with the
store equal to the world, or with the failure recorded on the customer it hit.

Faults are the world's own (``/_emulator/faults``, seeded, counted): a fault with ``rate`` 1 and
a ``count`` answers the next ``count`` requests to its host badly, whatever they are — token
requests and discovery on ``login``, the customer lists on ``partner_center``, the pulls on
``graph``. Counts stay within the retry budgets (6 retries per request), so a run that still
fails has a bug, not bad luck.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from csp_emulator.server import Emulator
from cspgraph.fleet.store import Store
from cspgraph.fleet.sync import SyncSummary
from tests.fleet_helpers import (
    DEMO_PARTNERS,
    Control,
    assert_store_matches_world,
    config_for,
    customer_ids,
    fleet_world,
    run_sync,
)

HOSTS = ("login", "graph", "partner_center")
FAULTS: dict[str, list[dict[str, Any]]] = {
    "429": [{"kind": "429", "count": 4}],
    "5xx": [{"kind": kind, "count": 1} for kind in ("500", "502", "503", "504")],
    # Latency costs no retry: two, as many as the fewest requests a host sees (one customer
    # list per region).
    "latency": [{"kind": "latency", "latency": 0.2, "count": 2}],
    "drop": [{"kind": "drop", "count": 3}],
}
SMALL = {"users": 24, "groups": 3, "devices": 6, "managed_devices": 4}


def small_fleet() -> Callable[..., Any]:
    return fleet_world(3, sizes=SMALL)


def store_in(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'fleet.db'}")


def token_path(tenant: str) -> str:
    return f"/{tenant}/oauth2/v2.0/token"


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("kind", FAULTS)
async def test_each_fault_on_each_host_ends_with_the_store_equal_to_the_world(
    make_emulator: Callable[..., Emulator], tmp_path: Path, host: str, kind: str
) -> None:
    emu = make_emulator(small_fleet())
    control = Control(emu)
    ids = customer_ids(control)
    control.calls([("POST", "faults", {"host": host, "rate": 1.0, **f}) for f in FAULTS[kind]])
    with store_in(tmp_path) as store:
        summary = await run_sync(config_for(emu, tmp_path), store)
        assert summary.ok, summary.as_dict()
        assert_store_matches_world(store, emu, ids)
    assert control.call("GET", "faults")["value"] == []  # every fault was met (and spent)


async def test_a_customer_whose_token_endpoint_is_down_is_recorded_and_keeps_its_data(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(small_fleet())
    control = Control(emu)
    ids = customer_ids(control)
    down, others = ids[0], ids[1:]
    config = config_for(emu, tmp_path, token_retries=2)  # a quick end to a lasting outage
    with store_in(tmp_path) as store:
        assert (await run_sync(config, store)).ok
        control.call("POST", f"tenants/{down}/users", {"userPrincipalName": "late@x.example"})
        for other in others:
            control.call("POST", f"tenants/{other}/users", {"userPrincipalName": "new@x.example"})
        before = store.counts(down)
        outage = {"host": "login", "kind": "503", "path_prefix": token_path(down)}
        control.call("POST", "faults", outage)

        summary = await run_sync(config, store)
        result = _result(summary, down)
        assert result.status == "failed" and result.error_class == "transient"
        assert "503" in (result.reason or "") and not summary.ok
        assert all(_result(summary, t).status == "ok" for t in others)
        assert_store_matches_world(store, emu, others)
        # What the store held of the customer is kept, and its failure is on record.
        assert store.counts(down) == before
        recorded = {s.tenant_id: s for s in store.customer_summaries()}
        assert recorded[down].status == "failed" and "503" in (recorded[down].status_reason or "")

        control.call("DELETE", "faults", {})
        healed = await run_sync(config, store)
        assert healed.ok, healed.as_dict()
        assert_store_matches_world(store, emu, ids)


async def test_a_flaky_token_endpoint_costs_retries_not_customers(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(small_fleet())
    control = Control(emu)
    ids = customer_ids(control)
    # Half of the token requests answered 503, six times in all (customers' and the partners').
    control.call("POST", "faults", {"host": "login", "kind": "503", "rate": 0.5, "count": 6,
                                    "path_prefix": "/"})  # fmt: skip
    with store_in(tmp_path) as store:
        summary = await run_sync(config_for(emu, tmp_path), store)
        assert summary.ok, summary.as_dict()
        assert_store_matches_world(store, emu, ids)


async def test_one_failed_partner_center_token_request_loses_no_region(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(small_fleet())
    control = Control(emu)
    ids = customer_ids(control)
    partners = [t["id"] for t in control.call("GET", "world")["tenants"] if t["kind"] == "partner"]
    assert len(partners) == len(DEMO_PARTNERS)
    for partner in partners:
        control.call("POST", "faults", {"host": "login", "kind": "503", "count": 1,
                                        "path_prefix": token_path(partner)})  # fmt: skip
    with store_in(tmp_path) as store:
        summary = await run_sync(config_for(emu, tmp_path), store)
        assert summary.listing_errors == {} and summary.ok, summary.as_dict()
        assert sorted(t.tenant_id or "" for t in summary.tenants) == ids
    assert control.call("GET", "faults")["value"] == []


async def test_a_slow_token_answer_is_abandoned_at_the_timeout_and_retried(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    # The 45 s delay against a 30 s timeout, scaled down: 1.5 s against 0.5 s.
    emu = make_emulator(small_fleet())
    control = Control(emu)
    ids = customer_ids(control)
    slow = {"host": "login", "kind": "latency", "latency": 1.5, "count": 1,
            "path_prefix": token_path(ids[0])}  # fmt: skip
    # Without a retry the customer fails: the timeout is what ends the slow request.
    control.call("POST", "faults", slow)
    with store_in(tmp_path) as store:
        once = config_for(emu, tmp_path, token_timeout=0.5, token_retries=0)
        summary = await run_sync(once, store, customers=[ids[0]])
        [result] = summary.tenants
        assert result.status == "failed" and result.error_class == "transient", result.as_dict()
        assert "Timeout" in (result.reason or "")
    # With the retries it would get, the second request is answered at once.
    control.call("POST", "faults", slow)
    with store_in(tmp_path) as store:
        summary = await run_sync(config_for(emu, tmp_path, token_timeout=0.5), store)
        assert summary.ok, summary.as_dict()
        assert_store_matches_world(store, emu, ids)
    assert control.call("GET", "faults")["value"] == []


async def test_discovery_that_fails_once_per_customer_is_retried(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(small_fleet())
    control = Control(emu)
    ids = customer_ids(control)
    control.calls([
        ("POST", "faults", {"host": "login", "kind": "502", "count": 1,
                            "path_prefix": f"/{tenant}/v2.0/.well-known"})
        for tenant in ids
    ])  # fmt: skip
    with store_in(tmp_path) as store:
        summary = await run_sync(config_for(emu, tmp_path), store, customers=ids)
        assert summary.ok, summary.as_dict()
        assert_store_matches_world(store, emu, ids)
    assert control.call("GET", "faults")["value"] == []


def _result(summary: SyncSummary, tenant: str) -> Any:
    return next(t for t in summary.tenants if t.tenant_id == tenant)
