"""The shared Graph budget without stalling the worker: :class:`AsyncRedisLimiter`.

:class:`~cspgraph.distributed.redis_limiter.RedisLimiter` calls Redis synchronously, as the
in-process limiter computes: every reservation and every answer holds the worker's event loop for
a round trip, so on a loaded host the round trips, not Graph, bound a worker (docs/scale.md,
"Measured here"). This limiter runs the same script (budgets.lua) with the same arguments over
redis.asyncio, and sends what accumulates while one round trip is under way as the next
pipeline:

* a reservation returns an awaitable of the seconds to wait (the sender awaits it: the loop
  serves the worker's other requests meanwhile);
* an answer, a 429 or a tenant size is queued and not waited for (nothing depends on its result);
* one pipeline at a time, in the order the calls were made: this worker's answers reach Redis
  before its next reservations, as with the synchronous limiter, and under load one round trip
  carries many calls (``calls`` / ``round_trips``).

The state, its keys and the algorithm are :class:`RedisLimiter`'s (it is used here to encode
each call, so both limiters share budgets and can run side by side); tests/scale checks this one
against the in-process limiter as the synchronous one is checked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio
from redis.exceptions import NoScriptError

from cspgraph.distributed.redis_limiter import (
    DEFAULT_NAMESPACE,
    SCRIPT,
    STATE_TTL,
    Args,
    RedisLimiter,
    drop_namespace,
    reserve_args,
    response_args,
    throttled_args,
)
from cspgraph.graph.limits import GraphBudgets, RequestCost, TenantSize
from cspgraph.graph.scope import Family

__all__ = ["AsyncRedisLimiter"]

log = logging.getLogger(__name__)

# (keys, arguments, the future of its result or None for a call nobody waits on)
_Call = tuple[list[str], list[str], "asyncio.Future[str] | None"]


class AsyncRedisLimiter:
    """:class:`RedisLimiter`'s budgets, reached without blocking the event loop (see the module
    docstring). Use it from one event loop; :meth:`aclose` when done."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        scale: float = 1.0,
        budgets: GraphBudgets | None = None,
        initial_size: TenantSize = TenantSize.S,
        utilisation: float = 0.8,
        clock: Callable[[], float] | None = None,
        app_of: Callable[[str], str | None] | None = None,
        ttl: int = STATE_TTL,
    ) -> None:
        # The synchronous limiter encodes every call (one definition of keys and arguments) and
        # serves the rare blocking knobs (budget, drop); it creates the default app now.
        self.shared = RedisLimiter(
            url, namespace=namespace, scale=scale, budgets=budgets, initial_size=initial_size,
            utilisation=utilisation, clock=clock, app_of=app_of, ttl=ttl,
        )  # fmt: skip
        self.namespace = namespace
        self._redis: Any = redis.asyncio.Redis.from_url(url)
        self._sha: str | None = None  # the script, once loaded (SCRIPT LOAD, then EVALSHA)
        self._queued: list[_Call] = []
        self._sender: asyncio.Task[None] | None = None
        self.calls = 0  # script calls sent
        self.round_trips = 0  # pipelines sent

    # What the sync's in-flight window reads of any limiter (cspgraph.graph.window.budget_rate).
    @property
    def budgets(self) -> GraphBudgets:
        return self.shared.budgets

    @property
    def scale(self) -> float:
        return self.shared.scale

    def app_key(self, tenant: str) -> str | None:
        return self.shared.app_key(tenant)

    # -- the Limiter interface (a reservation is awaited) ----------------------------------------

    def reserve(self, tenant: str, cost: RequestCost) -> asyncio.Future[float]:
        """Book one request's cost in the shared budgets; awaits the seconds to wait."""
        booked = self._queue("reserve", tenant, reserve_args(cost), answer=True)
        assert booked is not None
        wait: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        booked.add_done_callback(lambda done: _settle(wait, done))
        return wait

    def record_response(
        self,
        tenant: str,
        cost: RequestCost,
        *,
        resource_units: float | None = None,
        limit_percentage: float | None = None,
    ) -> None:
        self._queue("response", tenant, response_args(cost, resource_units, limit_percentage))

    def record_throttled(
        self, tenant: str, cost: RequestCost, *, delay: float, throttle_scope: str | None = None
    ) -> None:
        self._queue("throttled", tenant, throttled_args(cost, delay, throttle_scope))

    def set_tenant_size(self, tenant: str, size: TenantSize) -> None:
        self._queue("size", tenant, (size.value,))

    # -- introspection and the end ---------------------------------------------------------------

    async def flush(self) -> None:
        """Return once every call made so far has run in Redis."""
        while self._queued or self._sender is not None:
            if self._sender is not None:
                await asyncio.shield(self._sender)
            elif self._queued:
                self._start()

    async def budget(self, tenant: str, family: Family = Family.IDENTITY) -> float:
        """As :meth:`RedisLimiter.budget`, after every call made so far."""
        await self.flush()
        return await asyncio.to_thread(self.shared.budget, tenant, family)

    async def aclose(self) -> None:
        await self.flush()
        await self._redis.aclose()
        self.shared.close()

    def drop(self) -> int:
        """Delete every budget of this namespace (blocking; the end of a test or bench)."""
        return drop_namespace(self.shared.client, self.namespace)

    # -- sending ---------------------------------------------------------------------------------

    def _queue(
        self, op: str, tenant: str, args: Args, *, answer: bool = False
    ) -> asyncio.Future[str] | None:
        keys, argv = self.shared.encode(op, tenant, args)
        future: asyncio.Future[str] | None = None
        if answer:
            future = asyncio.get_running_loop().create_future()
        self._queued.append((keys, argv, future))
        if self._sender is None:
            self._start()
        return future

    def _start(self) -> None:
        self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        """Send what is queued, one pipeline at a time, until nothing is."""
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                try:
                    results = await self._pipeline(batch)
                except Exception as exc:  # Redis unreachable, a script error: fail the waiters
                    log.warning("the shared Graph budget could not be reached: %s", exc)
                    for _, _, future in batch:
                        if future is not None and not future.done():
                            future.set_exception(exc)
                    continue
                for (_, _, future), result in zip(batch, results, strict=True):
                    if future is None or future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._sender = None

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        """The batch's results in order. EVALSHA of the script loaded once: redis-py's script
        objects in a pipeline would ask SCRIPT EXISTS on every pipeline, a round trip more."""
        if self._sha is None:
            self._sha = str(await self._redis.script_load(SCRIPT))
        results = await self._evalsha(batch)
        if any(isinstance(r, NoScriptError) for r in results):
            # Redis lost its scripts (a restart): none of these calls ran past the first that
            # failed; load the script again and send those again, in order.
            self._sha = str(await self._redis.script_load(SCRIPT))
            first = next(i for i, r in enumerate(results) if isinstance(r, NoScriptError))
            results[first:] = await self._evalsha(batch[first:])
        return results

    async def _evalsha(self, batch: list[_Call]) -> list[Any]:
        self.calls += len(batch)
        self.round_trips += 1
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, argv, _ in batch:
                pipe.evalsha(self._sha, len(keys), *keys, *argv)
            return list(await pipe.execute(raise_on_error=False))


def _settle(wait: asyncio.Future[float], booked: asyncio.Future[str]) -> None:
    if wait.done():
        return
    if booked.cancelled():
        wait.cancel()
    elif (error := booked.exception()) is not None:
        wait.set_exception(error)
    else:
        wait.set_result(float(booked.result()))
