"""One Partner Center window for every worker, in Redis: two event loops on two threads, each
with its own client and its own Redis connection (as two Celery workers have), read a partner's
customers at once. Sharing the namespace's window they get no 429 from the emulator; each pacing
alone (each believing the whole limit is its own) they overrun it. The window's keys expire, and
``drop_namespace`` deletes them with the Graph budgets.

Time is compressed as in tests/client/test_partner_center_pacing.py: 5 requests per 3 s."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import redis

from csp_emulator.server import Emulator
from cspgraph.distributed.partner_center_pacer import RedisPartnerCenterPacers
from cspgraph.http.sender import Pacer
from cspgraph.http.sessions import requests_session
from cspgraph.partner.pacing import PartnerCenterPacer
from tests.client.test_partner_center import client_for, world
from tests.client.test_partner_center_pacing import (
    CUSTOMERS,
    LIMIT,
    MARGIN,
    THROTTLING,
    WINDOW,
    customer_ids,
    read_all,
)
from tests.conftest import MakeEmulator

PARTNER = "partner-tenant-of-this-test"


def two_workers(emu: Emulator, pacer: Callable[[], tuple[Pacer, Callable[[], None]]]) -> int:
    """Two event loops on two threads, each reading half the customers at once through a
    client (and token session) of its own paced by ``pacer()`` (a pacer and what closes it,
    made on that loop); the 429s the emulator answered, together."""
    ids = customer_ids(emu)

    async def worker(part: list[str]) -> int:
        own, close = pacer()
        try:
            with requests_session() as session:
                async with client_for(emu, session, pacer=own) as pc:
                    assert await read_all(pc, part) == part
            return pc.stats.throttled
        finally:
            close()

    with ThreadPoolExecutor(2) as threads:
        halves = [ids[0::2], ids[1::2]]
        return sum(threads.map(lambda part: asyncio.run(worker(part)), halves))


def test_two_workers_sharing_the_window_in_redis_get_no_429_and_leave_keys_that_expire(
    make_emulator: MakeEmulator,
    redis_url: str,
    budget_namespace: Callable[[str], str],
) -> None:
    emu = make_emulator(world(customers=CUSTOMERS, throttling=THROTTLING))
    namespace = budget_namespace("pc-window")
    ttls: list[int] = []
    watch = redis.Redis.from_url(redis_url)

    def shared() -> tuple[Pacer, Callable[[], None]]:
        pacers = RedisPartnerCenterPacers(
            redis_url, namespace=namespace, limit=LIMIT, window=WINDOW, margin=MARGIN
        )

        def close() -> None:
            # The log is held while a booking is in the window (the other worker's may be one
            # window ahead), no longer.
            ttls.append(int(watch.pttl(pacers.keys(PARTNER)[0])))

        return pacers.pacer(PARTNER), close

    try:
        assert two_workers(emu, shared) == 0
    finally:
        watch.close()
    assert len(ttls) == 2 and all(0 < ttl <= 2 * (WINDOW + MARGIN) * 1000 for ttl in ttls)


def test_two_workers_each_pacing_alone_overrun_the_partners_limit(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator(world(customers=CUSTOMERS, throttling=THROTTLING))

    def alone() -> tuple[Pacer, Callable[[], None]]:
        return PartnerCenterPacer(LIMIT, WINDOW, margin=MARGIN), lambda: None

    assert two_workers(emu, alone) > 0


async def test_a_429_seen_by_one_worker_pauses_the_others_until_drop_namespace_clears_it(
    redis_url: str, budget_namespace: Callable[[str], str]
) -> None:
    namespace = budget_namespace("pc-pause")
    now = [1_000.0]
    one, two = (
        RedisPartnerCenterPacers(redis_url, namespace=namespace, limit=100, clock=lambda: now[0])
        for _ in range(2)
    )
    try:
        assert await one.pacer(PARTNER).reserve("", None) == 0.0
        await one.call("throttled", PARTNER, 7.0)  # what .throttled() sends, awaited here
        now[0] += 2.0
        assert await two.pacer(PARTNER).reserve("", None) == 5.0
        now[0] += 5.0
        assert await two.pacer(PARTNER).reserve("", None) == 0.0
        await one.call("throttled", PARTNER, 30.0)
        # The log and the pause, under the Graph budgets' prefix: dropped with them.
        with redis.Redis.from_url(redis_url) as watch:
            held = sorted(k.decode() for k in watch.scan_iter(match=f"{namespace}:limiter:*"))
        assert held == sorted(one.keys(PARTNER))
        assert one.drop() == 2
        assert await two.pacer(PARTNER).reserve("", None) == 0.0  # no pause left
    finally:
        await one.aclose()
        await two.aclose()
