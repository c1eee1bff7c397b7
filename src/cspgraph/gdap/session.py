"""A partner technician's view of one region's GDAP: a Graph client on the technician's delegated
tokens and the :class:`~cspgraph.gdap.api.GdapApi` of the region's partner tenant.

GDAP's APIs are called as a person (relationship requests are delegated only), so the technician
signs in once (``cspgraph login``); their refresh token serves the partner tenant here and, where
GDAP gives them roles, each customer (``cspgraph gdap consent``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from cspgraph.gdap.api import ADMIN_PORTAL, GdapApi
from cspgraph.graph.client import GraphClient
from cspgraph.http.sender import Sleep
from cspgraph.partner.center import PartnerCenterClient
from cspgraph.partner.onboarding_existing import UserPartnerCenterTokens

if TYPE_CHECKING:
    from cspgraph.identity import TokenProvider
    from cspgraph.identity.agent import AgentTokenProvider


@dataclass
class GdapSession:
    provider: TokenProvider
    region: str
    partner_tenant: str
    agent: AgentTokenProvider
    graph: GraphClient
    api: GdapApi
    admin_portal: str
    authority_host: str

    @classmethod
    def open(
        cls,
        provider: TokenProvider,
        *,
        region: str | None = None,
        agent_user: str | None = None,
        sleep: Sleep | None = None,
    ) -> GdapSession:
        """``region``: may be left out when one is configured; ``agent_user``: the technician
        when several have signed in; ``sleep``: how waits wait (an emulator's world clock)."""
        identity = provider.config.region_identity(region)
        agent = provider.agent(username=agent_user)
        graph = GraphClient(
            agent,
            graph_url=provider.cloud.graph,
            ca_bundle=provider.cloud.ca_bundle,
            sleep=sleep or asyncio.sleep,
        )
        endpoints = provider.config.emulator_endpoints()
        # The emulator serves the admin portal's approval page on its login origin.
        portal = endpoints.authority_host if endpoints is not None else ADMIN_PORTAL
        return cls(
            provider, identity.region, identity.partner_tenant, agent, graph,
            GdapApi(graph, identity.partner_tenant, agent), portal, provider.cloud.login,
        )  # fmt: skip

    def partner_center(self, *, sleep: Sleep | None = None) -> PartnerCenterClient:
        """Partner Center as the technician (app+user): what its GDAP-era calls need."""
        cloud = self.provider.cloud
        return PartnerCenterClient(
            UserPartnerCenterTokens(self.agent, self.partner_tenant),
            base_url=cloud.partner_center,
            ca_bundle=cloud.ca_bundle,
            sleep=sleep or asyncio.sleep,
        )

    async def aclose(self) -> None:
        await self.graph.close()

    async def __aenter__(self) -> GdapSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
