"""Concurrent asks for a new token of one key share one refresh.

A token keeps the claims it was born with, so after an authorization error only a new token
helps (the CSP rule: a new token, never the old one). But when fifty requests of one tenant fail on
the same token at once, one new token serves them all, and a request that failed on a token
already replaced must not evict the replacement. So a caller remembers the *generation* of the
token it used (:meth:`FreshTokens.generation` when it got it) and replaces a refused one through
:meth:`FreshTokens.refresh` with that generation: if a newer token has come since, it is told to
use that one (None); otherwise it joins the one refresh in flight for the key, or starts it.

Shared by the sender (per tenant a client calls) and the app-only token provider (per app and
tenant, across every client using it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class _Flight:
    seen: int  # the generation the refresh replaces
    loop: asyncio.AbstractEventLoop
    task: asyncio.Future[str]


class FreshTokens(Generic[K]):
    """Per key: how many new tokens there have been, and at most one refresh in flight."""

    def __init__(self) -> None:
        self._generations: dict[K, int] = {}
        self._flights: dict[K, _Flight] = {}

    def generation(self, key: K) -> int:
        """The generation of ``key``'s current token (0 before any refresh)."""
        return self._generations.get(key, 0)

    def advance(self, key: K) -> int:
        """Count a new token for ``key`` and return its generation. Worker threads may call it
        for keys whose acquisitions they serialise (a plain dict update, atomic under the GIL)."""
        generation = self._generations.get(key, 0) + 1
        self._generations[key] = generation
        return generation

    async def refresh(self, key: K, seen: int, fetch: Callable[[], Awaitable[str]]) -> str | None:
        """A new token for ``key`` replacing the one of generation ``seen``, from the refresh in
        flight or from ``fetch()`` (which must :meth:`advance` the key when it gets one); None
        when a newer token than ``seen`` exists already: use that one."""
        loop = asyncio.get_running_loop()
        while True:
            if self._generations.get(key, 0) != seen:
                return None
            flight = self._flights.get(key)
            if flight is None or flight.loop is not loop or flight.task.done():
                flight = self._start(key, seen, loop, fetch)
            elif flight.seen < seen:
                # That refresh replaces an older token than the one this caller saw fail: its
                # answer might be this very token. Let it end, then look again.
                with contextlib.suppress(Exception):
                    await asyncio.shield(flight.task)
                continue
            return await asyncio.shield(flight.task)

    def _start(
        self,
        key: K,
        seen: int,
        loop: asyncio.AbstractEventLoop,
        fetch: Callable[[], Awaitable[str]],
    ) -> _Flight:
        flight = _Flight(seen, loop, asyncio.ensure_future(fetch()))
        self._flights[key] = flight

        def landed(task: asyncio.Future[str]) -> None:
            if self._flights.get(key) is flight:
                del self._flights[key]
            if not task.cancelled():
                task.exception()  # retrieved: every waiter may have gone

        flight.task.add_done_callback(landed)
        return flight
