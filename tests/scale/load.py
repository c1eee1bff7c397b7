"""One "worker" of the shared-budget test: a process of its own with its own tokens and Graph
client, sending identity reads (1 RU each) round-robin over many tenants as fast as its limiter
lets it, and printing what it saw (JSON on stdout).

    python -m tests.scale.load CONFIG REQUESTS SCALE WINDOWS PART PARTS (shared REDIS NS | own) \
        TENANT...

SCALE multiplies Graph's budgets and WINDOWS their windows, as the emulator's throttling
``scale`` and ``window_scale`` do (the limiter must know the budgets it paces to).

Request i goes to tenant i mod len(TENANT); of REQUESTS in all, this process sends those with
i mod PARTS == PART, so that N processes together send the same sequence one process would, each
tenant sees the same spacing however many processes share the work, and (with a number of
tenants that PARTS divides) each tenant is one process's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from typing import Any

from cspgraph.config import load_config
from cspgraph.distributed.async_limiter import AsyncRedisLimiter
from cspgraph.graph.client import GraphClient
from cspgraph.graph.limits import Budget, GraphBudgets, GraphLimiter, Limiter, RequestCost
from cspgraph.graph.wire import app_of
from cspgraph.identity import TokenProvider


def budgets(window_scale: float) -> GraphBudgets:
    """Graph's published budgets over windows ``window_scale`` times as long."""
    published = GraphBudgets()
    changed: dict[str, Any] = {"identity_window": published.identity_window * window_scale}
    for field in dataclasses.fields(published):
        value = getattr(published, field.name)
        if isinstance(value, Budget):
            changed[field.name] = Budget(value.amount, value.window * window_scale)
    return dataclasses.replace(published, **changed)


async def main(argv: list[str]) -> dict[str, Any]:
    config, requests, scale = load_config(argv[0]), int(argv[1]), float(argv[2])
    published = budgets(float(argv[3]))
    part, parts = int(argv[4]), int(argv[5])
    mode = argv[6]
    rest = argv[7:]
    async with TokenProvider(config) as provider:
        limiter: Limiter
        shared: AsyncRedisLimiter | None = None
        if mode == "shared":
            redis, namespace, tenants = rest[0], rest[1], rest[2:]
            # As a worker books: over redis.asyncio, without blocking its event loop.
            limiter = shared = AsyncRedisLimiter(
                redis, namespace=namespace, scale=scale, budgets=published,
                app_of=app_of(provider),
            )  # fmt: skip
        else:
            tenants = rest
            limiter = GraphLimiter(scale=scale, budgets=published, app_of=app_of(provider))
        scopes: dict[str, int] = {}
        record = limiter.record_throttled

        def counted(
            tenant: str, cost: RequestCost, *, delay: float, throttle_scope: str | None = None
        ) -> None:
            key = (throttle_scope or "none").split("/", 1)[0]
            scopes[key] = scopes.get(key, 0) + 1
            record(tenant, cost, delay=delay, throttle_scope=throttle_scope)

        limiter.record_throttled = counted  # type: ignore[method-assign]
        cloud = provider.cloud
        async with GraphClient(
            provider, graph_url=cloud.graph, ca_bundle=cloud.ca_bundle, limiter=limiter
        ) as client:
            for tenant in tenants:  # tenants placed first: the test is about Graph's budgets
                await provider.route(tenant)
            # Ready; every process of a run starts sending at the same moment, on "go".
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)

            async def one(i: int) -> None:
                tenant = tenants[i % len(tenants)]
                await client.get(tenant, "users", params={"$select": "id", "$top": "1"})

            queue = iter(range(part, requests, parts))

            async def lane() -> None:
                for i in queue:
                    await one(i)

            await asyncio.gather(*(lane() for _ in range(len(tenants))))
            if shared is not None:
                await shared.aclose()
            return {
                "requests": client.stats.requests,
                "throttled": client.stats.throttled,
                **{f"scope:{k}": v for k, v in scopes.items()},
            }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))), flush=True)
