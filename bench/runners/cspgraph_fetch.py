"""cspgraph's Graph client alone: the sync's request plan, fetched and parsed, nothing stored.

It separates what ``cspgraph sync`` spends on fetching and parsing (comparable with the raw
client) from what it spends on the store. Public API only: ``load_config``, ``TokenProvider``,
``GraphClient.pages`` and the sync's own pull definitions (``cspgraph.fleet.resources``). The
customers come from the job file (no Partner Center listing), as for the other baselines.

After start-up the runner first places every customer and acquires its app-only token
(``route`` + ``get_token``, ``concurrency`` customers at a time, as the sync does before pulling
a customer), then fetches. The raw client gets its tokens pre-fetched, so that first phase's CPU
and wall time are reported on their own as ``token_cpu``/``token_wall``; ``work_cpu`` still
covers everything after start-up, tokens included.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from bench.runners.common import KINDS, Job, Tally, cpu_seconds
from cspgraph.config import load_config
from cspgraph.fleet.resources import MAX_PAGE_SIZE, PULLS
from cspgraph.graph import GraphClient
from cspgraph.identity import TokenProvider

NAMES = {"organization": "organization", "managedDevices": "managedDevices"}


async def run(job: Job, config_path: str, tally: Tally, phases: dict[str, float]) -> dict[str, Any]:
    config = load_config(config_path, required=True)
    async with TokenProvider(config) as provider:
        cloud = provider.cloud
        async with GraphClient(
            provider, graph_url=cloud.graph, ca_bundle=cloud.ca_bundle, throttle_priority="Low"
        ) as client:
            gate = asyncio.Semaphore(job.concurrency)
            ready: dict[str, str] = {}  # customer reference -> tenant GUID, for those with a token

            async def token(customer: dict[str, Any]) -> None:
                async with gate:
                    reference = customer["tenant_id"]
                    try:
                        route = await provider.route(reference)
                        await provider.get_token(route.tenant_id)
                    except Exception as exc:
                        tally.error(f"{reference}: token: {exc!r}")
                    else:
                        ready[reference] = route.tenant_id

            cpu, wall = cpu_seconds(), time.perf_counter()
            await asyncio.gather(*(token(c) for c in job.customers))
            phases["token_cpu"] = round(cpu_seconds() - cpu, 4)
            phases["token_wall"] = round(time.perf_counter() - wall, 4)

            async def pull(tenant: str, p: Any) -> None:
                params, headers = p.first_request(MAX_PAGE_SIZE)
                async for page in client.pages(tenant, p.path, params=params, headers=headers):
                    tally.counts[p.resource] += len(page.items)
                    if p.resource == "groups":
                        for group in page.items:
                            tally.counts["members"] += len(group.get("members@delta", ()))

            async def one(customer: dict[str, Any]) -> None:
                tenant = ready.get(customer["tenant_id"])
                if tenant is None:
                    return  # its token failed: already an error
                async with gate:
                    try:
                        # The baselines' pull (KINDS): the sync's licences are not part of it.
                        await asyncio.gather(
                            *(pull(tenant, p) for p in PULLS if p.resource in KINDS)
                        )
                    except Exception as exc:
                        tally.error(f"{tenant}: {exc!r}")

            await asyncio.gather(*(one(c) for c in job.customers))
            return client.stats.as_dict()


def main() -> None:
    job = Job.load(sys.argv[1])
    tally = Tally()
    tally.start()
    phases: dict[str, float] = {}
    stats = asyncio.run(run(job, sys.argv[2], tally, phases))
    tally.requests = int(stats.get("requests", 0))
    tally.throttled = int(stats.get("throttled", 0))
    tally.emit("cspgraph-fetch", tenants=len(job.customers), graph_stats=stats, **phases)


if __name__ == "__main__":
    main()
