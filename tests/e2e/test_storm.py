"""A throttling storm: ~30 % of the Graph requests for a 5,000-user customer are answered 429 with
no Retry-After, and listing every page still yields every user exactly once.

The 429s come from the emulator's fault injection (seeded, so the same run meets the same faults);
the client backs off on its own jitter, made tiny here so the test stays fast. What the wire saw is
counted independently of the client, through an aiohttp trace on the session it uses.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import DEMO_PARTNERS
from cspgraph.config import config_from_data
from cspgraph.graph.client import GraphClient, Page
from cspgraph.identity import TokenProvider
from tests.client.conftest import Control

MakeEmulator = Callable[..., Emulator]

NA = DEMO_PARTNERS["NA"]
USERS = 5000
PAGE = 100
BACKOFF_BASE = 0.001
BACKOFF_CAP = 0.01

STORM_WORLD: dict[str, Any] = {
    "settings": {"propagation_delay": "3m", "token_lifetime": "1h"},
    "tenant": [
        {
            "domain": NA["domain"],
            "region": "NA",
            "kind": "partner",
            "app": [
                {
                    "display_name": "CSP app",
                    "client_id": NA["client_id"],
                    "client_secret": NA["client_secret"],
                    "multi_tenant": True,
                    "admin_agents": True,
                    "application_permissions": ["User.Read.All"],
                }
            ],
        },
        {
            "domain": "customer.com",
            "region": "NA",
            "kind": "customer",
            "partner": NA["domain"],
            "generate": {"users": USERS, "seed": 29},
        },
    ],
}


def wire_counter(statuses: Counter[int]) -> aiohttp.TraceConfig:
    async def on_end(session: aiohttp.ClientSession, context: SimpleNamespace, params: Any) -> None:
        statuses[params.response.status] += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    return trace


async def test_a_storm_of_429s_loses_and_duplicates_no_user(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = make_emulator(STORM_WORLD)
    control = Control(emu)
    tenant = control.get("tenants/customer.com")
    world_ids = {u["id"] for u in control.get("tenants/customer.com/users")["value"]}
    expected = tenant["counts"]["users"]
    assert expected == USERS + 1 == len(world_ids)  # the generated users and the customer admin
    control.send(
        "POST",
        "faults",
        {"host": "graph", "kind": "429", "rate": 0.3, "path_prefix": "/v1.0/users"},
    )

    config = config_from_data(
        {
            "emulator": str(emu.endpoints_file),
            "token_cache": "memory",
            "discovery_cache": "memory",
            "regions": {
                "NA": {
                    "partner_tenant": NA["domain"],
                    "client_id": NA["client_id"],
                    "client_secret_env": "CSPGRAPH_SECRET_NA",
                }
            },
        },
        base_dir=tmp_path,
        env={"CSPGRAPH_SECRET_NA": NA["client_secret"]},
    )
    slept: list[float] = []

    async def tiny_sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    wire: Counter[int] = Counter()
    context = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)
    pages: list[Page] = []
    provider = TokenProvider(config, workers=2)
    try:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context), trace_configs=[wire_counter(wire)]
            ) as session,
            GraphClient(
                provider,
                graph_url=provider.cloud.graph,
                session=session,
                backoff_base=BACKOFF_BASE,
                backoff_cap=BACKOFF_CAP,
                # Enough that a run of 429s on one page (0.3^13) never ends the listing.
                max_retries=12,
                sleep=tiny_sleep,
            ) as client,
        ):
            ids = [
                user["id"]
                async for user in client.list(
                    tenant["id"],
                    "/users",
                    select=["id", "userPrincipalName"],
                    top=PAGE,
                    page_callback=pages.append,
                )
            ]
    finally:
        await provider.aclose()

    # Nothing lost, nothing duplicated.
    assert len(ids) == expected
    assert len(set(ids)) == expected
    assert set(ids) == world_ids
    assert len(pages) == -(-expected // PAGE)  # 51 pages of at most 100
    assert all(len(p.items) == PAGE for p in pages[:-1])

    # The storm happened, and the client saw every 429 the wire carried.
    stats = client.stats
    assert stats.throttled > 0
    assert wire[429] == stats.throttled
    assert wire[200] == len(pages)
    assert stats.requests == wire[200] + wire[429]
    assert stats.retries == stats.throttled
    assert stats.errors == 0
    assert stats.objects == expected
    # About 30 % of the requests: a loose band, only to show the fault was the one configured.
    assert 0.1 < stats.throttled / stats.requests < 0.5
    # Every pause was the client's own tiny jittered backoff (no Retry-After was given).
    assert len([s for s in slept if s > 0]) >= 1
    assert max(slept) <= BACKOFF_CAP
