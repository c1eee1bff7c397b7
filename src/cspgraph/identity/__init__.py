"""Everything that yields an access token for a customer tenant.

``TokenProvider(config)`` is the entry point: it places customers (discovery → region → partner
identity) and hands out app-only tokens; ``provider.agent()`` hands out a signed-in partner
agent's delegated tokens, ``provider.partner_center_tokens(region)`` a region's app-only Partner
Center tokens. The first two implement the Graph client's ``TokenSource``::

    async with TokenProvider(load_config()) as tokens:
        route = await tokens.route("customer.com")  # tenant_id, region, cloud, identity
        token = await tokens.get_token(route.tenant_id)   # app-only, cached, single-flight
        token = await tokens.get_token(route.tenant_id, fresh=True)  # after consent changed
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from cspgraph.config import Config
from cspgraph.discovery import (
    RegionNotConfiguredError,
    Route,
    Router,
    TenantDiscovery,
    TenantInfo,
    UnknownTenantError,
    WrongCloudError,
)
from cspgraph.http.retry import RetryPolicy
from cspgraph.http.sessions import REQUESTS_TIMEOUT, Sessions
from cspgraph.identity.app_tokens import AppTokenProvider, CredentialError, Credentials
from cspgraph.identity.cache import PersistentTokenCache
from cspgraph.identity.partner_center import PartnerCenterTokens
from cspgraph.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from cspgraph.identity.agent import (
        AgentAccount,
        AgentTokenProvider,
        NotSignedInError,
        SignInResult,
    )
    from cspgraph.identity.loopback import PendingSignIn, SignInError

__all__ = [
    "AgentAccount",
    "AgentTokenProvider",
    "AppTokenProvider",
    "CredentialError",
    "NotSignedInError",
    "PartnerCenterTokens",
    "PendingSignIn",
    "RegionNotConfiguredError",
    "Route",
    "SignInError",
    "SignInResult",
    "TenantInfo",
    "TokenProvider",
    "UnknownTenantError",
    "WrongCloudError",
]

# Imported on first use: agent sign-in loads PyJWT and cryptography (~20 ms) and the loopback
# listener loads http.server, none of which app-only tokens (a fleet sync) need.
_LAZY: dict[str, str] = {
    "AgentAccount": "agent",
    "AgentTokenProvider": "agent",
    "NotSignedInError": "agent",
    "SignInResult": "agent",
    "PendingSignIn": "loopback",
    "SignInError": "loopback",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


class TokenProvider:
    """App-only Graph tokens for any customer, from the partner identity of its region.

    One per process: it owns the HTTP sessions (:class:`~cspgraph.http.sessions.Sessions`, which
    discovery and MSAL share), the discovery cache, the MSAL applications and a thread pool of
    ``workers`` threads for MSAL's blocking calls. Close it (``aclose``/``close`` or ``async
    with``/``with``) to save the discovery cache and stop the threads.
    """

    def __init__(
        self, config: Config, *, workers: int = 8, retry: RetryPolicy | None = None
    ) -> None:
        """``retry``: how transient failures of token and discovery requests are retried (the
        one policy of :mod:`cspgraph.http.retry`; default: the configuration's
        ``token_retries``, full-jitter backoff from 0.5 s up to 30 s, or the service's
        Retry-After). Each request may take the configuration's ``token_timeout`` seconds."""
        self.config = config
        self.cloud = config.cloud()
        self.retry = retry or RetryPolicy(max_retries=config.model.token_retries)
        timeout = config.model.token_timeout
        self.sessions = Sessions(
            self.cloud.ca_bundle,
            pool_maxsize=max(16, 2 * workers),
            # Each worker's token request goes over the loop's session: one connection each.
            loop_connections_per_host=max(8, workers),
            timeout=(min(REQUESTS_TIMEOUT[0], timeout), timeout),
        )
        self.session = self.sessions.requests
        self.discovery = TenantDiscovery(
            self.cloud,
            ttl=config.model.discovery_ttl,
            cache_path=config.discovery_cache_path,
            sessions=self.sessions,
            retry=self.retry,
        )
        self.router = Router(config, self.discovery)
        self.credentials = Credentials()
        self.app_tokens = AppTokenProvider(
            self.router,
            sessions=self.sessions,
            credentials=self.credentials,
            workers=workers,
            retry=self.retry,
        )
        self._agent: AgentTokenProvider | None = None
        self._token_cache: PersistentTokenCache | None = None
        self._partner_center: dict[str, PartnerCenterTokens] = {}

    # -- TokenSource ----------------------------------------------------------------------------
    async def get_token(self, tenant: str, *, fresh: bool = False) -> str:
        """App-only Graph token for ``tenant`` (GUID, domain or UPN)."""
        return await self.app_tokens.get_token(tenant, fresh=fresh)

    def get_token_sync(self, tenant: str, *, fresh: bool = False) -> str:
        return self.app_tokens.get_token_sync(tenant, fresh=fresh)

    # -- routing --------------------------------------------------------------------------------
    async def route(self, customer: str) -> Route:
        """Where ``customer``'s tokens come from; raises before any token request when its
        region has no partner identity (:class:`RegionNotConfiguredError`)."""
        return await self.router.route(customer)

    def route_sync(self, customer: str) -> Route:
        return self.router.route_sync(customer)

    def app_for(self, tenant: str) -> str | None:
        """The client id of the app ``tenant``'s tokens come from, if it has been routed; None
        otherwise. No I/O: a lookup in the router's cache (the Graph limiter keys Graph's per-app
        budgets with it)."""
        route = self.router.cached(tenant)
        return route.identity.client_id if route is not None else None

    # -- Partner Center -------------------------------------------------------------------------
    def partner_center_tokens(self, region: str | None = None) -> PartnerCenterTokens:
        """App-only Partner Center tokens of a configured region's partner-managed app (``None``:
        the only region), kept for the provider's life. The client over them is
        :meth:`cspgraph.partner.PartnerCenterClient.for_region`."""
        identity = self.config.region_identity(region)
        tokens = self._partner_center.get(identity.region)
        if tokens is None:
            tokens = self._partner_center[identity.region] = PartnerCenterTokens(
                identity,
                self.cloud,
                session=self.session,
                credentials=self.credentials,
                retry=self.retry,
            )
        return tokens

    # -- agents ---------------------------------------------------------------------------------
    @property
    def token_cache(self) -> PersistentTokenCache:
        """The agents' persistent token cache (the config's ``token_cache``)."""
        if self._token_cache is None:
            self._token_cache = PersistentTokenCache(self.config.token_cache_path)
        return self._token_cache

    def agent(self, *, username: str | None = None) -> AgentTokenProvider:
        """Delegated tokens of a signed-in agent, sharing this provider's transport and routes."""
        from cspgraph.identity.agent import AgentTokenProvider  # lazily: see _LAZY

        if self._agent is None or (username and self._agent.username != username.lower()):
            if self._agent is not None:
                self._agent.close()
            self._agent = AgentTokenProvider(
                self.router,
                session=self.session,
                cache=self.token_cache,
                credentials=self.credentials,
                username=username,
            )
        return self._agent

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        self.app_tokens.close()
        if self._agent is not None:
            self._agent.close()
        self.discovery.close()
        self.sessions.close()

    async def aclose(self) -> None:
        self.close()
        await self.sessions.aclose()

    def __enter__(self) -> TokenProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> TokenProvider:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
