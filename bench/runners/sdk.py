"""The official SDK baseline: msgraph-sdk + azure-identity, written the way their docs show it.

Per customer: an async ``ClientSecretCredential`` for that tenant and a ``GraphServiceClient``
(msgraph-sdk README), collections read with ``$select``/``$top`` request configurations and paged
with msgraph-core's ``PageIterator`` ("Page through a collection using the Microsoft Graph SDKs");
customers run concurrently under an asyncio semaphore, and each customer's resources and group
member lists concurrently too. One httpx connection pool serves every client (a competent
multi-tenant program would not open one per tenant).

What the emulator needs and a real deployment would not (client-traps §10): the authority host,
``disable_instance_discovery``, the emulator's Graph host in ``allowed_hosts`` (or Kiota sends no
Authorization header) and TLS trust in the local CA, for azure-identity (``connection_verify``)
and for the SDK's httpx client (an SSL context on its transport).

Requests and 429s are counted by the innermost httpx transport, below Kiota's retry handler, so
retried requests count too.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from typing import Any
from urllib.parse import urlsplit

from bench.runners.common import GRAPH_SCOPE, PAGE, SELECT, Job, Tally

tally = Tally()

# The SDK's import cost is part of start-up.
import httpx  # noqa: E402
from azure.identity.aio import ClientSecretCredential  # noqa: E402
from kiota_abstractions.base_request_configuration import RequestConfiguration  # noqa: E402
from kiota_authentication_azure.azure_identity_authentication_provider import (  # noqa: E402
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient  # noqa: E402
from msgraph.generated.device_management.managed_devices.managed_devices_request_builder import (  # noqa: E402
    ManagedDevicesRequestBuilder,
)
from msgraph.generated.devices.devices_request_builder import DevicesRequestBuilder  # noqa: E402
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder  # noqa: E402
from msgraph.generated.groups.item.members.members_request_builder import (  # noqa: E402
    MembersRequestBuilder,
)
from msgraph.generated.organization.organization_request_builder import (  # noqa: E402
    OrganizationRequestBuilder,
)
from msgraph.generated.users.users_request_builder import UsersRequestBuilder  # noqa: E402
from msgraph_core import GraphClientFactory, PageIterator  # noqa: E402


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, counting what goes on the wire.

    It also resends a GET whose keep-alive connection the server had closed (``ReadError``,
    ``RemoteProtocolError``): the SDK parses for so long between reads that pooled connections
    outlive the emulator's keep-alive timeout, and Kiota's retry handler retries on HTTP statuses
    only. Without this the baseline would lose pages to a transport quirk, not to its design.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(3):
            tally.requests += 1
            try:
                response = await self.inner.handle_async_request(request)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                if request.method != "GET" or attempt == 2:
                    raise
                tally.retries += 1
                continue
            if response.status_code == 429:
                tally.throttled += 1
            return response
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self.inner.aclose()


def select(kind: str) -> list[str]:
    return SELECT[kind].split(",")


async def collect(first_page: Any, client: GraphServiceClient, on_item: Any) -> None:
    """Every item of every page, through the SDK's PageIterator."""
    if first_page is None:
        return

    def callback(item: Any) -> bool:
        on_item(item)
        return True

    await PageIterator(first_page, client.request_adapter).iterate(callback)


async def pull_tenant(job: Job, customer: dict[str, Any], http_client: httpx.AsyncClient) -> None:
    tenant_id = customer["tenant_id"]
    partner = job.partners[customer["region"]]
    credential = ClientSecretCredential(
        tenant_id,
        partner["client_id"],
        partner["secret"],
        authority=job.authority,
        disable_instance_discovery=True,
        additionally_allowed_tenants=["*"],
        connection_verify=job.ca_bundle,
    )
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=[GRAPH_SCOPE], allowed_hosts=[urlsplit(job.graph).hostname or ""]
    )
    adapter = GraphRequestAdapter(auth, client=http_client)
    adapter.base_url = job.graph + "/v1.0"
    client = GraphServiceClient(request_adapter=adapter)
    counts = tally.counts

    def counter(kind: str) -> Any:
        def on_item(_item: Any) -> None:
            counts[kind] += 1

        return on_item

    async def users() -> None:
        q = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            select=select("users"), top=PAGE
        )
        page = await client.users.get(RequestConfiguration(query_parameters=q))
        await collect(page, client, counter("users"))

    async def members(group_id: str) -> None:
        q = MembersRequestBuilder.MembersRequestBuilderGetQueryParameters(select=["id"], top=PAGE)
        page = await client.groups.by_group_id(group_id).members.get(
            RequestConfiguration(query_parameters=q)
        )
        await collect(page, client, counter("members"))

    async def groups() -> None:
        q = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
            select=select("groups"), top=PAGE
        )
        page = await client.groups.get(RequestConfiguration(query_parameters=q))
        ids: list[str] = []

        def on_item(group: Any) -> None:
            counts["groups"] += 1
            ids.append(group.id)

        await collect(page, client, on_item)
        await asyncio.gather(*(members(i) for i in ids))

    async def devices() -> None:
        q = DevicesRequestBuilder.DevicesRequestBuilderGetQueryParameters(
            select=select("devices"), top=PAGE
        )
        page = await client.devices.get(RequestConfiguration(query_parameters=q))
        await collect(page, client, counter("devices"))

    async def organization() -> None:
        q = OrganizationRequestBuilder.OrganizationRequestBuilderGetQueryParameters(
            select=select("organization")
        )
        page = await client.organization.get(RequestConfiguration(query_parameters=q))
        await collect(page, client, counter("organization"))

    async def managed_devices() -> None:
        q = ManagedDevicesRequestBuilder.ManagedDevicesRequestBuilderGetQueryParameters(
            select=select("managedDevices"), top=PAGE
        )
        page = await client.device_management.managed_devices.get(
            RequestConfiguration(query_parameters=q)
        )
        await collect(page, client, counter("managedDevices"))

    try:
        await asyncio.gather(users(), groups(), devices(), organization(), managed_devices())
    except Exception as exc:
        tally.error(f"{tenant_id}: {exc!r}")
    finally:
        await credential.close()


async def run(job: Job) -> None:
    context = ssl.create_default_context(cafile=job.ca_bundle)
    transport = CountingTransport(
        httpx.AsyncHTTPTransport(
            verify=context,
            limits=httpx.Limits(
                max_connections=job.concurrency, max_keepalive_connections=job.concurrency
            ),
        )
    )
    http_client = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(transport=transport, timeout=60)
    )
    gate = asyncio.Semaphore(job.concurrency)

    async def one(customer: dict[str, Any]) -> None:
        async with gate:
            await pull_tenant(job, customer, http_client)

    async with http_client:
        await asyncio.gather(*(one(c) for c in job.customers))


def main() -> None:
    job = Job.load(sys.argv[1])
    tally.start()
    asyncio.run(run(job))
    tally.emit("sdk", tenants=len(job.customers), concurrency=job.concurrency)


if __name__ == "__main__":
    main()
