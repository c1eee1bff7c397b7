"""GraphLimiter and request costs, on an injected clock (no sleeping, no timing thresholds)."""

from __future__ import annotations

import pytest

from cspgraph.graph.limits import (
    Budget,
    GraphBudgets,
    GraphLimiter,
    RequestCost,
    TenantSize,
    request_cost,
)
from cspgraph.graph.scope import Family, resolve
from tests.unit.fake_clock import Clock

A = "tenant-a"
B = "tenant-b"
READ = RequestCost(Family.IDENTITY, 1, 0)


@pytest.fixture
def clock() -> Clock:
    return Clock(500.0)


def cost(method: str, path: str, query: tuple[str, ...] = (), top: int | None = None) -> int:
    return request_cost(resolve(method, path), query, top).units


# -- costs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "query", "top", "units"),
    [
        ("GET", "/users", (), None, 2),
        ("GET", "/users", ("$select",), None, 1),
        ("GET", "/users", ("$select",), 10, 1),  # minimum 1
        ("GET", "/users/delta", (), None, 2),
        ("GET", "/users/u1", (), None, 1),
        ("GET", "/applications", (), None, 2),
        ("GET", "/me/memberOf", (), None, 2),
        ("GET", "/groups/g1/members", (), None, 3),
        ("GET", "/groups/g1/members", ("$select",), 5, 1),
        ("GET", "/groups/g1/transitiveMembers", (), None, 5),
        ("GET", "/groups/g1/transitiveMembers", ("$expand",), None, 6),
        ("GET", "/subscribedSkus", (), None, 3),
        ("POST", "/directoryObjects/getByIds", (), None, 3),  # a read, priced as such
        ("GET", "/groups", (), 999, 1),
        ("GET", "/organization", ("$select",), None, 1),
    ],
)
def test_resource_unit_costs_follow_graph(
    method: str, path: str, query: tuple[str, ...], top: int | None, units: int
) -> None:
    assert cost(method, path, query, top) == units


def test_writes_cost_one_unit_and_one_write() -> None:
    assert request_cost(resolve("PATCH", "/users/u1")) == RequestCost(Family.IDENTITY, 1, 1)
    assert request_cost(resolve("POST", "/groups/g/members/$ref")) == RequestCost(
        Family.IDENTITY, 1, 1
    )


def test_intune_counts_requests() -> None:
    assert request_cost(resolve("GET", "/deviceManagement/managedDevices"), ("$select",)) == (
        RequestCost(Family.INTUNE, 1, 0)
    )
    assert request_cost(resolve("POST", "/deviceManagement/managedDevices/d/syncDevice")) == (
        RequestCost(Family.INTUNE, 1, 1)
    )


# -- budgets and scale -----------------------------------------------------------------------------


def test_budgets_start_small_and_scale(clock: Clock) -> None:
    assert GraphLimiter(clock=clock).budget(A) == 3500
    assert GraphLimiter(clock=clock, scale=0.01).budget(A) == pytest.approx(35)
    assert GraphLimiter(clock=clock, scale=0.01).budget(A, Family.INTUNE) == pytest.approx(20)
    limiter = GraphLimiter(clock=clock, initial_size=TenantSize.M)
    assert limiter.budget(A) == 5000
    limiter.set_tenant_size(B, TenantSize.L)
    assert limiter.budget(B) == 8000


def test_a_burst_is_free_up_to_the_reserve_then_paced(clock: Clock) -> None:
    # 3500 RU per 10 s at 80 % utilisation: 700 RU of burst, then 280 RU/s.
    limiter = GraphLimiter(clock=clock)
    waits = [limiter.reserve(A, READ) for _ in range(700)]
    assert waits == [0.0] * 700
    assert limiter.reserve(A, READ) == pytest.approx(1 / 280)
    assert limiter.reserve(A, READ) == pytest.approx(2 / 280)
    clock.now += 2 / 280
    assert limiter.reserve(A, READ) == pytest.approx(1 / 280)


def test_no_window_ever_carries_more_than_the_budget(clock: Clock) -> None:
    """Simulate a greedy sender that honours every wait; count units per sliding window."""
    limiter = GraphLimiter(clock=clock, scale=0.01)  # 35 RU / 10 s
    budget = limiter.budget(A)
    sends: list[tuple[float, int]] = []
    for i in range(400):
        units = 1 + i % 3
        wait = limiter.reserve(A, RequestCost(Family.IDENTITY, units, 0))
        sends.append((clock.now + wait, units))
        clock.now += wait  # the sender sleeps exactly as told, then sends the next request
    for start, _ in sends:
        in_window = sum(u for t, u in sends if start <= t < start + 10.0)
        assert in_window <= budget + 1e-9


def test_tenants_do_not_wait_for_each_other(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock)
    for _ in range(800):
        limiter.reserve(A, READ)
    assert limiter.reserve(A, READ) > 0
    assert limiter.reserve(B, READ) == 0.0


def test_the_app_budget_spans_tenants(clock: Clock) -> None:
    budgets = GraphBudgets(
        identity_tenant={TenantSize.S: 1000, TenantSize.M: 1000, TenantSize.L: 1000},
        identity_app=Budget(1000, 20),
    )
    limiter = GraphLimiter(clock=clock, budgets=budgets)
    # 200 RU of burst app-wide (20 % of 1000), spread over tenants that each have room.
    waits = [limiter.reserve(f"t{i}", READ) for i in range(200)]
    assert waits == [0.0] * 200
    assert limiter.reserve("t-new", READ) > 0


