"""One Partner Center window for every worker: the pacer's log in Redis, updated atomically.

Partner Center counts 500 customer requests a minute per partner tenant, whoever sends them: N
workers that each pace themselves with their own
:class:`~cspgraph.partner.pacing.PartnerCenterPacer` would send up to N times that. A
:class:`RedisPartnerCenterPacer` is the same sliding-window log (the same limit, window, margin
and pause after a 429) kept in Redis: a sorted set of booked send times per partner tenant and a
pause key beside it, in the run's budget namespace, both expiring once nothing in them matters.
Each reservation and each 429 is one Lua script (partner_center_window.lua), which Redis runs
alone: two workers never book the same slot, and a 429 seen by one pauses all of them.

Reached over redis.asyncio: a reservation is awaited (the worker's loop serves its other
customers meanwhile); a 429 is sent without waiting for it. Partner Center's rate is at most
about eight requests a second, so one round trip per request costs nothing worth pipelining.

Time: Redis's own clock (``TIME``) unless a ``clock`` is given (tests), so workers on machines
whose clocks differ agree on the window.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio

from cspgraph.distributed.redis_limiter import DEFAULT_NAMESPACE, drop_namespace
from cspgraph.partner.pacing import LIMIT, MARGIN, WINDOW, span

__all__ = ["RedisPartnerCenterPacer", "RedisPartnerCenterPacers"]

log = logging.getLogger(__name__)

SCRIPT = (
    importlib.resources.files("cspgraph.distributed")
    .joinpath("partner_center_window.lua")
    .read_text()
)


class RedisPartnerCenterPacers:
    """The Partner Center pacers of one budget namespace, one per partner tenant, over one
    Redis connection pool. Use them from one event loop; :meth:`aclose` when done."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        limit: int = LIMIT,
        window: float = WINDOW,
        margin: float = MARGIN,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.limit = limit
        self.span = span(limit, window, margin)
        self.clock = clock
        self._redis: Any = redis.asyncio.Redis.from_url(url)
        self.script: Any = self._redis.register_script(SCRIPT)
        self._pending: set[asyncio.Task[Any]] = set()

    def pacer(self, partner_tenant: str) -> RedisPartnerCenterPacer:
        """``partner_tenant``'s pacer (a :data:`~cspgraph.partner.pacing.PacerFactory`)."""
        return RedisPartnerCenterPacer(self, partner_tenant)

    def keys(self, partner_tenant: str) -> list[str]:
        """The log and the pause of ``partner_tenant``: under the namespace's ``limiter:``
        prefix, so :func:`~cspgraph.distributed.redis_limiter.drop_namespace` deletes them with
        the Graph budgets."""
        prefix = f"{self.namespace}:limiter:partner_center:{partner_tenant}"
        return [f"{prefix}:log", f"{prefix}:pause"]

    async def call(self, op: str, partner_tenant: str, *args: str | float) -> Any:
        now = "" if self.clock is None else repr(float(self.clock()))
        argv = [op, now, str(self.limit), repr(float(self.span)), *map(str, args)]
        return await self.script(keys=self.keys(partner_tenant), args=argv)

    def send_later(self, op: str, partner_tenant: str, *args: str | float) -> None:
        """A call nobody waits for (a 429's pause): sent now, its failure only logged."""
        task = asyncio.get_running_loop().create_task(self.call(op, partner_tenant, *args))
        self._pending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("the shared Partner Center window could not be reached: %s", error)

    async def aclose(self) -> None:
        """Send what is still pending, then close the connections."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self._redis.aclose()

    def drop(self) -> int:
        """Delete everything of this namespace (blocking; the end of a test or bench)."""
        client = redis.Redis.from_url(self.url)
        try:
            return drop_namespace(client, self.namespace)
        finally:
            client.close()


class RedisPartnerCenterPacer:
    """One partner tenant's Partner Center window in Redis; the sender's
    :class:`~cspgraph.http.sender.Pacer` (the key and cost are ignored, as in-process)."""

    def __init__(self, pacers: RedisPartnerCenterPacers, partner_tenant: str) -> None:
        self.pacers = pacers
        self.partner_tenant = partner_tenant

    async def reserve(self, key: str, cost: Any) -> float:
        """Book the next free slot in the shared log; the seconds to wait before sending."""
        booking = uuid.uuid4().hex  # members are unique; the score is the send time
        return float(await self.pacers.call("reserve", self.partner_tenant, booking))

    def throttled(self, key: str, cost: Any, delay: float, headers: Mapping[str, str]) -> None:
        """A 429: every worker's later reservations wait until ``delay`` has passed."""
        self.pacers.send_later("throttled", self.partner_tenant, repr(float(delay)))

    def answered(self, key: str, cost: Any, headers: Mapping[str, str]) -> None:
        """Nothing to learn from an answer (see the in-process pacer)."""
