"""Client-side rate limiting: every tenant, and each app as a whole, stays inside Graph's budgets.

Graph throttles per app+tenant per service family and per app across all tenants (wire-facts §3).
Hitting a 429 costs a full Retry-After of idle time for that tenant, so the cheaper path is never to
get there: every request first *reserves* its cost in a few token buckets and waits for as long as
the fullest one says.

Design points, because this sits on the hot path of a benchmark doing thousands of requests/s:

* A reservation is synchronous, lock-free (asyncio is single-threaded) and O(1): buckets refill
  lazily from the clock and may go into debt; a request's wait is the time until its bucket's debt
  is repaid. Concurrent callers therefore queue fairly without waking each other up.
* A bucket for a budget B per window W refills at ``B·u/W`` and holds at most ``B·(1-u)``
  (u = target utilisation): in *any* window of length W it lets through at most B, whether Graph
  counts in fixed or sliding windows.
* The per-tenant identity budget starts at the small-tenant size (3,500 RU / 10 s) and learns:
  a tenant that keeps the bucket busy, reports ``x-ms-resource-unit`` and shows no throttle signal
  for a whole window gets 10 % more (up to the large-tenant 8,000);
  ``x-ms-throttle-limit-percentage`` >= 0.8 cuts the budget a little, a 429 halves it and pauses
  the bucket for the Retry-After. The measured ``x-ms-resource-unit`` also corrects the estimate
  the reservation was made with.
* Every budget is multiplied by ``scale``, as the emulator's throttling is, so a test can make
  throttling easy to reach and the two sides stay comparable.

Where the state lives is behind the :class:`Limiter` interface: :class:`GraphLimiter` keeps it in
this process (one machine); :class:`cspgraph.distributed.redis_limiter.RedisLimiter` keeps the
same state in Redis for several workers and runs this algorithm as a Lua script (budgets.lua),
held equal to this one by a differential test (tests/scale/test_redis_limiter.py). Change the two
together.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from cspgraph.graph.scope import Family, Operation


class TenantSize(StrEnum):
    """Graph's identity & access tenant sizes: < 50 users, 50–500, > 500."""

    S = "S"
    M = "M"
    L = "L"


@dataclass(frozen=True, slots=True)
class Budget:
    amount: float
    window: float  # seconds

    def scaled(self, scale: float) -> Budget:
        return Budget(self.amount * scale, self.window)


@dataclass(frozen=True)
class GraphBudgets:
    """Graph's published limits (wire-facts §3), before ``scale``."""

    identity_tenant: Mapping[TenantSize, float] = field(
        default_factory=lambda: {TenantSize.S: 3500.0, TenantSize.M: 5000.0, TenantSize.L: 8000.0}
    )
    identity_window: float = 10.0
    identity_tenant_writes: Budget = Budget(3000, 150)
    identity_app: Budget = Budget(150_000, 20)
    identity_app_writes: Budget = Budget(70_000, 300)
    intune_tenant: Budget = Budget(2000, 20)
    intune_tenant_writes: Budget = Budget(200, 20)
    global_app: Budget = Budget(130_000, 10)


# Resource-unit cost of the reads Graph prices above 1 RU, by operation shape (wire-facts §3).
_READ_COSTS: dict[str, int] = {
    "users": 2,
    "users/delta": 2,
    "applications": 2,
    "applications/delta": 2,
    "me/memberOf": 2,
    "groups/{id}/members": 3,
    "groups/{id}/transitiveMembers": 5,
    "subscribedSkus": 3,
    "directoryObjects/getByIds": 3,
}


@dataclass(frozen=True, slots=True)
class RequestCost:
    family: Family
    units: int  # resource units (identity) or requests (Intune)
    writes: int  # 1 for a write, else 0


class Limiter(Protocol):
    """What the client needs from a rate limiter; :class:`GraphLimiter` is the real one."""

    # The seconds to wait; awaited where the budget is shared over the network (AsyncRedisLimiter).
    def reserve(self, tenant: str, cost: RequestCost) -> float | Awaitable[float]: ...

    def record_response(
        self,
        tenant: str,
        cost: RequestCost,
        *,
        resource_units: float | None = None,
        limit_percentage: float | None = None,
    ) -> None: ...

    def record_throttled(
        self, tenant: str, cost: RequestCost, *, delay: float, throttle_scope: str | None = None
    ) -> None: ...


