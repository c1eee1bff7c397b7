"""GraphLimiter with several apps (one partner-managed app per region): Graph's app-wide budgets
are per app, so each app's are paced and learnt on their own. Injected clock: no sleeping."""

from __future__ import annotations

import pytest

from cspgraph.graph.limits import GraphLimiter, RequestCost
from cspgraph.graph.scope import Family
from cspgraph.graph.wire import app_of
from tests.unit.fake_clock import Clock

READ = RequestCost(Family.IDENTITY, 1, 0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


# Tenants a0..a99 go out under app A, b0..b99 under app B; "new" is not routed yet.
def app_by_name(tenant: str) -> str | None:
    return {"a": "app-A", "b": "app-B"}.get(tenant[0])


def answered(limiter: GraphLimiter, prefix: str, tenants: int, each: int) -> None:
    for t in range(tenants):
        for _ in range(each):
            assert limiter.reserve(f"{prefix}{t}", READ) == 0.0
            limiter.record_response(f"{prefix}{t}", READ, resource_units=1)


def sent_in(limiter: GraphLimiter, clock: Clock, prefix: str, seconds: float) -> int:
    """Requests one app's tenants get through in ``seconds``, sending as fast as allowed."""
    sent, started = 0, clock.now
    while clock.now - started < seconds:
        clock.now += limiter.reserve(f"{prefix}{sent % 100}", READ)
        sent += 1
    return sent


def throttled(limiter: GraphLimiter, tenant: str, app: str) -> None:
    limiter.record_throttled(
        tenant, READ, delay=2.0, throttle_scope=f"Application/ReadWrite/{app}/{tenant}"
    )


def test_each_app_learns_its_own_budget_from_its_429s(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock, app_of=app_by_name)
    answered(limiter, "a", tenants=100, each=3)  # app A: 300 admitted
    answered(limiter, "b", tenants=100, each=6)  # app B: 600 admitted
    throttled(limiter, "a0", "app-A")
    throttled(limiter, "b0", "app-B")
    clock.now += 2.0
    # Learnt apart: A at about 300 RU per 20 s, B at about 600; learnt together, both would
    # have been given the sum (900).
    assert sent_in(limiter, clock, "a", 20.0) <= 300
    clock.now += 40.0
    assert 300 < sent_in(limiter, clock, "b", 20.0) <= 600


def test_a_tenant_is_paced_by_its_own_apps_budget_only(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock, app_of=app_by_name)
    answered(limiter, "a", tenants=100, each=3)
    throttled(limiter, "a0", "app-A")  # app A is over its budget and paused
    assert limiter.reserve("a1", READ) > 0.0
    for t in range(100):  # app B's tenants go on at once, at the published budgets
        for _ in range(10):
            assert limiter.reserve(f"b{t}", READ) == 0.0


def test_one_apps_usage_does_not_count_against_the_other(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock, app_of=app_by_name)
    answered(limiter, "b", tenants=100, each=9)  # app B busy: 900 admitted
    answered(limiter, "a", tenants=100, each=2)  # app A: 200
    throttled(limiter, "a0", "app-A")  # A learns 200, not 1,100
    clock.now += 2.0
    assert sent_in(limiter, clock, "a", 20.0) <= 200


def test_tenants_not_yet_routed_share_the_default_app(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock, app_of=app_by_name)
    answered(limiter, "n", tenants=100, each=3)  # app_of says None: the default app
    throttled(limiter, "n0", "app-?")
    assert limiter.reserve("n1", READ) > 0.0  # the default app is paused
    assert limiter.reserve("a1", READ) == 0.0  # app A is not


def test_without_app_of_every_tenant_shares_one_app(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock)
    answered(limiter, "a", tenants=100, each=3)
    throttled(limiter, "a0", "app-A")
    assert limiter.reserve("b1", READ) > 0.0


def test_a_header_from_one_budget_does_not_shrink_the_other(clock: Clock) -> None:
    limiter = GraphLimiter(clock=clock, app_of=app_by_name)
    answered(limiter, "a", tenants=100, each=3)
    throttled(limiter, "a0", "app-A")  # both app budgets learn: 300 requests, 300 RU
    clock.now += 45.0  # both windows have forgotten those
    dear = RequestCost(Family.IDENTITY, 4, 0)
    for t in range(60):
        limiter.record_response(f"a{t}", dear, resource_units=4)
    # 61 requests and 241 RU: the RU budget (0.8 of 300) is the full one, not the requests'.
    limiter.record_response("a0", READ, resource_units=1, limit_percentage=0.8)
    other = RequestCost(Family.OTHER, 1, 0)
    sent, started = 0, clock.now
    while clock.now - started < 10.0:
        clock.now += limiter.reserve("a1", other)
        sent += 1
    assert sent > 250  # the request budget kept its 300 (not 61 / 0.8 = 76)


def test_transport_takes_app_of_from_a_token_source_that_has_one() -> None:
    class Routed:
        def app_for(self, tenant: str) -> str | None:
            return "app-A"

    assert app_of(object()) is None
    found = app_of(Routed())
    assert found is not None and found("t") == "app-A"
