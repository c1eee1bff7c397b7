"""The limit: a minimal raw client, to show what the emulator on this machine can serve at most.

Tokens come pre-fetched in the job file; one aiohttp session with at most ``concurrency``
connections; each page is handed to orjson only to find ``value``'s length and the next link (and
the group ids the list plan needs for ``/members``). Nothing is kept. 429 and 5xx are retried
after ``Retry-After``, so a throttled run still returns everything.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import AsyncIterator
from typing import Any

# Imports are start-up; the work starts after them.
import aiohttp
import orjson
from yarl import URL

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


class Raw:
    def __init__(self, job: Job, session: aiohttp.ClientSession, tally: Tally) -> None:
        self.job = job
        self.session = session
        self.tally = tally

    async def get(self, url: str, token: str, extra: dict[str, str] | None = None) -> Any:
        headers = {"Authorization": "Bearer " + token}
        if extra:
            headers.update(extra)
        target = URL(url, encoded=True)  # nextLinks are used verbatim, not re-quoted
        for attempt in range(MAX_ATTEMPTS):
            self.tally.requests += 1
            async with self.session.get(target, headers=headers) as response:
                body = await response.read()
                status = response.status
                if status == 200:
                    return orjson.loads(body)
                wait = retry_after(response.headers.get("Retry-After"), attempt)
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
            async for value in self.pages(first, token, extra):
                counts[kind] += len(value)
                if kind == "groups":
                    if delta:
                        for group in value:
                            counts["members"] += len(group.get("members@delta", ()))
                    else:
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


async def run(job: Job, tally: Tally) -> None:
    context = ssl.create_default_context(cafile=job.ca_bundle)
    connector = aiohttp.TCPConnector(ssl=context, limit=job.concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        raw = Raw(job, session, tally)
        await asyncio.gather(*(raw.tenant(c) for c in job.customers))


def main() -> None:
    job = Job.load(sys.argv[1])
    tally = Tally()
    tally.start()
    asyncio.run(run(job, tally))
    tally.emit(f"raw-{job.plan}", tenants=len(job.customers), concurrency=job.concurrency)


if __name__ == "__main__":
    main()
