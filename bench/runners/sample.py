"""The docs sample: MSAL Python + requests, one customer after another.

This is how Microsoft's samples read Graph with app-only tokens (the msal "confidential client
with secret" sample and Graph's paging docs): a ``ConfidentialClientApplication`` per tenant
authority, ``acquire_token_for_client``, then ``requests.get`` on each collection and on every
``@odata.nextLink`` until there is none. Sequential by design: no concurrency at all.

Local-emulator adjustments: ``instance_discovery=False`` and a ``requests.Session`` that trusts
the local CA with ``trust_env=False`` (client-traps §2, §3), handed to MSAL as its http_client
and used for the Graph calls. The samples do not handle 429; this one sleeps ``Retry-After`` and
retries, so a throttled run is still complete.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import msal
import requests

from bench.runners.common import (
    GRAPH_SCOPE,
    KINDS,
    MAX_ATTEMPTS,
    Job,
    Tally,
    list_url,
    members_url,
    retry_after,
)


def main() -> None:
    job = Job.load(sys.argv[1])
    tally = Tally()
    session = requests.Session()
    session.verify = job.ca_bundle
    session.trust_env = False
    tally.start()

    def get(url: str, token: str) -> Any:
        for attempt in range(MAX_ATTEMPTS):
            tally.requests += 1
            response = session.get(url, headers={"Authorization": "Bearer " + token}, timeout=60)
            if response.status_code == 200:
                return response.json()
            if response.status_code == 429:
                tally.throttled += 1
            elif response.status_code < 500:
                raise RuntimeError(f"GET {url} -> {response.status_code}: {response.text[:200]}")
            tally.retries += 1
            time.sleep(retry_after(response.headers.get("Retry-After"), attempt))
        raise RuntimeError(f"GET {url}: gave up after retries")

    def pages(url: str | None, token: str) -> Any:
        while url:
            data = get(url, token)
            yield data["value"]
            url = data.get("@odata.nextLink")

    for customer in job.customers:
        tenant_id = customer["tenant_id"]
        partner = job.partners[customer["region"]]
        try:
            app = msal.ConfidentialClientApplication(
                partner["client_id"],
                authority=f"{job.authority}/{tenant_id}",
                client_credential=partner["secret"],
                http_client=session,
                instance_discovery=False,
            )
            result = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
            if "access_token" not in result:
                raise RuntimeError(
                    f"no token: {result.get('error')}: {result.get('error_description')}"
                )
            token = result["access_token"]
            for kind in KINDS:
                group_ids: list[str] = []
                for value in pages(list_url(job.graph, kind), token):
                    tally.counts[kind] += len(value)
                    if kind == "groups":
                        group_ids += [g["id"] for g in value]
                for group_id in group_ids:
                    for value in pages(members_url(job.graph, group_id), token):
                        tally.counts["members"] += len(value)
        except Exception as exc:
            tally.error(f"{tenant_id}: {exc!r}")
    tally.emit("sample", tenants=len(job.customers), concurrency=1)


if __name__ == "__main__":
    main()
