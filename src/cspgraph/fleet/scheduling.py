"""Which customer the fleet sync starts next, and when: longest work first, as the window allows.

A fleet sync ends when its last customer ends. Each customer's time is at least its longest chain
of dependent requests (a delta round's pages follow one another: a 50,000-user tenant at ~200
objects a page is 250 pages in a row), so a large tenant that starts late ends the run alone,
long after the small ones. Two rules keep the long chains off the end of the run:

* **Largest first.** Customers wait in :class:`CustomerQueue`, the largest first, by the size the
  store last knew (:func:`known_sizes`: the objects of its largest resource, memberships counted
  with groups, which is what its longest chain pulls). A customer the store has never synced
  (unknown size) goes before every known one: it may be large, and it is the rare case after the
  first run. On a first run every size is unknown, so customers start in the order they are
  listed; the window is wide enough that every customer of a fleet starts early (5,000 customers
  start within the first quarter of the run, docs/benchmarks.md), and each stream's later pages
  go ahead of other streams' first pages (:data:`~cspgraph.http.inflight.REQUEST_PRIORITY`).
* **As many at once as the window has room for.** The number of customers in flight is not a
  setting: :class:`Admission` starts the next customer while the Graph client's in-flight window
  (:mod:`cspgraph.http.inflight`: budgets × latency, 429s, memory) has slots nobody uses or waits
  for, counting a customer still starting (lease, token) as the streams it will open. When
  requests queue for the window, or while the store writer's backlog is full, no customer
  starts: more would only wait (in memory). ``concurrency`` is an
  upper bound on the customers in flight (``cspgraph sync --concurrency``), not the setting that
  matters. A Graph client without a window (a caller's own) gets the old rule: ``concurrency``
  customers at once.

Regions take turns (each region's app has its own budgets, which a region-after-region order
would leave idle); within a region, the largest first.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import math

from sqlalchemy import func, select

from cspgraph.fleet.customers import CustomerRef
from cspgraph.fleet.schema import OBJECT_TABLES, group_members
from cspgraph.fleet.store import Store
from cspgraph.fleet.store_writer import Backlog
from cspgraph.http.inflight import InFlightWindow

# The resources whose pulls are chains of pages (the others are one or two requests).
CHAINED = ("users", "groups", "devices", "managedDevices")


def known_sizes(store: Store) -> dict[str, int]:
    """Per tenant (lowercase GUID), the objects of its largest chained resource as the store
    holds them (groups count their memberships: they arrive in the same delta pages). Tenants the
    store has no objects of are absent (unknown, not 0)."""
    sizes: collections.Counter[str] = collections.Counter()
    with store.engine.connect() as conn:
        for resource in CHAINED:
            table = OBJECT_TABLES[resource]
            counts: dict[str, int] = {
                str(tenant): int(n)
                for tenant, n in conn.execute(
                    select(table.c.tenant_id, func.count()).group_by(table.c.tenant_id)
                ).all()
            }
            if resource == "groups":
                members = conn.execute(
                    select(group_members.c.tenant_id, func.count()).group_by(
                        group_members.c.tenant_id
                    )
                ).all()
                for tenant, n in members:
                    counts[str(tenant)] = counts.get(str(tenant), 0) + int(n)
            for tenant, n in counts.items():
                key = tenant.lower()
                sizes[key] = max(sizes[key], n)
    return dict(sizes)


def size_key(customer: CustomerRef) -> str:
    """How a customer is looked up in :func:`known_sizes` (and told apart from its twin)."""
    return (customer.tenant_id or customer.reference).strip().lower()


class CustomerQueue:
    """The customers waiting to be synced: regions in turn, within a region the largest first
    (unknown sizes before known ones, in the order they came)."""

    def __init__(self, sizes: dict[str, int] | None = None) -> None:
        self._sizes = sizes or {}
        self._waiting: dict[str | None, list[tuple[float, int, CustomerRef]]] = {}
        self._turns: collections.deque[str | None] = collections.deque()  # regions with some
        self._order = itertools.count()
        self._ready = asyncio.Event()
        self._closed = False

    def put(self, customer: CustomerRef) -> None:
        size = self._sizes.get(size_key(customer))
        rank = -math.inf if size is None else -float(size)
        waiting = self._waiting.setdefault(customer.region, [])
        if not waiting:
            self._turns.append(customer.region)
        heapq.heappush(waiting, (rank, next(self._order), customer))
        self._ready.set()

    def close(self) -> None:
        """No more customers: ``get`` answers None once the waiting ones are handed out."""
        self._closed = True
        self._ready.set()

    async def get(self) -> CustomerRef | None:
        while not self._turns:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        region = self._turns.popleft()
        waiting = self._waiting[region]
        customer = heapq.heappop(waiting)[2]
        if waiting:
            self._turns.append(region)  # its next customer waits for the other regions' turn
        return customer


class Admission:
    """When the next customer may start; see the module docstring.

    ``streams``: the requests a customer opens at once when it starts pulling (its resources).
    """

    def __init__(
        self,
        window: InFlightWindow | None,
        cap: int,
        streams: int,
        backlog: Backlog | None = None,
    ) -> None:
        if cap < 1:
            raise ValueError("concurrency must be at least 1")
        self.window = window
        self.cap = cap
        self.streams = max(1, streams)
        self.active = 0  # customers in flight
        self.starting = 0  # of those, not pulling yet (lease, registration, token)
        self.peak = 0  # the most customers that were in flight at once
        self.backlog = backlog
        self._done = asyncio.Event()

    def _room(self) -> bool:
        if self.active >= self.cap:
            return False
        if self.window is None or self.active == 0:
            return True  # without a window, the cap alone; and never nobody at all
        return self.window.spare(self.starting * self.streams) > 0

    async def enter(self) -> None:
        """Wait until a customer may start, and count it in."""
        while not self._room() or (self.backlog is not None and self.backlog.full):
            if self.backlog is not None and self.backlog.full:
                # The writer is behind: a new customer's first pages would only wait in
                # memory (measured: 686 MB at 5,000 customers on a loaded machine without this).
                await self.backlog.room()
            elif self.window is not None and self.active < self.cap:
                await self.window.changed()
            else:
                self._done.clear()
                await self._done.wait()
        self.active += 1
        self.starting += 1
        self.peak = max(self.peak, self.active)

    def pulling(self) -> None:
        """The customer that was starting now sends its requests through the window."""
        self.starting -= 1

    def leave(self, pulled: bool) -> None:
        """A customer ended (``pulled``: it had called :meth:`pulling`)."""
        self.active -= 1
        if not pulled:
            self.starting -= 1
        self._done.set()
        if self.window is not None:
            self.window.notify()
