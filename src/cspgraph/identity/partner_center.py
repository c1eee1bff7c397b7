"""App-only Partner Center tokens of one region's partner-managed app, in its partner tenant.

Partner Center is called with a v1-audience token for ``https://api.partnercenter.microsoft.com``
issued in the **partner** tenant (client credentials, the partner-managed app's own credential;
wire-facts §4). Partner Center exempts app-only tokens from its MFA rule.
:meth:`cspgraph.identity.TokenProvider.partner_center_tokens` keeps one per region.

MSAL is synchronous (client-traps §6): its calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import threading

import msal
import requests

from cspgraph.clouds import Cloud
from cspgraph.config import PartnerIdentity
from cspgraph.http.retry import RetryPolicy, retry_transient, retry_transient_sync
from cspgraph.identity.app_tokens import TRANSPORT_ERRORS, Credentials, token_error, transport_error
from cspgraph.identity.msal_transport import DiscoveryOnlyHttpCache, MsalTransport

_CT = msal.TokenCache.CredentialType


def remove_access_tokens(cache: msal.TokenCache, client_id: str) -> int:
    """Drop one client's access tokens from a cache that serves one tenant only."""
    found = list(cache.search(_CT.ACCESS_TOKEN, query={"client_id": client_id}))
    for entry in found:
        cache.remove_at(entry)
    return len(found)


class PartnerCenterTokens:
    """App-only Partner Center tokens of one region's partner-managed app in its partner tenant.

    Implements :class:`~cspgraph.partner.center.PartnerCenterTokenSource`.
    """

    def __init__(
        self,
        identity: PartnerIdentity,
        cloud: Cloud,
        *,
        session: requests.Session,
        credentials: Credentials | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """``retry``: how a transient failure of a token request is retried (a region's customer
        list must not be lost to one 503 of the token endpoint)."""
        self.identity = identity
        self.cloud = cloud
        self.session = session
        self.token_requests = 0  # requests that reached the token endpoint
        self._credentials = credentials or Credentials()
        self.retry = retry or RetryPolicy()
        self._app: msal.ConfidentialClientApplication | None = None
        self._transport = MsalTransport(session)
        self._lock = threading.Lock()
        self._alock: asyncio.Lock | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None

    @property
    def tenant(self) -> str:
        return self.identity.partner_tenant

    async def get_token(self, *, fresh: bool = False) -> str:
        loop = asyncio.get_running_loop()
        if self._alock is None or self._aloop is not loop:
            self._alock, self._aloop = asyncio.Lock(), loop
        async with self._alock:  # concurrent asks share one request (and its retries)
            return await retry_transient(
                lambda: asyncio.to_thread(self._get_once, fresh), self.retry
            )

    def get_token_sync(self, *, fresh: bool = False) -> str:
        return retry_transient_sync(lambda: self._get_once(fresh), self.retry)

    def _get_once(self, fresh: bool) -> str:
        what = f"Partner Center token for partner tenant {self.tenant} ({self.identity.region})"
        with self._lock:
            self._transport.forget_answer()
            app = self._application()
            if fresh:
                remove_access_tokens(app.token_cache, self.identity.client_id)
            try:
                result = app.acquire_token_for_client(scopes=[self.cloud.partner_center_scope])
            except TRANSPORT_ERRORS as exc:
                answer = self._transport.last_answer()
                raise transport_error(exc, self.tenant, what, answer) from None
            if "access_token" not in result:
                raise token_error(result, self.tenant, what, self._transport.last_answer())
            if result.get("token_source") != "cache":
                self.token_requests += 1
            token: str = result["access_token"]
            return token

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            what = f"preparing Partner Center tokens for {self.tenant}"
            try:
                self._app = msal.ConfidentialClientApplication(
                    self.identity.client_id,
                    client_credential=self._credentials.get(self.identity).for_msal(),
                    authority=self.cloud.authority(self.tenant),
                    http_client=self._transport,
                    http_cache=DiscoveryOnlyHttpCache(),
                    instance_discovery=self.cloud.instance_discovery,
                    token_cache=msal.TokenCache(),
                )
            except TRANSPORT_ERRORS as exc:
                answer = self._transport.last_answer()
                raise transport_error(exc, self.tenant, what, answer) from None
        return self._app