class NoLimiter:
    """Sends everything at once and leaves throttling to Graph's 429s (for comparisons, tests)."""

    def reserve(self, tenant: str, cost: RequestCost) -> float:
        return 0.0

    def record_response(
        self,
        tenant: str,
        cost: RequestCost,
        *,
        resource_units: float | None = None,
        limit_percentage: float | None = None,
    ) -> None:
        return None

    def record_throttled(
        self, tenant: str, cost: RequestCost, *, delay: float, throttle_scope: str | None = None
    ) -> None:
        return None


def request_cost(
    operation: Operation, query: Iterable[str] = (), top: int | None = None
) -> RequestCost:
    """What one request costs; ``query`` holds the OData option names it carries ($select, …)."""
    if operation.family is not Family.IDENTITY:
        return RequestCost(operation.family, 1, 1 if operation.is_write else 0)
    if operation.is_write:
        return RequestCost(Family.IDENTITY, 1, 1)
    units = _READ_COSTS.get(operation.shape, 1)
    for name in query:
        if name == "$select":
            units -= 1
        elif name == "$expand":
            units += 1
    if top is not None and top < 20:
        units -= 1
    return RequestCost(Family.IDENTITY, max(units, 1), 0)


class _Bucket:
    """A token bucket that may go into debt; see the module docstring.

    ``level`` is the content at time ``stamp``. After a pause ``stamp`` lies in the future: nothing
    refills until then, and every reservation waits at least until then.
    """

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, budget: Budget, utilisation: float, now: float) -> None:
        self.rate = 0.0
        self.capacity = 0.0
        self.resize(budget, utilisation)
        self.level = self.capacity
        self.stamp = now

    def resize(self, budget: Budget, utilisation: float) -> None:
        steady = budget.amount * utilisation
        self.rate = steady / budget.window
        self.capacity = budget.amount - steady

    def take(self, units: float, now: float) -> float:
        """Reserve ``units``; the seconds to wait before using them."""
        if now > self.stamp:
            level = self.level + (now - self.stamp) * self.rate
            self.level = level if level < self.capacity else self.capacity
            self.stamp = now
        self.level -= units
        wait = self.stamp - now
        if self.level < -_EPSILON:
            wait -= self.level / self.rate
        return wait

    def refund(self, units: float) -> None:
        self.level = min(self.capacity, self.level + units)

    def pause(self, until: float, now: float) -> None:
        self.take(0.0, now)  # bring the level up to date first
        # Nothing saved up before the pause may burst out right after it.
        self.level = min(self.level, 0.0)
        self.stamp = max(self.stamp, until)


# Float dust: 3500 RU at 80 % is not exactly 700 RU of burst in binary.
_EPSILON = 1e-9


class _Adaptive:
    """One tenant's bucket for one family, with the budget it has learnt."""

    __slots__ = (
        "bucket",
        "budget",
        "ceiling",
        "clean_since",
        "floor",
        "last_cut",
        "pressed",
        "seen_units",
        "window",
    )

    def __init__(
        self,
        start: float,
        ceiling: float,
        window: float,
        now: float,
        u: float,
        floor: float | None = None,
    ) -> None:
        self.budget = start
        self.ceiling = ceiling
        self.floor = start * 0.1 if floor is None else floor
        self.window = window
        self.bucket = _Bucket(Budget(start, window), u, now)
        self.pressed = False  # the bucket made somebody wait since the last raise
        self.seen_units = False  # Graph reported x-ms-resource-unit since the last raise
        self.clean_since = now  # no throttle signal since then
        self.last_cut = -window

    def set_budget(self, budget: float, u: float) -> None:
        self.budget = min(max(budget, self.floor), self.ceiling)
        self.bucket.resize(Budget(self.budget, self.window), u)

    def cut(self, factor: float, now: float, u: float) -> None:
        self.clean_since = now
        # Many answers report the same overload; cut once per window, not once per answer.
        if now - self.last_cut >= self.window:
            self.last_cut = now
            self.set_budget(self.budget * factor, u)

    def learn(self, measured: float, now: float, u: float) -> None:
        """Graph refused with ``measured`` admitted in the last window: that is its budget.

        Nothing admitted says nothing about the size (somebody else used it up): no change.
        """
        self.clean_since = now
        if measured >= 1.0 and now - self.last_cut >= self.window:
            self.last_cut = now
            self.set_budget(min(measured, self.budget), u)
            # What was saved up under the old size must not burst out under the new one.
            bucket = self.bucket
            bucket.take(0.0, now)
            bucket.level = min(bucket.level, bucket.capacity)

    def maybe_raise(self, now: float, u: float, needs_units: bool) -> None:
        if not self.pressed or now - self.clean_since < self.window or self.budget >= self.ceiling:
            return
        if needs_units and not self.seen_units:
            return
        self.set_budget(self.budget * 1.1, u)
        self.pressed = False
        self.seen_units = False
        self.clean_since = now


