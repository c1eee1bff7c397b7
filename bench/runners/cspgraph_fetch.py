"""cspgraph's Graph client alone: the sync's request plan, fetched and parsed, nothing stored.

It separates what ``cspgraph sync`` spends on fetching and parsing (comparable with the raw
client) from what it spends on the store. Public API only: ``load_config``, ``TokenProvider``,
``GraphClient.pages`` and the sync's own pull definitions (``cspgraph.fleet.resources``). The
customers come from the job file (no Partner Center listing), as for the other baselines.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from bench.runners.common import Job, Tally
from cspgraph.config import load_config
from cspgraph.fleet.resources import MAX_PAGE_SIZE, PULLS
from cspgraph.graph import GraphClient
from cspgraph.identity import TokenProvider

NAMES = {"organization": "organization", "managedDevices": "managedDevices"}


async def run(job: Job, config_path: str, tally: Tally) -> dict[str, Any]:
    config = load_config(config_path, required=True)
    async with TokenProvider(config) as provider:
        cloud = provider.cloud
        async with GraphClient(
            provider, graph_url=cloud.graph, ca_bundle=cloud.ca_bundle, throttle_priority="Low"
        ) as client:
            gate = asyncio.Semaphore(job.concurrency)

            async def pull(tenant: str, p: Any) -> None:
                params, headers = p.first_request(MAX_PAGE_SIZE)
                async for page in client.pages(tenant, p.path, params=params, headers=headers):
                    tally.counts[p.resource] += len(page.items)
                    if p.resource == "groups":
                        for group in page.items:
                            tally.counts["members"] += len(group.get("members@delta", ()))

            async def one(customer: dict[str, Any]) -> None:
                async with gate:
                    tenant = customer["tenant_id"]
                    try:
                        await asyncio.gather(*(pull(tenant, p) for p in PULLS))
                    except Exception as exc:
                        tally.error(f"{tenant}: {exc!r}")

            await asyncio.gather(*(one(c) for c in job.customers))
            return client.stats.as_dict()


def main() -> None:
    job = Job.load(sys.argv[1])
    tally = Tally()
    tally.start()
    stats = asyncio.run(run(job, sys.argv[2], tally))
    tally.requests = int(stats.get("requests", 0))
    tally.throttled = int(stats.get("throttled", 0))
    tally.emit("cspgraph-fetch", tenants=len(job.customers), graph_stats=stats)


if __name__ == "__main__":
    main()
