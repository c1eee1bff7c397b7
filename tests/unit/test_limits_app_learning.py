"""GraphLimiter learning the app-wide budgets (scaled-down or shared) from Graph's own answers, on
an injected clock: no sleeping, no timing thresholds."""

from __future__ import annotations

import pytest

from cspgraph.graph.limits import GraphLimiter, RequestCost
from cspgraph.graph.scope import Family
from tests.unit.fake_clock import Clock

READ = RequestCost(Family.IDENTITY, 1, 0)
APP_SCOPE = "Application/ReadWrite/app/t0"


@pytest.fixture
def clock() -> Clock:
    return Clock()


def answered(limiter: GraphLimiter, tenants: int, each: int, **headers: float) -> None:
    """``tenants`` tenants each get ``each`` 1-RU reads admitted, none waiting."""
    for t in range(tenants):
        for _ in range(each):
            assert limiter.reserve(f"t{t}", READ) == 0.0
            limiter.record_response(f"t{t}", READ, resource_units=1, **headers)


def test_an_application_scoped_429_learns_what_graph_admitted(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock)
    answered(limiter, tenants=100, each=3)  # 300 requests and RU, far under the published
    limiter.record_throttled("t0", READ, delay=2.0, throttle_scope=APP_SCOPE)
    clock.now += 2.0
    # The app is now paced at what Graph admitted: at most 300 RU in any 20 s, whatever the
    # tenant, where before the 429 it would have sent thousands at once.
    sent, started = 0.0, clock.now
    while clock.now - started < 20.0:
        clock.now += limiter.reserve(f"t{int(sent) % 100}", READ)
        sent += 1
    assert sent <= 300


def test_a_tenant_scoped_429_leaves_the_app_budgets_alone(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock)
    answered(limiter, tenants=100, each=3)
    limiter.record_throttled("t0", READ, delay=2.0, throttle_scope="Tenant_Application/R/app/t0")
    clock.now += 2.0
    for t in range(1, 100):  # every other tenant goes on at once
        for _ in range(10):
            assert limiter.reserve(f"t{t}", READ) == 0.0


def test_a_429_with_nothing_admitted_pauses_without_learning(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock)
    limiter.record_throttled("t0", READ, delay=1.0, throttle_scope=APP_SCOPE)
    assert limiter.reserve("t1", READ) == pytest.approx(1.0, abs=0.01)  # the pause
    clock.now += 10.0
    answered(limiter, tenants=100, each=10)  # then the published budgets, as before


def test_limit_percentage_spread_over_many_tenants_is_the_apps(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock)
    answered(limiter, tenants=100, each=2)  # 200 RU
    limiter.record_response("t0", READ, resource_units=1, limit_percentage=0.8)
    assert limiter.budget("t0") == 3500  # not the tenant's: it sent 1 % of the app's requests
    waits = [limiter.reserve(f"t{t}", READ) for t in range(100) for _ in range(5)]
    assert max(waits) > 0.0  # the app is paced now, at about 201 / 0.8 RU per 20 s


def test_limit_percentage_near_a_learnt_budget_does_not_ratchet_it_down(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock)
    answered(limiter, tenants=100, each=3)
    limiter.record_throttled("t0", READ, delay=0.0, throttle_scope=APP_SCOPE)
    pace = []
    for _ in range(5):  # five windows of answers at 80-90 % of the learnt budget
        clock.now += 20.0
        for t in range(100):
            limiter.record_response(f"t{t}", READ, resource_units=1, limit_percentage=0.9)
        pace.append(limiter.reserve("t0", READ))
        clock.now += pace[-1]
    assert pace[-1] <= pace[0] + 1e-9
