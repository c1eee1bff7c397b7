"""The in-flight window: Little's law from the budgets and the observed latency, a ceiling after
429s, a bound by the bytes of the answers in flight, and waiters served by priority."""

from __future__ import annotations

import asyncio

from cspgraph.distributed.redis_limiter import RedisLimiter
from cspgraph.graph.limits import GraphLimiter, NoLimiter
from cspgraph.graph.window import budget_rate
from cspgraph.http.inflight import HEADROOM, REQUEST_PRIORITY, InFlightWindow


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def answered(
    window: InFlightWindow, seconds: float, status: int = 200, size: int = 1000
) -> None:
    await window.acquire()
    window.release(seconds, status, size)


async def test_the_window_is_the_budget_rate_times_the_observed_latency() -> None:
    clock = Clock()
    window = InFlightWindow(10_000, rate=lambda: 100.0, clock=clock)
    for _ in range(50):
        await answered(window, 0.5)
    assert window.limit == round(100.0 * 0.5 * HEADROOM)
    slow = InFlightWindow(10_000, rate=lambda: 100.0, clock=clock)
    for _ in range(50):
        await answered(slow, 2.0)
    assert slow.limit == 4 * window.limit  # four times the latency, four times the requests


async def test_without_a_budget_the_window_opens_up_to_its_cap() -> None:
    window = InFlightWindow(300, rate=lambda: None, clock=Clock())
    await answered(window, 0.2)
    assert window.limit == 300


async def test_the_answers_in_flight_stay_within_the_memory_bound() -> None:
    window = InFlightWindow(
        10_000, rate=lambda: None, memory_bytes=1_000_000, connection_bytes=0, clock=Clock()
    )
    for _ in range(200):
        await answered(window, 0.2, size=10_000)
    assert window.limit == 100  # 1 MB / 10 kB answers


async def test_each_request_in_flight_counts_its_connection_beside_its_answer() -> None:
    window = InFlightWindow(
        10_000, rate=lambda: None, memory_bytes=1_000_000, connection_bytes=10_000, clock=Clock()
    )
    for _ in range(200):
        await answered(window, 0.2, size=10_000)
    assert window.limit == 50  # 1 MB / (10 kB answers + 10 kB connections)


async def test_a_429_halves_what_was_in_flight_and_clean_latencies_raise_it_again() -> None:
    clock = Clock()
    window = InFlightWindow(1000, rate=lambda: None, floor=4, start=1000, clock=clock)
    for _ in range(200):
        await window.acquire()
    window.release(0.5, 200, 100)  # the latency is known now: 0.5 s
    window.release(0.5, 429, 100)  # 199 in flight (this one too) when Graph refused
    assert window.limit == 100  # half of 199, rounded up
    window.release(0.5, 429, 100)  # the same overload, within one latency: no second cut
    assert window.limit == 100
    clock.now += 0.6
    window.release(0.5, 200, 100)  # one latency without a 429: a fifth more
    assert window.limit == 120  # 99.5 × 1.2, rounded up
    assert window.throttled == 2


async def test_requests_beyond_the_window_wait_and_the_deepest_chain_goes_first() -> None:
    window = InFlightWindow(2, floor=1, start=2, rate=lambda: None, clock=Clock())
    await window.acquire()
    await window.acquire()
    order: list[int] = []

    async def request(depth: int) -> None:
        REQUEST_PRIORITY.set(depth)
        await window.acquire()
        order.append(depth)

    waiting = [asyncio.create_task(request(d)) for d in (1, 5, 3)]
    await asyncio.sleep(0)
    assert window.waiting == 3 and window.spare() == 0
    window.limit = 2  # (the first answer would resize it; keep it at two)
    for _ in range(3):
        window.release(0.1, None, None)  # no answer: nothing learnt, the slot goes on
        await asyncio.sleep(0)
    await asyncio.gather(*waiting)
    assert order == [5, 3, 1]
    assert window.peak == 2


async def test_the_budget_rate_follows_the_limiters_scale() -> None:
    published = budget_rate(GraphLimiter())
    assert published is not None and published > 1000
    assert budget_rate(GraphLimiter(scale=0.01)) == published * 0.01
    assert budget_rate(NoLimiter()) is None


def test_the_budget_rate_is_read_from_a_shared_redis_limiter_too() -> None:
    limiter = RedisLimiter.__new__(RedisLimiter)  # no connection: only its budgets are read
    limiter.budgets, limiter.scale = GraphLimiter().budgets, 0.5
    assert budget_rate(limiter) == budget_rate(GraphLimiter(scale=0.5))