def test_global_request_budget_covers_every_family(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock, scale=0.001)  # 130 requests / 10 s app-wide
    other = RequestCost(Family.OTHER, 1, 0)
    waits = [limiter.reserve(f"t{i}", other) for i in range(26)]
    assert waits == [0.0] * 26
    assert limiter.reserve("t", RequestCost(Family.INTUNE, 1, 0)) > 0


def test_writes_have_their_own_budget(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock, scale=0.01)  # 30 writes / 150 s per tenant
    write = RequestCost(Family.IDENTITY, 1, 1)
    assert [limiter.reserve(A, write) for _ in range(6)] == [0.0] * 6
    assert limiter.reserve(A, write) == pytest.approx(150 / (30 * 0.8))


# -- learning --------------------------------------------------------------------------------------


def test_limit_percentage_slows_down_once_per_window(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock)
    limiter.reserve(A, READ)
    limiter.record_response(A, READ, limit_percentage=0.79)
    assert limiter.budget(A) == 3500
    limiter.record_response(A, READ, limit_percentage=0.85)
    assert limiter.budget(A) == pytest.approx(3150)
    limiter.record_response(A, READ, limit_percentage=0.95)  # same overload, same window
    assert limiter.budget(A) == pytest.approx(3150)
    clock.now += 10
    limiter.record_response(A, READ, limit_percentage=1.2)  # over the limit: a bigger cut
    assert limiter.budget(A) == pytest.approx(3150 * 0.7)


def test_a_429_halves_the_budget_and_pauses_the_tenant(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock)
    limiter.reserve(A, READ)
    limiter.record_throttled(A, READ, delay=2.5, throttle_scope="Tenant_Application/Read/app/a")
    assert limiter.budget(A) == 1750
    # The pause, then paced from an empty bucket (1 RU at 1750·0.8/10 RU/s): nothing saved up
    # before the 429 bursts out after it.
    assert limiter.reserve(A, READ) == pytest.approx(2.5 + 1 / 140)
    assert limiter.reserve(B, READ) == 0.0
    clock.now += 2.5 + 1 / 140
    assert limiter.reserve(A, READ) == pytest.approx(1 / 140)


def test_an_application_scoped_429_pauses_every_tenant(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock)
    limiter.record_throttled(A, READ, delay=4.0, throttle_scope="Application/Read/app/a")
    assert 4.0 <= limiter.reserve(B, READ) < 4.01
    assert 4.0 <= limiter.reserve(B, RequestCost(Family.INTUNE, 1, 0)) < 4.01


def busy_window(limiter: GraphLimiter, clock: Clock, units: float | None) -> None:
    """Keep tenant A's bucket saturated for one window, with clean answers."""
    for _ in range(60):
        wait = limiter.reserve(A, RequestCost(Family.IDENTITY, 100, 0))
        clock.now += wait
        limiter.record_response(A, RequestCost(Family.IDENTITY, 100, 0), resource_units=units)
    clock.now += 10


def test_budget_grows_while_graph_reports_units_and_no_pressure(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock)
    budgets = [limiter.budget(A)]
    for _ in range(12):
        busy_window(limiter, clock, units=100)
        budgets.append(limiter.budget(A))
    assert budgets[1] > budgets[0]
    assert budgets == sorted(budgets)
    assert budgets[-1] == 8000  # never above the large-tenant budget


def test_budget_does_not_grow_without_resource_unit_headers(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock)
    busy_window(limiter, clock, units=None)
    busy_window(limiter, clock, units=None)
    assert limiter.budget(A) == 3500


def test_budget_does_not_grow_when_the_tenant_is_idle(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock)
    for _ in range(5):
        limiter.reserve(A, READ)
        limiter.record_response(A, READ, resource_units=1)
        clock.now += 20
    assert limiter.budget(A) == 3500


def test_measured_units_correct_the_estimate(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock, scale=0.01)  # 7 RU of burst
    estimate = RequestCost(Family.IDENTITY, 5, 0)
    assert limiter.reserve(A, estimate) == 0.0
    limiter.record_response(A, estimate, resource_units=1)  # it really cost 1: 4 come back
    assert limiter.reserve(A, RequestCost(Family.IDENTITY, 6, 0)) == 0.0
    assert limiter.reserve(A, READ) > 0


def test_intune_recovers_only_up_to_its_published_budget(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock)
    intune = RequestCost(Family.INTUNE, 1, 0)
    limiter.reserve(A, intune)
    limiter.record_throttled(A, intune, delay=1)
    assert limiter.budget(A, Family.INTUNE) == 1000
    for _ in range(20):
        for _ in range(600):
            clock.now += limiter.reserve(A, intune)
            limiter.record_response(A, intune)
        clock.now += 20
    assert limiter.budget(A, Family.INTUNE) == 2000


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        GraphLimiter(scale=0)
    with pytest.raises(ValueError):
        GraphLimiter(utilisation=1.0)
