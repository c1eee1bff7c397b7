"""Requests per second the emulator serves: one authenticated page of users, again and again.

``concurrency`` workers share one aiohttp session (keep-alive connections, TLS set up once per
connection) and send ``GET /v1.0/users?$top=N`` with a valid token for ``seconds``; every answer
is read whole and checked for 200. The emulator validates the token on every request.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from typing import Any

import aiohttp

from bench.runners.common import Tally


async def run(job: dict[str, Any], tally: Tally) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=job["ca_bundle"])
    concurrency = int(job["concurrency"])
    url = job["url"]
    headers = {"Authorization": "Bearer " + job["token"]}
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def once() -> None:
            started = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(once() for _ in range(concurrency)))  # connections up, warm
        latencies.clear()
        statuses.clear()
        deadline = time.perf_counter() + float(job["seconds"])
        began = time.perf_counter()

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await once()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    n = len(latencies)
    tally.requests = n
    return {
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "requests": n,
        "statuses": statuses,
        "rps": round(n / elapsed, 1),
        "p50_ms": round(latencies[n // 2] * 1000, 2) if n else None,
        "p99_ms": round(latencies[int(n * 0.99)] * 1000, 2) if n else None,
    }


def main() -> None:
    with open(sys.argv[1]) as f:
        job = json.load(f)
    tally = Tally()
    tally.start()
    figures = asyncio.run(run(job, tally))
    tally.emit("rps", **figures)


if __name__ == "__main__":
    main()
