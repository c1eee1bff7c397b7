"""The shared budget (RedisLimiter) against a real Redis: the same limiter as the in-process one,
and one budget for every process that uses it.

The first test replays random histories (reservations, answers with and without Graph's
``x-ms-resource-unit`` / ``x-ms-throttle-limit-percentage`` headers, 429s of a tenant or of the
whole app, tenant sizes) through both GraphLimiter and RedisLimiter on the same fake clock and
asserts the same waits and learnt budgets after every step: the Lua script is GraphLimiter's
algorithm, not an approximation of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cspgraph.distributed.async_limiter import AsyncRedisLimiter
from cspgraph.distributed.redis_limiter import RedisLimiter
from cspgraph.graph.limits import GraphLimiter, RequestCost, TenantSize
from cspgraph.graph.scope import Family
from tests.scale.services import REDIS_URL, require, unique

TENANTS = ("t1", "t2", "t3", "t4")
# Two tenants reached through a second app (a partner's other region), two through the default.
APPS = {"t3": "app-eu", "t4": "app-eu"}


@pytest.fixture(scope="module")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(require("redis", REDIS_URL))
    yield client
    client.close()


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


# Histories dwell on two tenants (one per app), so that answers and 429s meet later reservations
# of the same tenant; ticks are mostly shorter than Graph's windows, sometimes longer.
tenants = st.sampled_from(("t1", "t1", "t3", "t3", "t2", "t4"))
costs = st.builds(
    RequestCost,
    family=st.sampled_from([Family.IDENTITY, Family.IDENTITY, Family.INTUNE, Family.OTHER]),
    units=st.integers(1, 6),
    writes=st.sampled_from([0, 0, 0, 1]),
)
steps = st.one_of(
    st.tuples(st.just("reserve"), tenants, costs),
    st.tuples(
        st.just("response"),
        tenants,
        costs,
        st.one_of(st.none(), st.sampled_from([0.5, 1.0, 2.0, 4.0, 7.5])),
        st.one_of(st.none(), st.sampled_from([0.5, 0.8, 0.85, 0.95, 1.0, 1.2])),
    ),
    st.tuples(
        st.just("throttled"),
        tenants,
        costs,
        st.floats(0.0, 30.0),
        st.sampled_from([None, "Tenant_Application/ReadWrite", "Application/ReadWrite"]),
    ),
    st.tuples(st.just("size"), tenants, st.sampled_from(list(TenantSize))),
    st.tuples(st.just("tick"), st.sampled_from([0.0, 0.05, 0.5, 2.0, 6.0, 11.0, 25.0])),
)


def learn(step: tuple[object, ...], limiters: tuple[Any, ...]) -> None:
    """An answer, a 429 or a tenant size of a history, told to each of ``limiters``."""
    kind, tenant, cost = step[0], str(step[1]), step[2]
    for limiter in limiters:
        if kind == "response":
            limiter.record_response(tenant, cost, resource_units=step[3], limit_percentage=step[4])
        elif kind == "throttled":
            limiter.record_throttled(tenant, cost, delay=step[3], throttle_scope=step[4])
        else:
            assert kind == "size" and isinstance(cost, TenantSize), step
            limiter.set_tenant_size(tenant, cost)


def replay(
    redis_client: redis.Redis, history: list[tuple[object, ...]], scale: float, start: float
) -> None:
    """Play ``history`` through both limiters on one fake clock; every wait and every learnt
    budget must be the same."""
    clock = FakeClock(start)
    local = GraphLimiter(scale=scale, clock=clock, app_of=APPS.get)
    shared = RedisLimiter(
        client=redis_client, namespace=unique("diff"), scale=scale, clock=clock, app_of=APPS.get
    )
    try:
        for step in history:
            kind = step[0]
            if kind == "tick":
                clock.now += float(step[1])  # type: ignore[arg-type]
                continue
            tenant = str(step[1])
            if kind == "reserve":
                cost = step[2]
                assert isinstance(cost, RequestCost)
                assert shared.reserve(tenant, cost) == local.reserve(tenant, cost), step
            else:
                learn(step, (local, shared))
            for other in TENANTS:
                for family in (Family.IDENTITY, Family.INTUNE):
                    assert shared.budget(other, family) == local.budget(other, family), step
        # What the app-wide budgets learnt shows in the next reservations' waits.
        for family in (Family.OTHER, Family.IDENTITY, Family.INTUNE):
            probe = RequestCost(family, 2, 1)
            for tenant in TENANTS:
                for _ in range(3):
                    assert shared.reserve(tenant, probe) == local.reserve(tenant, probe)
    finally:
        shared.drop()


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=st.lists(steps, min_size=1, max_size=80),
    scale=st.sampled_from([1.0, 0.001, 0.0005]),
    start=st.floats(0.0, 1e9),
)
def test_the_redis_limiter_gives_the_same_waits_and_budgets_as_the_in_process_one(
    redis_client: redis.Redis, history: list[tuple[object, ...]], scale: float, start: float
) -> None:
    replay(redis_client, history, scale, start)


ID1, ID3, OTHER = (
    RequestCost(Family.IDENTITY, 1, 0),
    RequestCost(Family.IDENTITY, 3, 0),
    RequestCost(Family.OTHER, 1, 0),
)
# Paths random histories reach too rarely, spelled out (scale 0.0005: a small tenant has 1.75 RU
# per 10 s, the app 65 requests per 10 s).
STORIES = {
    "the measured x-ms-resource-unit settles the estimate": [
        ("reserve", "t1", ID3),
        ("response", "t1", ID3, 1.0, None),
        ("reserve", "t1", ID3),
    ],
    "a busy clean tenant that reports its units gets 10 % more": [
        ("reserve", "t1", ID1),
        ("reserve", "t1", ID1),
        ("reserve", "t1", ID1),
        ("response", "t1", ID1, 1.0, None),
        ("tick", 11.0),
        ("response", "t1", ID1, 1.0, None),
        ("reserve", "t1", ID1),
    ],
    "an app-wide 429 learns no more than the budget assumed": [
        *[("response", "t1", OTHER, None, None)] * 70,
        ("throttled", "t1", OTHER, 2.0, "Application/ReadWrite"),
        ("tick", 2.5),
    ],
    "an app-wide 429 learns what Graph admitted": [
        *[("response", "t2", ID1, None, None)] * 20,
        ("throttled", "t1", ID1, 1.0, "Application/ReadWrite"),
        ("tick", 1.5),
    ],
    "a limit-percentage header from a quiet tenant is the app's": [
        ("reserve", "t1", ID1),
        *[("response", "t2", OTHER, None, None)] * 12,
        ("response", "t1", ID1, 1.0, 0.95),
        ("tick", 0.5),
    ],
    "a tenant's own limit-percentage header cuts its budget": [
        ("reserve", "t1", ID1),
        ("response", "t1", ID1, 1.0, 0.9),
        ("tick", 10.0),
        ("reserve", "t1", ID1),
        ("response", "t1", ID1, 1.0, 1.0),
    ],
}


@pytest.mark.parametrize("story", list(STORIES), ids=list(STORIES))
def test_the_redis_limiter_learns_as_the_in_process_one(
    redis_client: redis.Redis, story: str
) -> None:
    replay(redis_client, STORIES[story], 0.0005, 1000.0)


def test_a_reservation_by_one_worker_makes_the_next_worker_wait(redis_client: redis.Redis) -> None:
    namespace, clock = unique("share"), FakeClock(1000.0)
    # Scaled so that the app's global budget is 13 requests per 10 s: 20 % of it (2.6) is burst.
    first, second = (
        RedisLimiter(client=redis_client, namespace=namespace, scale=1e-4, clock=clock)
        for _ in range(2)
    )
    alone = RedisLimiter(client=redis_client, namespace=unique("alone"), scale=1e-4, clock=clock)
    cost = RequestCost(Family.OTHER, 1, 0)
    try:
        assert [first.reserve("t1", cost) for _ in range(2)] == [0.0, 0.0]
        # The second worker has sent nothing, yet waits: the first one used the shared burst.
        waited = second.reserve("t2", cost)
        assert waited > 0.0
        # A limiter of its own (another namespace) would have let it through at once.
        assert alone.reserve("t2", cost) == 0.0
    finally:
        for limiter in (first, alone):
            limiter.drop()


def test_a_429_seen_by_one_worker_pauses_the_other(redis_client: redis.Redis) -> None:
    namespace, clock = unique("pause"), FakeClock(5000.0)
    seen, other = (
        RedisLimiter(client=redis_client, namespace=namespace, clock=clock) for _ in range(2)
    )
    cost = RequestCost(Family.IDENTITY, 1, 0)
    try:
        assert other.reserve("t9", cost) == 0.0
        seen.record_throttled("t1", cost, delay=7.0, throttle_scope="Application/ReadWrite")
        # Another tenant, another worker: the whole app waits out Graph's Retry-After (and then
        # its turn in the emptied bucket).
        assert other.reserve("t9", cost) >= 7.0
        # A tenant's own 429 halves that tenant's learnt budget for every worker.
        before = other.budget("t9")
        seen.record_throttled("t9", cost, delay=3.0, throttle_scope="Tenant/ReadWrite")
        assert other.budget("t9") == pytest.approx(before / 2)
    finally:
        seen.drop()


def test_without_a_clock_the_shared_limiter_reads_the_redis_server_s(
    redis_client: redis.Redis,
) -> None:
    limiter = RedisLimiter(client=redis_client, namespace=unique("time"), scale=1e-4)
    cost = RequestCost(Family.OTHER, 1, 0)
    try:
        waits = [limiter.reserve("t1", cost) for _ in range(5)]
        # The burst (2.6 requests) goes at once, then each waits its turn at 1.04 requests/s.
        assert waits[:2] == [0.0, 0.0]
        assert 0.0 < waits[2] < waits[3] < waits[4]
    finally:
        limiter.drop()


def test_dropping_a_namespace_leaves_no_key_of_it_and_forgetting_starts_afresh(
    redis_client: redis.Redis,
) -> None:
    namespace, clock = unique("drop"), FakeClock(1000.0)
    kept = RedisLimiter(client=redis_client, namespace=unique("kept"), scale=1e-4, clock=clock)
    limiter = RedisLimiter(client=redis_client, namespace=namespace, scale=1e-4, clock=clock)
    cost = RequestCost(Family.IDENTITY, 1, 0)
    try:
        for tenant in ("t1", "t2"):
            limiter.reserve(tenant, cost)
        kept.reserve("t1", cost)
        limiter.record_throttled("t1", cost, delay=3.0, throttle_scope="Tenant/ReadWrite")
        assert limiter.budget("t1") < limiter.budget("t2")  # learnt: the 429 halved it
        limiter.forget()
        assert limiter.budget("t1") == limiter.budget("t2")  # back at the published size
        assert limiter.drop() > 0
        assert list(redis_client.scan_iter(match=f"{namespace}:*")) == []
        # Another namespace's budgets are untouched.
        assert list(redis_client.scan_iter(match=f"{kept.namespace}:*"))
    finally:
        kept.drop()


# -- the asynchronous limiter: the same budgets, reached in pipelines -----------------------------


async def replay_pipelined(history: list[tuple[object, ...]], scale: float, start: float) -> None:
    """Queue the whole of ``history`` on an AsyncRedisLimiter before awaiting anything (each call
    carries the time it was made), then require the in-process limiter's waits and budgets."""
    clock = FakeClock(start)
    local = GraphLimiter(scale=scale, clock=clock, app_of=APPS.get)
    shared = AsyncRedisLimiter(
        require("redis", REDIS_URL), namespace=unique("pipe"), scale=scale, clock=clock,
        app_of=APPS.get,
    )  # fmt: skip
    try:
        booked: list[tuple[asyncio.Future[float], float]] = []
        for step in [*history, *(("reserve", t, RequestCost(f, 2, 1)) for f in Family
                                 for t in TENANTS)]:  # fmt: skip
            kind = step[0]
            if kind == "tick":
                clock.now += float(step[1])  # type: ignore[arg-type]
                continue
            tenant = str(step[1])
            if kind == "reserve":
                cost = step[2]
                assert isinstance(cost, RequestCost)
                booked.append((shared.reserve(tenant, cost), local.reserve(tenant, cost)))
            else:
                learn(step, (local, shared))
        assert [await wait for wait, _ in booked] == [expected for _, expected in booked]
        for tenant in TENANTS:
            for family in (Family.IDENTITY, Family.INTUNE):
                assert await shared.budget(tenant, family) == local.budget(tenant, family)
        # Every call made before the loop ran went out in one round trip.
        assert shared.round_trips == 1
    finally:
        shared.drop()
        await shared.aclose()


@pytest.mark.parametrize("story", list(STORIES), ids=list(STORIES))
async def test_the_asynchronous_limiter_books_as_the_in_process_one_from_one_pipeline(
    story: str,
) -> None:
    await replay_pipelined(STORIES[story], 0.0005, 1000.0)


async def test_calls_made_while_a_pipeline_is_under_way_go_together_in_the_next() -> None:
    limiter = AsyncRedisLimiter(
        require("redis", REDIS_URL), namespace=unique("batch"), scale=1000.0
    )
    cost = RequestCost(Family.IDENTITY, 1, 0)
    try:
        first = limiter.reserve("t1", cost)  # the first pipeline starts with this one
        await asyncio.sleep(0)  # ... and is under way now
        later = [limiter.reserve(f"t{i}", cost) for i in range(100)]
        for i in range(100):
            limiter.record_response(f"t{i}", cost, resource_units=1.0)
        assert [await first, *await asyncio.gather(*later)] == [0.0] * 101
        await limiter.flush()
        assert (limiter.calls, limiter.round_trips) == (201, 2)
    finally:
        limiter.drop()
        await limiter.aclose()
