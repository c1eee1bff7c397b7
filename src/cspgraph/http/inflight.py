"""How many requests a sender keeps in flight: a window that follows the work, not a knob.

A fleet sync spends its time waiting: Graph answers a page in a fraction of a second, and the
client's CPU is idle meanwhile. What it can get done is set by Little's law, *in flight = rate ×
latency*: to use a rate of ``r`` requests a second that each take ``t`` seconds, ``r·t`` requests
must be in flight. A fixed number (the old 16 customers / 30 connections) is right for one
latency only: at 200 ms it measured 30,000 × 0.2 s / 210 s ≈ 29 requests in flight, exactly the
connection cap, 20× below what Graph's budgets allowed (issue 16).

:class:`InFlightWindow` keeps the number of requests in flight (``limit``) at

    limit = clamp(min(rate × latency × HEADROOM, memory ÷ answer size, ceiling), floor, cap)

* ``rate``: what the budgets allow, in requests a second (a callable the owner supplies; for
  Graph, :func:`cspgraph.graph.inflight.budget_rate` reads it from the limiter's budgets); None
  means no budget is known, and the window opens up to ``cap``.
* ``latency``: the observed seconds from sending a request to having read its answer (an
  exponentially weighted mean), so the window widens by itself when the service is slow.
* ``memory ÷ (answer size + connection)``: answers in flight arrive and are parsed, each over a
  TLS connection of its own; their bytes (observed mean answer size, plus
  :data:`CONNECTION_BYTES` for the connection) times the window stay under ``memory_bytes``, so
  memory stays flat however high the latency makes the window.
* ``ceiling``: on a 429, half the requests that were in flight when it came (at most once per
  observed latency: one overload answers many requests with 429), raised again by a fifth per
  latency without one, and gone once it passes ``cap``. The limiter slows the throttled tenant
  or app itself (:mod:`cspgraph.graph.limits`); the ceiling makes the client as a whole send
  less while Graph refuses, as TCP halves its window on loss and grows it back slowly.
* ``cap``: the caller's upper bound (``cspgraph sync --concurrency`` bounds the customers; the
  requests' cap is the connection pool's size), ``floor``: never fewer than this.

Requests wait for a slot in priority order (higher first, then first come): a fleet sync gives a
stream's later pages a higher priority, so the long chains of dependent requests, which set the
run's end, never queue behind the first pages of small tenants. The priority of the requests a
task sends is :data:`REQUEST_PRIORITY` (a context variable, so the sync sets it per stream without
threading it through every call).

Everything runs on one event loop: no locks, O(log n) per request for the priority queue.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable
from contextvars import ContextVar

# The priority of the requests the current task sends (higher goes first when requests queue).
REQUEST_PRIORITY: ContextVar[int] = ContextVar("cspgraph_request_priority", default=0)

# Little's law gives the mean; jitter and slow answers (a 1 % tail five times slower) need some
# room above it, or the window is short exactly when a few answers are late.
HEADROOM = 1.5
# Weight of a new observation in the running means (about the last 20 answers count).
SMOOTHING = 0.05
# After a 429 the window sends this share of what was in flight; it recovers by RECOVERY per
# observed latency without a 429 (multiplicative decrease, gentle increase: TCP's reasoning).
CUT = 0.5
RECOVERY = 1.2
# Answers in flight at once hold at most this many bytes (parsed, about 3× more): 32 MiB keeps a
# 5,000-customer sync's peak well under 300 MB (docs/benchmarks.md).
MEMORY_BYTES = 32 * 2**20
# What a request in flight holds besides its answer: its TLS connection (the read buffer,
# OpenSSL's state, aiohttp's protocol). Measured at 5,000 customers: peak RSS 404 MB with
# ~1,480 connections open, 340 MB with ~600 (the pool capped at 512): ~75 KB a connection.
CONNECTION_BYTES = 75 * 1024
THROTTLED = 429


class InFlightWindow:
    """The number of requests allowed in flight at once; see the module docstring.

    ``start``: the window before any answer was observed (no latency known yet): 256 is what
    Little's law gives Graph's published app budgets (~4,000 requests/s) at a 64 ms latency,
    below any measured Graph latency, so a fleet's first customers start at once.
    ``clock``: monotonic seconds (tests may pass their own)."""

    def __init__(
        self,
        cap: int = 1024,
        *,
        floor: int = 4,
        start: int = 256,
        rate: Callable[[], float | None] | None = None,
        memory_bytes: int = MEMORY_BYTES,
        connection_bytes: int = CONNECTION_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cap < 1 or floor < 1:
            raise ValueError("cap and floor must be at least 1")
        self.cap = cap
        self.floor = min(floor, cap)
        self.start = max(self.floor, min(start, cap))
        self.rate = rate
        self.memory_bytes = memory_bytes
        self.connection_bytes = connection_bytes
        self.clock = clock
        self.in_flight = 0
        self.peak = 0  # the most requests that were in flight at once
        self.latency: float | None = None  # mean seconds per answer
        self.answer_bytes: float | None = None  # mean bytes per answer
        self.ceiling = math.inf  # set by 429s
        self.throttled = 0  # 429 answers seen
        self.limit = self.start
        self._last_cut = -math.inf
        self._last_raise = clock()
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._changed: asyncio.Event | None = None

    # -- what others read --------------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiting)

    def spare(self, expected: int = 0) -> int:
        """Slots that nobody uses or waits for, after ``expected`` more requests arrive (0 when
        requests queue: starting more work would only make it wait)."""
        if self._waiting:
            return 0
        return max(0, self.limit - self.in_flight - expected)

    def notify(self) -> None:
        """Wake whoever waits in :meth:`changed` (the owner's own reasons: work ended)."""
        if self._changed is not None:
            self._changed.set()

    async def changed(self) -> None:
        """Wait until a slot is given back or the window moves."""
        if self._changed is None:
            self._changed = asyncio.Event()
        self._changed.clear()
        await self._changed.wait()

    # -- the slots ---------------------------------------------------------------------------------
    async def acquire(self) -> None:
        """Wait for a slot (in :data:`REQUEST_PRIORITY` order); give it back with
        :meth:`release`."""
        if not self._waiting and self.in_flight < self.limit:
            self._take()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (-REQUEST_PRIORITY.get(), next(self._order), future)
        heapq.heappush(self._waiting, entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._give_back()  # the slot was handed over as the waiter was cancelled
            else:
                self._waiting.remove(entry)
                heapq.heapify(self._waiting)
            raise

    def release(self, seconds: float, status: int | None = None, nbytes: int | None = None) -> None:
        """Give a slot back: the request took ``seconds`` and was answered ``status`` (None: no
        answer, a broken connection) with ``nbytes`` of body."""
        now = self.clock()
        if status is not None:
            self.latency = _mean(self.latency, seconds)
        if nbytes is not None:
            self.answer_bytes = _mean(self.answer_bytes, float(nbytes))
        if status == THROTTLED:
            self.throttled += 1
            # One overload answers many requests with 429: cut once per latency.
            if now - self._last_cut >= (self.latency or 0.0):
                in_flight = min(self.in_flight, self.limit)
                self.ceiling = max(float(self.floor), in_flight * CUT)
                self._last_cut = self._last_raise = now
        elif self.ceiling < math.inf and now - self._last_raise >= (self.latency or 0.0):
            self.ceiling *= RECOVERY
            self._last_raise = now
            if self.ceiling >= self.cap:
                self.ceiling = math.inf
        self._resize()
        self._give_back()

    # -- inside ------------------------------------------------------------------------------------
    def _take(self) -> None:
        self.in_flight += 1
        if self.in_flight > self.peak:
            self.peak = self.in_flight

    def _give_back(self) -> None:
        self.in_flight -= 1
        waiting = self._waiting
        while waiting and self.in_flight < self.limit:
            _, _, future = heapq.heappop(waiting)
            if future.done():  # cancelled while it waited
                continue
            self._take()
            future.set_result(None)
        if self._changed is not None:
            self._changed.set()

    def _resize(self) -> None:
        latency = self.latency
        if latency is None:
            wanted = float(self.start)
        else:
            rate = self.rate() if self.rate is not None else None
            wanted = float(self.cap) if rate is None else rate * latency * HEADROOM
        if self.answer_bytes:
            per_request = self.answer_bytes + self.connection_bytes
            wanted = min(wanted, self.memory_bytes / per_request)
        wanted = min(wanted, self.ceiling)
        self.limit = max(self.floor, min(self.cap, math.ceil(wanted)))


def _mean(current: float | None, value: float) -> float:
    return value if current is None else current + SMOOTHING * (value - current)