class _Usage:
    """What Graph admitted lately, counted as Graph counts it: a sliding window counter (this
    window's total plus the previous window's, fading). O(1) time, four numbers."""

    __slots__ = ("current", "index", "previous", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self.index = -2
        self.current = 0.0
        self.previous = 0.0

    def _roll(self, now: float) -> float:
        position = now / self.window
        index = int(position // 1)
        if index != self.index:
            self.previous = self.current if index == self.index + 1 else 0.0
            self.current = 0.0
            self.index = index
        return position - index

    def add(self, now: float, amount: float) -> None:
        self._roll(now)
        self.current += amount

    def total(self, now: float) -> float:
        fraction = self._roll(now)
        return self.previous * (1.0 - fraction) + self.current


class _TenantState:
    __slots__ = ("identity", "identity_writes", "intune", "intune_writes", "recent")

    def __init__(self) -> None:
        self.identity: _Adaptive | None = None
        self.identity_writes: _Bucket | None = None
        self.intune: _Adaptive | None = None
        self.intune_writes: _Bucket | None = None
        self.recent: _Usage | None = None  # requests answered, for telling its load from the app's


# Signals weaker than this are ignored; Graph sends the header only above 80 % (wire-facts §3).
SLOW_DOWN_AT = 0.8
# A limit-percentage header is the app's (not the tenant's) when the tenant sent less than this
# share of the app's recent requests: one tenant of many cannot have filled an app-wide budget's
# ... and many tenants' traffic does not show up in one tenant's budget.
TENANT_SHARE_OF_APP = 0.5
# An app budget learnt from a limit-percentage header only when the header shows it far smaller
# than assumed (published sizes, a budget scaled down): near the learnt size the header is the
# normal sign of running close to it and must not ratchet the budget down.
RELEARN_BELOW = 0.5


class _AppState:
    """One application's app-wide budgets and what Graph admitted for it lately."""

    __slots__ = ("glob", "identity", "identity_writes", "requests", "units")

    def __init__(self, budgets: GraphBudgets, scale: float, now: float, u: float) -> None:
        # The app-wide budgets start at the published sizes and learn downwards from the app's
        # 429s (what Graph admitted in the window before it refused is the budget) and from
        # limit-percentage headers; they recover as the tenants' do, never above the published.
        glob, app = budgets.global_app.scaled(scale), budgets.identity_app.scaled(scale)
        self.glob = _Adaptive(glob.amount, glob.amount, glob.window, now, u, 1.0)
        self.identity = _Adaptive(app.amount, app.amount, app.window, now, u, 1.0)
        self.identity_writes = _Bucket(budgets.identity_app_writes.scaled(scale), u, now)
        # What Graph admitted for the app lately: requests (global window), identity RU.
        self.requests = _Usage(glob.window)
        self.units = _Usage(app.window)


class GraphLimiter:
    """Per-tenant budgets, and the app-wide budgets of each application the tenants are reached
    through.

    ``app_of`` names the application (client id) a tenant's requests go out under, or None when
    it cannot tell yet; without it (or for None) every tenant shares one default app. Graph's
    app-wide budgets are per app: a partner with one app per region shares one limiter and still
    gets each app paced, and learnt, on its own.
    """

    def __init__(
        self,
        *,
        scale: float = 1.0,
        budgets: GraphBudgets | None = None,
        initial_size: TenantSize = TenantSize.S,
        utilisation: float = 0.8,
        clock: Callable[[], float] = time.monotonic,
        app_of: Callable[[str], str | None] | None = None,
    ) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        if not 0.0 < utilisation < 1.0:
            raise ValueError("utilisation must lie strictly between 0 and 1")
        self.scale = scale
        self.budgets = budgets or GraphBudgets()
        self.initial_size = initial_size
        self._u = utilisation
        self._clock = clock
        self._app_of = app_of
        self._default = _AppState(self.budgets, scale, clock(), utilisation)
        self._apps: dict[str, _AppState] = {}
        self._app_by_tenant: dict[str, _AppState] = {}
        self._tenants: dict[str, _TenantState] = {}
        self._sizes: dict[str, TenantSize] = {}

    def app_key(self, tenant: str) -> str | None:
        """The application whose app-wide budgets ``tenant``'s requests count against (its client
        id), or None for the default one (a single app, or a tenant not routed yet)."""
        return self._app_of(tenant) if self._app_of is not None else None

    def _app(self, tenant: str) -> _AppState:
        """The app-wide state ``tenant``'s requests count against (O(1) once known)."""
        app = self._app_by_tenant.get(tenant)
        if app is not None:
            return app
        key = self.app_key(tenant)
        if key is None:
            return self._default  # not known yet: asked again next time
        app = self._apps.get(key)
        if app is None:
            app = self._apps[key] = _AppState(self.budgets, self.scale, self._clock(), self._u)
        self._app_by_tenant[tenant] = app
        return app

    # -- the hot path ---------------------------------------------------------------------------

    def reserve(self, tenant: str, cost: RequestCost) -> float:
        """Book one request's cost; returns the seconds to wait before sending it."""
        now = self._clock()
        app = self._app(tenant)
        wait = app.glob.bucket.take(1, now)
        if wait > 0.0:
            app.glob.pressed = True
        family = cost.family
        if family is Family.OTHER:
            return wait
        state = self._tenants.get(tenant)
        if state is None:
            state = self._tenants[tenant] = _TenantState()
        if family is Family.IDENTITY:
            adaptive = state.identity or self._new_identity(tenant, state, now)
            w = adaptive.bucket.take(cost.units, now)
            if w > 0.0:
                adaptive.pressed = True
            a = app.identity.bucket.take(cost.units, now)
            if a > 0.0:
                app.identity.pressed = True
            wait = max(wait, w, a)
            if cost.writes:
                writes = state.identity_writes or self._new_identity_writes(state, now)
                wait = max(wait, writes.take(1, now), app.identity_writes.take(1, now))
        else:
            adaptive = state.intune or self._new_intune(state, now)
            w = adaptive.bucket.take(cost.units, now)
            if w > 0.0:
                adaptive.pressed = True
            wait = max(wait, w)
            if cost.writes:
                writes = state.intune_writes or self._new_intune_writes(state, now)
                wait = max(wait, writes.take(1, now))
        return wait

    def record_response(
        self,
        tenant: str,
        cost: RequestCost,
        *,
        resource_units: float | None = None,
        limit_percentage: float | None = None,
    ) -> None:
        """Learn from a successful answer's ``x-ms-resource-unit`` / limit-percentage headers.

        The limit-percentage header does not say which budget is filling. It is the tenant's
        when the tenant sent a fair share of the app's recent requests, else the app's.
        """
        now = self._clock()
        family = cost.family
        identity = family is Family.IDENTITY
        app = self._app(tenant)
        app.requests.add(now, 1.0)
        if identity:
            units = cost.units if resource_units is None else resource_units
            app.units.add(now, units)
            if resource_units is not None:
                app.identity.seen_units = True
        state = self._tenants.get(tenant)
        recent = 0.0
        if state is not None:
            if state.recent is None:
                state.recent = _Usage(self.budgets.global_app.window)
            state.recent.add(now, 1.0)
            recent = state.recent.total(now)
        pressure = limit_percentage is not None and limit_percentage >= SLOW_DOWN_AT
        if pressure and recent < TENANT_SHARE_OF_APP * app.requests.total(now):
            assert limit_percentage is not None
            self._app_pressure(app, now, limit_percentage, identity)
            return
        if not pressure:
            app.glob.maybe_raise(now, self._u, needs_units=False)
            if identity:
                app.identity.maybe_raise(now, self._u, needs_units=True)
        if state is None or family is Family.OTHER:
            return
        adaptive = state.identity if identity else state.intune
        if adaptive is None:
            return
        if resource_units is not None:
            adaptive.seen_units = True
            # The reservation used an estimate; settle the difference with the measured cost.
            adaptive.bucket.refund(cost.units - resource_units)
        if pressure:
            assert limit_percentage is not None
            adaptive.cut(0.9 if limit_percentage < 1.0 else 0.7, now, self._u)
        else:
            adaptive.maybe_raise(now, self._u, needs_units=identity)

    def _app_pressure(self, app: _AppState, now: float, percentage: float, identity: bool) -> None:
        """An app-wide budget is filling: learn its size if it is far below what is assumed."""
        pairs = [(app.glob, app.requests.total(now))]
        if identity:
            pairs.append((app.identity, app.units.total(now)))
        # The header gives the fullest budget's share and does not say which one that is. The
        # fullest is most likely the one fullest against what is assumed: only it learns (or
        # holds); the other must neither shrink nor stop recovering on its account.
        adaptive, used = max(pairs, key=lambda pair: pair[1] / pair[0].budget)
        estimate = used / percentage
        if estimate < RELEARN_BELOW * adaptive.budget:
            adaptive.learn(estimate, now, self._u)
        else:
            adaptive.clean_since = now  # close to the budget: no raise this window

    def record_throttled(
        self, tenant: str, cost: RequestCost, *, delay: float, throttle_scope: str | None = None
    ) -> None:
        """A 429: pause whatever Graph says was exceeded for ``delay`` seconds and slow down."""
        now = self._clock()
        until = now + delay
        if throttle_scope and throttle_scope.split("/", 1)[0] == "Application":
            # The app as a whole is over its budget: every tenant has to wait, and what Graph
            # admitted in the window before refusing is the budget's size (Graph does not say
            # which app-wide budget it was: both learn, the one that was not binding recovers).
            app = self._app(tenant)
            app.glob.learn(app.requests.total(now), now, self._u)
            app.glob.bucket.pause(until, now)
            if cost.family is Family.IDENTITY:
                app.identity.learn(app.units.total(now), now, self._u)
                app.identity.bucket.pause(until, now)
            return
        if cost.family is Family.OTHER:
            return  # no per-tenant budget to slow down; the request itself waits
        state = self._tenants.get(tenant)
        if state is None:
            state = self._tenants[tenant] = _TenantState()
        if cost.family is Family.IDENTITY:
            adaptive = state.identity or self._new_identity(tenant, state, now)
        else:
            adaptive = state.intune or self._new_intune(state, now)
        adaptive.cut(0.5, now, self._u)
        adaptive.bucket.pause(until, now)

    # -- knobs and introspection ---------------------------------------------------------------

    def set_tenant_size(self, tenant: str, size: TenantSize) -> None:
        """Seed a tenant's identity budget when its user count is known (e.g. from $count)."""
        self._sizes[tenant] = size
        state = self._tenants.get(tenant)
        if state is not None and state.identity is not None:
            state.identity.set_budget(self._identity_budget(size), self._u)

    def budget(self, tenant: str, family: Family = Family.IDENTITY) -> float:
        """The budget per window currently applied to ``tenant`` for ``family`` (scaled)."""
        state = self._tenants.get(tenant)
        adaptive = None
        if state is not None:
            adaptive = state.identity if family is Family.IDENTITY else state.intune
        if adaptive is not None:
            return adaptive.budget
        if family is Family.IDENTITY:
            return self._identity_budget(self._sizes.get(tenant, self.initial_size))
        return self.budgets.intune_tenant.amount * self.scale

    # -- lazily created per-tenant buckets -------------------------------------------------------

    def _identity_budget(self, size: TenantSize) -> float:
        return self.budgets.identity_tenant[size] * self.scale

    def _new_identity(self, tenant: str, state: _TenantState, now: float) -> _Adaptive:
        start = self._identity_budget(self._sizes.get(tenant, self.initial_size))
        ceiling = self._identity_budget(TenantSize.L)
        state.identity = _Adaptive(start, ceiling, self.budgets.identity_window, now, self._u)
        return state.identity

    def _new_identity_writes(self, state: _TenantState, now: float) -> _Bucket:
        budget = self.budgets.identity_tenant_writes.scaled(self.scale)
        state.identity_writes = _Bucket(budget, self._u, now)
        return state.identity_writes

    def _new_intune(self, state: _TenantState, now: float) -> _Adaptive:
        budget = self.budgets.intune_tenant.scaled(self.scale)
        # Intune publishes one fixed budget: learn downwards on signals, recover back up to it.
        state.intune = _Adaptive(budget.amount, budget.amount, budget.window, now, self._u)
        return state.intune

    def _new_intune_writes(self, state: _TenantState, now: float) -> _Bucket:
        budget = self.budgets.intune_tenant_writes.scaled(self.scale)
        state.intune_writes = _Bucket(budget, self._u, now)
        return state.intune_writes
