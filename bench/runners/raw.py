"""The limit: a minimal raw client, to show what the emulator on this machine can serve at most.

Tokens come pre-fetched in the job file; one HTTP client with at most ``concurrency``
connections; each page is handed to orjson only to find ``value``'s length and the next link (and
the group ids the list plan needs for ``/members``). Nothing is kept. 429 and 5xx are retried
after ``Retry-After``, so a throttled run still returns everything.

``python -m bench.runners.raw JOB [aiohttp|httpx|httpx2]``: the HTTP library is a choice (aiohttp
by default), so that the two candidates for cspgraph's client are measured on the same pages; only
the chosen one is imported. ``httpx2`` is httpx on HTTP/2 (bench.http2).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

# Imports are start-up; the work starts after them (the HTTP library is imported in main()).
import orjson

from bench.runners.common import (
    DELTA_HEADERS,
    DELTA_KINDS,
    KINDS,
    MAX_ATTEMPTS,
    Job,
    Tally,
    delta_url,
    list_url,
    members_url,
    retry_after,
)

# One GET: (status, Retry-After header, body).
Fetch = Callable[[str, dict[str, str]], Awaitable[tuple[int, str | None, bytes]]]


class Raw:
    def __init__(self, job: Job, fetch: Fetch, tally: Tally) -> None:
        self.job = job
        self.fetch = fetch
        self.tally = tally

    async def get(self, url: str, token: str, extra: dict[str, str] | None = None) -> Any:
        headers = {"Authorization": "Bearer " + token}
        if extra:
            headers.update(extra)
        for attempt in range(MAX_ATTEMPTS):
            self.tally.requests += 1
            status, after, body = await self.fetch(url, headers)
            if status == 200:
                return orjson.loads(body)
            wait = retry_after(after, attempt)
            if status == 429:
                self.tally.throttled += 1
            elif status < 500:
                raise RuntimeError(f"GET {url} -> {status}: {body[:200]!r}")
            self.tally.retries += 1
            await asyncio.sleep(wait)
        raise RuntimeError(f"GET {url}: gave up after retries")

    async def pages(
        self, url: str | None, token: str, extra: dict[str, str] | None = None
    ) -> AsyncIterator[list[Any]]:
        while url:
            data = await self.get(url, token, extra)
            yield data["value"]
            url = data.get("@odata.nextLink")

    async def tenant(self, customer: dict[str, Any]) -> None:
        tenant_id = customer["tenant_id"]
        token = self.job.tokens[tenant_id]
        graph = self.job.graph
        counts = self.tally.counts
        delta = self.job.plan == "delta"

        async def plain(kind: str) -> list[str]:
            ids: list[str] = []
            extra = DELTA_HEADERS if delta and kind in DELTA_KINDS else None
            first = delta_url(graph, kind) if delta else list_url(graph, kind)
            seen: set[str] = set()
            async for value in self.pages(first, token, extra):
                if kind == "groups" and delta:
                    # Graph splits a big group's members@delta over pages (500 links a page):
                    # the group comes again on each, and is one group.
                    for group in value:
                        counts["members"] += len(group.get("members@delta", ()))
                        if group["id"] not in seen:
                            seen.add(group["id"])
                            counts[kind] += 1
                    continue
                counts[kind] += len(value)
                if kind == "groups":
                    ids += [group["id"] for group in value]
            return ids

        async def members(group_id: str) -> None:
            async for value in self.pages(members_url(graph, group_id), token):
                counts["members"] += len(value)

        async def groups_and_members() -> None:
            ids = await plain("groups")
            await asyncio.gather(*(members(i) for i in ids))

        try:
            await asyncio.gather(
                *(groups_and_members() if k == "groups" else plain(k) for k in KINDS)
            )
        except Exception as exc:
            self.tally.error(f"{tenant_id}: {exc!r}")


async def pull_fleet(job: Job, fetch: Fetch, tally: Tally) -> None:
    """Every customer's pull at once; start-up (imports, the HTTP client) ends here."""
    tally.start()
    raw = Raw(job, fetch, tally)
    await asyncio.gather(*(raw.tenant(c) for c in job.customers))


async def run_aiohttp(job: Job, tally: Tally) -> None:
    import ssl

    import aiohttp
    from yarl import URL

    context = ssl.create_default_context(cafile=job.ca_bundle)
    connector = aiohttp.TCPConnector(ssl=context, limit=job.concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch(url: str, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
            # nextLinks are used verbatim, not re-quoted
            async with session.get(URL(url, encoded=True), headers=headers) as response:
                return response.status, response.headers.get("Retry-After"), await response.read()

        await pull_fleet(job, fetch, tally)


async def run_httpx(
    job: Job, tally: Tally, *, http2: bool = False, streams: int | None = None
) -> None:
    import ssl

    import httpx

    context = ssl.create_default_context(cafile=job.ca_bundle)
    n = job.concurrency or None  # 0: no limit on connections (the realistic regime)
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    timeout = httpx.Timeout(60.0, pool=None)  # waiting for a free connection is not an error here
    async with httpx.AsyncClient(
        verify=context, limits=limits, timeout=timeout, http2=http2
    ) as client:
        # httpcore's pool scans its whole queue of waiting requests on every event
        # (_assign_requests_to_connections), so 1,000 requests queued on 16 connections cost 14x
        # the CPU (measured); a competent httpx user keeps the queue in a semaphore instead.
        gate = asyncio.Semaphore(streams or n or 1_000_000)

        async def fetch(url: str, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
            async with gate:
                response = await client.get(url, headers=headers)
            tally.http_versions[response.http_version] += 1
            return response.status_code, response.headers.get("Retry-After"), response.content

        await pull_fleet(job, fetch, tally)


# Streams an HTTP/2 connection carries at once (the server's SETTINGS_MAX_CONCURRENT_STREAMS in
# bench.h2_server). httpx sends everything on one connection per origin and, asked for more
# streams than that at once, failed requests with WriteError (measured: 200 customers at once).
H2_STREAMS = 100


async def run_httpx2(job: Job, tally: Tally) -> None:
    """httpx with HTTP/2 (h2 offered by ALPN; the server decides), at most ``H2_STREAMS``
    requests at once: bench.http2."""
    await run_httpx(job, tally, http2=True, streams=H2_STREAMS)


def main() -> None:
    job = Job.load(sys.argv[1])
    library = sys.argv[2] if len(sys.argv) > 2 else "aiohttp"
    run = {"aiohttp": run_aiohttp, "httpx": run_httpx, "httpx2": run_httpx2}[library]
    tally = Tally()
    asyncio.run(run(job, tally))  # each run marks the end of its start-up (imports, client)
    name = f"raw-{job.plan}" if library == "aiohttp" else f"raw-{library}-{job.plan}"
    extra = {"http_versions": dict(tally.http_versions)} if tally.http_versions else {}
    tally.emit(
        name, tenants=len(job.customers), concurrency=job.concurrency, library=library, **extra
    )


if __name__ == "__main__":
    main()
