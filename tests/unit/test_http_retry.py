"""The one retry policy and the one shared fresh-token refresh of cspgraph.http."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from cspgraph.http.errors import BadRequestError, TransientError
from cspgraph.http.fresh import FreshTokens
from cspgraph.http.retry import (
    RetryPolicy,
    parse_retry_after,
    retry_transient,
    retry_transient_sync,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2.128", 2.128),  # Graph's decimal seconds
        (" 7 ", 7.0),  # Partner Center's whole seconds
        ("-3", 0.0),
        ("99999", 600.0),  # capped
        ("nan", None),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_reads_decimal_seconds_and_is_capped(
    value: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(value, cap=600.0) == seconds


def test_retry_after_reads_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    seconds = parse_retry_after(when)
    assert seconds is not None and 100.0 < seconds <= 120.0
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=120), usegmt=True)
    assert parse_retry_after(past) == 0.0


def test_backoff_is_full_jitter_under_a_cap_unless_the_service_said_when() -> None:
    policy = RetryPolicy(max_retries=8, backoff_base=0.5, backoff_cap=4.0, max_retry_after=60.0)
    rng = random.Random(7)
    delays = [policy.delay(attempt, None, rng) for attempt in range(8)]
    for attempt, delay in enumerate(delays):
        assert 0.0 <= delay <= min(4.0, 0.5 * 2**attempt)
    assert len(set(delays)) == 8
    assert policy.delay(5, "1.5", rng) == 1.5
    assert policy.delay(0, "3600", rng) == 60.0
    assert 0.0 <= policy.delay(0, "garbage", rng) <= 0.5  # unreadable: backoff, not a crash


class Source:
    """Hands out token-<n>; each fetch takes a turn of the loop, as a real one would."""

    def __init__(self, fresh: FreshTokens[str]) -> None:
        self.fresh = fresh
        self.fetches = 0

    async def fetch(self) -> str:
        self.fetches += 1
        await asyncio.sleep(0)
        self.fresh.advance("t")
        return f"token-{self.fetches}"


async def test_concurrent_fresh_asks_that_saw_one_token_share_one_refresh() -> None:
    fresh: FreshTokens[str] = FreshTokens()
    source = Source(fresh)
    seen = fresh.generation("t")
    tokens = await asyncio.gather(*(fresh.refresh("t", seen, source.fetch) for _ in range(20)))
    assert tokens == ["token-1"] * 20
    assert source.fetches == 1 and fresh.generation("t") == seen + 1


async def test_an_ask_that_failed_on_a_replaced_token_uses_the_replacement() -> None:
    fresh: FreshTokens[str] = FreshTokens()
    source = Source(fresh)
    old = fresh.generation("t")
    assert await fresh.refresh("t", old, source.fetch) == "token-1"
    # A request that got its token before that refresh failed only now: no second eviction.
    assert await fresh.refresh("t", old, source.fetch) is None
    assert source.fetches == 1
    # One that failed on the new token does get another.
    assert await fresh.refresh("t", fresh.generation("t"), source.fetch) == "token-2"


async def test_a_failed_refresh_fails_every_waiter_and_the_next_ask_tries_again() -> None:
    fresh: FreshTokens[str] = FreshTokens()
    calls = 0

    async def broken() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise RuntimeError("token endpoint down")

    results = await asyncio.gather(
        *(fresh.refresh("t", 0, broken) for _ in range(5)), return_exceptions=True
    )
    assert calls == 1 and all(isinstance(r, RuntimeError) for r in results)
    source = Source(fresh)
    assert await fresh.refresh("t", 0, source.fetch) == "token-1"


async def test_a_refresh_of_an_older_token_is_not_taken_for_a_newer_one() -> None:
    fresh: FreshTokens[str] = FreshTokens()
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        fresh.advance("t")
        return "from-the-slow-refresh"

    first = asyncio.ensure_future(fresh.refresh("t", 0, slow))
    await asyncio.sleep(0)
    fresh.advance("t")  # meanwhile a new token came by another way (generation 1) ...
    second = asyncio.ensure_future(fresh.refresh("t", 1, slow))  # ... and failed too
    await asyncio.sleep(0)
    release.set()
    assert await first == "from-the-slow-refresh"
    # The slow refresh replaced generation 0; it ended after generation 1 came, so the second
    # ask is told to use the newest token rather than starting a third.
    assert await second is None
    assert fresh.generation("t") == 2


# -- the policy for requests made through other libraries (tokens, discovery) ----------------------


class Flaky:
    """Fails with the given errors in turn, then answers "done"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_a_transient_failure_is_retried_after_its_retry_after_or_backoff() -> None:
    waits: list[float] = []
    policy = RetryPolicy(max_retries=3, backoff_base=0.5, backoff_cap=4.0)
    flaky = Flaky(TransientError("429", retry_after="1.25"), TransientError("503"))
    assert retry_transient_sync(flaky, policy, sleep=waits.append) == "done"
    assert flaky.calls == 3
    assert waits[0] == 1.25  # the service's decimal Retry-After
    assert 0.0 <= waits[1] <= 1.0  # backoff for retry number 1: [0, 0.5 * 2]


def test_the_budget_ends_the_retries_and_other_errors_are_raised_at_once() -> None:
    waits: list[float] = []
    policy = RetryPolicy(max_retries=2, backoff_base=0.01)
    lasting = Flaky(*(TransientError(f"503 #{n}") for n in range(5)))
    with pytest.raises(TransientError, match="503 #2"):
        retry_transient_sync(lasting, policy, sleep=waits.append)
    assert lasting.calls == 3 and len(waits) == 2
    refused = Flaky(BadRequestError("invalid_grant"), TransientError("never reached"))
    with pytest.raises(BadRequestError):
        retry_transient_sync(refused, policy, sleep=waits.append)
    assert refused.calls == 1


async def test_the_async_form_waits_on_the_loop_and_reports_each_retry() -> None:
    waits: list[float] = []
    told: list[tuple[str, float]] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    flaky = Flaky(TransientError("a", retry_after="0.5"))

    async def call() -> str:
        return flaky()

    result = await retry_transient(
        call, RetryPolicy(), sleep=sleep, on_retry=lambda e, d: told.append((str(e), d))
    )
    assert result == "done" and waits == [0.5] and told == [("a", 0.5)]
