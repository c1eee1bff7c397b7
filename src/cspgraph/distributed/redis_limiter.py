"""One Graph budget for every worker: the limiter's state in Redis, updated atomically.

Graph counts its app-wide budgets (130,000 requests / 10 s, 150,000 identity RU / 20 s) per app
across *all* tenants, so N workers that each pace themselves with their own
:class:`~cspgraph.graph.limits.GraphLimiter` would send up to N times the budget. A
:class:`RedisLimiter` is the same limiter (the same :class:`~cspgraph.graph.limits.Limiter`
interface, the same algorithm and learning) whose state — the buckets, the budgets learnt from
429s and ``x-ms-throttle-*`` headers, what Graph admitted lately — lives in Redis hashes. Each call
is one Lua script (budgets.lua), which Redis runs alone: a reservation by one worker and a 429 seen
by another never interleave, and a 429 seen by one worker pauses the others too.

The in-process :class:`GraphLimiter` stays the default and the reference: the script mirrors it
operation for operation, and tests/scale/test_redis_limiter.py replays random histories through
both and asserts the same waits and budgets, to the last bit.

Time: by default the script reads Redis's own clock (``TIME``), so workers on machines whose
clocks differ still agree on when a bucket refills; a ``clock`` may be given instead (tests).

Tokens are *not* shared: each worker keeps its own MSAL caches (see docs/scale.md).

Cost: one round trip per reservation and one per answer, made synchronously as the in-process
limiter's calls are: each holds the caller's event loop. Workers therefore use
:class:`~cspgraph.distributed.async_limiter.AsyncRedisLimiter` (the same script and keys over
redis.asyncio, pipelined); this one serves tests, tools and anything without an event loop
(measured against each other in docs/scale.md).
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from typing import Any

import redis

from cspgraph.graph.limits import (
    _EPSILON,
    RELEARN_BELOW,
    SLOW_DOWN_AT,
    TENANT_SHARE_OF_APP,
    GraphBudgets,
    RequestCost,
    TenantSize,
)
from cspgraph.graph.scope import Family

__all__ = ["DEFAULT_NAMESPACE", "RedisLimiter", "drop_namespace"]

DEFAULT_NAMESPACE = "cspgraph"
# A tenant or app untouched this long is forgotten (and starts again at the published sizes):
# far longer than any of Graph's windows (at most 300 s), so nothing a live run learnt is lost.
STATE_TTL = 6 * 3600

SCRIPT = importlib.resources.files("cspgraph.distributed").joinpath("budgets.lua").read_text()


class RedisLimiter:
    """:class:`~cspgraph.graph.limits.GraphLimiter`'s budgets shared through Redis.

    ``url``: the Redis server (``redis://host:6379/0``), or ``client``: a redis-py client.
    ``namespace``: limiters with the same namespace share budgets (one per partner, say); the
    other knobs are GraphLimiter's. The first worker to touch a budget creates it with its
    settings; give every worker the same ones.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        scale: float = 1.0,
        budgets: GraphBudgets | None = None,
        initial_size: TenantSize = TenantSize.S,
        utilisation: float = 0.8,
        clock: Callable[[], float] | None = None,
        app_of: Callable[[str], str | None] | None = None,
        ttl: int = STATE_TTL,
    ) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        if not 0.0 < utilisation < 1.0:
            raise ValueError("utilisation must lie strictly between 0 and 1")
        self._own_client = client is None
        if client is None:
            if url is None:
                raise ValueError("RedisLimiter needs a Redis url or client")
            client = redis.Redis.from_url(url)
        self.scale = scale
        self.budgets = b = budgets or GraphBudgets()
        self.initial_size = initial_size
        self.namespace = namespace
        self._redis = client
        self._clock = clock
        self._app_of = app_of
        self._prefix = f"{namespace}:limiter:"  # drop_namespace deletes what starts so
        self._script: Any = client.register_script(SCRIPT)
        s = scale
        self._config: list[str | float] = [
            str(ttl),
            utilisation,
            b.global_app.amount * s,
            b.global_app.window,
            b.identity_app.amount * s,
            b.identity_app.window,
            b.identity_app_writes.amount * s,
            b.identity_app_writes.window,
            b.identity_tenant[TenantSize.S] * s,
            b.identity_tenant[TenantSize.M] * s,
            b.identity_tenant[TenantSize.L] * s,
            b.identity_window,
            b.identity_tenant_writes.amount * s,
            b.identity_tenant_writes.window,
            b.intune_tenant.amount * s,
            b.intune_tenant.window,
            b.intune_tenant_writes.amount * s,
            b.intune_tenant_writes.window,
            initial_size.value,
            SLOW_DOWN_AT,
            TENANT_SHARE_OF_APP,
            RELEARN_BELOW,
            _EPSILON,
        ]
        self._call("init", "", ())  # the default app exists from the start, as in GraphLimiter

    def app_key(self, tenant: str) -> str | None:
        """As :meth:`GraphLimiter.app_key`: the app ``tenant``'s requests count against."""
        return self._app_of(tenant) if self._app_of is not None else None

    def encode(self, op: str, tenant: str, args: Args) -> tuple[list[str], list[str]]:
        """One call of the script: its keys (the app's hash, the tenant's) and arguments, the
        time read now (``''``: Redis's own clock when the script runs)."""
        app = self.app_key(tenant) if tenant else None
        keys = [f"{self._prefix}app:{app or ''}", f"{self._prefix}tenant:{tenant}"]
        now = "" if self._clock is None else repr(float(self._clock()))
        argv = [op, now, *self._config, *args]
        return keys, [_arg(value) for value in argv]

    def _call(self, op: str, tenant: str, args: Args) -> Any:
        keys, argv = self.encode(op, tenant, args)
        return self._script(keys=keys, args=argv)

    # -- the Limiter interface -------------------------------------------------------------------

    def reserve(self, tenant: str, cost: RequestCost) -> float:
        """Book one request's cost in the shared budgets; the seconds to wait before sending."""
        return float(self._call("reserve", tenant, reserve_args(cost)))

    def record_response(
        self,
        tenant: str,
        cost: RequestCost,
        *,
        resource_units: float | None = None,
        limit_percentage: float | None = None,
    ) -> None:
        self._call("response", tenant, response_args(cost, resource_units, limit_percentage))

    def record_throttled(
        self, tenant: str, cost: RequestCost, *, delay: float, throttle_scope: str | None = None
    ) -> None:
        self._call("throttled", tenant, throttled_args(cost, delay, throttle_scope))

    # -- knobs and introspection, as GraphLimiter's ----------------------------------------------

    def set_tenant_size(self, tenant: str, size: TenantSize) -> None:
        self._call("size", tenant, (size.value,))

    def budget(self, tenant: str, family: Family = Family.IDENTITY) -> float:
        return float(self._call("budget", tenant, (family.value,)))

    @property
    def client(self) -> redis.Redis:
        return self._redis

    def close(self) -> None:
        """Close the connections of a client this limiter made (not one it was given)."""
        if self._own_client:
            self._redis.close()

    def forget(self) -> None:
        """Start every budget of this namespace afresh, at the published sizes (a partner whose
        app registrations changed)."""
        self.drop()
        self._call("init", "", ())

    def drop(self) -> int:
        """Delete every budget of this namespace and leave nothing behind (the end of a test or
        a benchmark run); the number of keys deleted."""
        return drop_namespace(self._redis, self.namespace)


def drop_namespace(client: redis.Redis, namespace: str) -> int:
    """Delete what limiters of ``namespace`` keep in Redis; the number of keys deleted."""
    keys = list(client.scan_iter(match=f"{namespace}:limiter:*", count=1000))
    return int(client.delete(*keys)) if keys else 0


# The script's arguments per operation, shared with the asynchronous limiter (async_limiter.py).
Args = tuple[str | float, ...]


def reserve_args(cost: RequestCost) -> Args:
    return (cost.family.value, cost.units, cost.writes)


def response_args(
    cost: RequestCost, resource_units: float | None, limit_percentage: float | None
) -> Args:
    return (
        cost.family.value,
        cost.units,
        cost.writes,
        "" if resource_units is None else resource_units,
        "" if limit_percentage is None else limit_percentage,
    )


def throttled_args(cost: RequestCost, delay: float, throttle_scope: str | None) -> Args:
    app_wide = bool(throttle_scope) and str(throttle_scope).split("/", 1)[0] == "Application"
    return (cost.family.value, cost.units, cost.writes, delay, "1" if app_wide else "0")


def _arg(value: str | float) -> str:
    """Floats as their shortest exact decimal (repr), so Redis sees the same double."""
    return value if isinstance(value, str) else repr(float(value))
