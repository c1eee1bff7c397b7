"""App-only tokens for customer tenants: client credentials, one MSAL application per tenant.

MSAL has no per-call tenant (client-traps §1), so there is one ``ConfidentialClientApplication``
per (app, customer tenant), built lazily and kept. They share one HTTP session and one discovery
cache; each keeps its own token cache, and the current token of every tenant sits in one O(1)
store (:class:`~cspgraph.identity.cache.HotTokens`) that async callers read without a thread hop.

MSAL is synchronous and does not de-duplicate (client-traps §6): its calls run in a small thread
pool, and concurrent asks for one tenant wait for one request — an asyncio lock per tenant for
async callers, a thread lock per tenant below it for everyone — and look at the store again once
they hold the lock. Concurrent asks for a *fresh* token that saw the same token share one refresh
(:class:`cspgraph.http.fresh.FreshTokens`, the rule the Graph and Partner Center senders follow
too).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msal
import requests

from cspgraph.config import ClientCredential, ConfigError, PartnerIdentity
from cspgraph.discovery import Route, Router, TenantDiscovery
from cspgraph.http.errors import (
    BadRequestError,
    CspGraphError,
    HostUnreachableError,
    NeedsPersonError,
    TransientError,
    aadsts_code,
    classify_token_error,
    error_from_rule,
)
from cspgraph.http.fresh import FreshTokens
from cspgraph.http.retry import RetryPolicy, retry_transient, retry_transient_sync
from cspgraph.http.sessions import Sessions
from cspgraph.identity.cache import HotTokens, evict_access_tokens, hot_token_from
from cspgraph.identity.msal_transport import (
    Answer,
    ConnectFailed,
    DiscoveryOnlyHttpCache,
    MsalTransport,
    redact_msal_logs,
)

log = logging.getLogger(__name__)


class CredentialError(NeedsPersonError):
    """The partner identity's credential cannot be loaded (unset variable, unreadable file)."""


# -- errors ----------------------------------------------------------------------------------------


def token_error(
    result: dict[str, Any], tenant: str, what: str, answer: Answer | None = None
) -> CspGraphError:
    """A taxonomy error from an OAuth2 error answer (MSAL's dict or a raw v1 body); ``answer``:
    the status and Retry-After of that answer, when known (a 429 is transient whatever its body).

    The message keeps the first line of ``error_description`` (the AADSTS text) and drops the
    trace lines; it never contains a token or a secret, because error answers carry neither.
    """
    error = result.get("error")
    description = str(result.get("error_description") or "")
    codes = [c for c in result.get("error_codes") or [] if isinstance(c, int)]
    status = answer.status if answer is not None and answer.status >= 400 else None
    rule = classify_token_error(error, description, codes, status=status)
    number = codes[0] if codes else aadsts_code(description)
    first_line = description.splitlines()[0] if description else str(error)
    return error_from_rule(
        rule,
        f"{what} failed: {first_line}",
        code=f"AADSTS{number}" if number else (str(error) if error else None),
        status=status,
        tenant=tenant,
        request_id=result.get("correlation_id"),
        retry_after=answer.retry_after if answer is not None else None,
    )


def transport_error(
    exc: BaseException, tenant: str, what: str, answer: Answer | None = None
) -> CspGraphError:
    """A taxonomy error for a request that got no usable OAuth2 answer: transient, except
    MSAL's refusal of the authority (a ValueError other than a JSON one), which retrying will
    not change. ``answer``: the status and Retry-After of the answer MSAL rejected, if any: a
    429 or 5xx is transient whatever MSAL made of it (it raises on a 5xx token answer, and turns
    a throttled or failed authority discovery into that ValueError)."""
    status = answer.status if answer is not None and answer.status >= 400 else None
    if status is not None and (status == 429 or status >= 500):
        return TransientError(
            f"{what} failed: the identity platform answered HTTP {status}",
            tenant=tenant,
            status=status,
            retry_after=answer.retry_after if answer is not None else None,
        )
    if isinstance(exc, ValueError) and not isinstance(exc, json.JSONDecodeError):
        return BadRequestError(f"{what} failed: {exc}", tenant=tenant)
    if isinstance(exc, msal.exceptions.MsalServiceError):
        # MSAL raises on a 5xx ("HTTP Error: 503"); anything else it raises is also the service's.
        return TransientError(
            f"{what} failed: the identity platform answered {exc}",
            tenant=tenant,
        )
    if isinstance(exc, ConnectFailed):
        return HostUnreachableError(
            f"{what} failed: cannot connect to the identity platform at {exc.host}",
            host=exc.host,
            service="the identity platform",
            tenant=tenant,
        )
    return TransientError(
        f"{what} failed: {type(exc).__name__} talking to the identity platform",
        tenant=tenant,
    )


TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    msal.exceptions.MsalServiceError,
    # An answer that is not JSON (a proxy's error page), or MSAL's "Unable to get authority
    # configuration" (discovery answered 4xx); transport_error tells them apart.
    ValueError,
)


def build_msal_app(
    route: Route,
    credential: ClientCredential,
    *,
    transport: MsalTransport,
    http_cache: DiscoveryOnlyHttpCache,
    token_cache: msal.TokenCache,
) -> msal.ConfidentialClientApplication:
    """The MSAL application of one (app, tenant); its construction reads the tenant's discovery
    document (handed over by the router, so usually without a request)."""
    what = f"preparing tokens for tenant {route.tenant_id}"
    try:
        return msal.ConfidentialClientApplication(
            route.identity.client_id,
            client_credential=credential.for_msal(),
            authority=route.authority,
            http_client=transport,
            http_cache=http_cache,
            instance_discovery=route.cloud.instance_discovery,
            token_cache=token_cache,
        )
    except TRANSPORT_ERRORS as exc:
        raise transport_error(exc, route.tenant_id, what, transport.last_answer()) from None


# -- credentials -----------------------------------------------------------------------------------


class Credentials:
    """Each region's credential, loaded once on first use and shared by every tenant's app."""

    def __init__(self) -> None:
        self._loaded: dict[str, ClientCredential] = {}
        self._lock = threading.Lock()

    def get(self, identity: PartnerIdentity) -> ClientCredential:
        with self._lock:
            credential = self._loaded.get(identity.region)
            if credential is not None:
                return credential
            try:
                credential = identity.credential()
            except ConfigError as exc:
                raise CredentialError(str(exc), code="CredentialUnavailable") from None
            self._loaded[identity.region] = credential
            return credential


# -- per-key locks ---------------------------------------------------------------------------------


class KeyedLocks:
    """One asyncio lock and one thread lock per key.

    asyncio locks belong to the loop they were first used on; when the running loop changes
    (a CLI that calls ``asyncio.run`` twice), the async locks are started afresh.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._thread: dict[Any, threading.Lock] = {}
        self._async: dict[Any, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def thread_lock(self, key: Any) -> threading.Lock:
        with self._guard:
            lock = self._thread.get(key)
            if lock is None:
                lock = self._thread[key] = threading.Lock()
            return lock

    def async_lock(self, key: Any) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._async = {}
            self._loop = loop
        lock = self._async.get(key)
        if lock is None:
            lock = self._async[key] = asyncio.Lock()
        return lock


# -- the provider ----------------------------------------------------------------------------------


class AppTokenProvider:
    """App-only access tokens per customer tenant, routed to the tenant's regional identity.

    Implements the Graph client's ``TokenSource``: ``await get_token(tenant, fresh=False)``.
    """

    def __init__(
        self,
        router: Router,
        *,
        sessions: Sessions,
        credentials: Credentials | None = None,
        workers: int = 8,
        resource: str = "graph",
        retry: RetryPolicy | None = None,
    ) -> None:
        """``sessions``: the HTTP sessions MSAL's requests go through (the token layer's).
        ``retry``: how a transient failure of a token request (a 429, a 5xx, a timeout, a broken
        connection) is retried; client-credentials requests may always be sent again."""
        if resource not in ("graph", "partner_center"):
            raise ValueError("resource must be 'graph' or 'partner_center'")
        self.router = router
        self.discovery: TenantDiscovery = router.discovery
        self.session = sessions.requests
        self.resource = resource
        self.retry = retry or RetryPolicy()
        self.hot = HotTokens()
        # Per (app, tenant): how many tokens came from the wire (kept across evictions), and the
        # one fresh-token refresh in flight.
        self._fresh: FreshTokens[tuple[str, str]] = FreshTokens()
        self.token_requests = 0  # token requests that went on the wire
        self._apps: dict[tuple[str, str], msal.ConfidentialClientApplication] = {}
        self._credentials = credentials or Credentials()
        self._http_cache = DiscoveryOnlyHttpCache()
        # Async callers' token requests go over their event loop (see MsalTransport.via_loop).
        self._transport = MsalTransport(
            sessions.requests,
            self.discovery.take_document,
            aio_session=sessions.aiohttp,
            aio_default_tls=sessions.aiohttp_tls,
        )
        self._locks = KeyedLocks()
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cspgraph-token")
        redact_msal_logs()

    # -- TokenSource ----------------------------------------------------------------------------
    async def get_token(self, tenant: str, *, fresh: bool = False) -> str:
        """An app-only token for ``tenant`` (GUID, domain or UPN). ``fresh=True`` evicts this
        tenant's cached tokens and acquires a new one (concurrent fresh asks share it)."""
        route = await self.router.route(tenant)
        key = (route.identity.client_id, route.tenant_id)
        hot = self.hot.get(*key)
        if not fresh and hot is not None and hot.usable():
            return hot.token
        seen = self._fresh.generation(key)  # the newest token there was when asked
        if fresh:
            token = await self._fresh.refresh(key, seen, lambda: self._retrying(route, True, seen))
            if token is not None:
                return token
        async with self._locks.async_lock(key):
            reusable = self._reusable(key, False, seen)
            if reusable is not None:
                return reusable
            return await self._retrying(route, False, seen)

    def get_token_sync(self, tenant: str, *, fresh: bool = False) -> str:
        """The same as :meth:`get_token`, for synchronous callers (MSAL's requests go through
        the requests session). Not for the event loop's own thread while async asks are in
        flight: it would block the loop those asks send their token requests on."""
        route = self.router.route_sync(tenant)
        key = (route.identity.client_id, route.tenant_id)
        seen = self._fresh.generation(key)
        return retry_transient_sync(lambda: self._acquire(route, fresh, seen), self.retry)

    def evict(self, route: Route) -> int:
        """Drop this tenant's app-only tokens (memory store and MSAL cache)."""
        key = (route.identity.client_id, route.tenant_id)
        with self._locks.thread_lock(key):
            return self._evict(key)

    def close(self) -> None:
        # Workers waiting for a request on the event loop must not wait for a loop that this
        # call (often made on the loop's thread) is blocking.
        self._transport.stop_loop_requests()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- inside -----------------------------------------------------------------------------
    async def _retrying(self, route: Route, fresh: bool, seen: int) -> str:
        """The token from the wire (or MSAL's cache), retried as the policy says; the waits
        between tries are on the event loop, not in a worker thread."""
        return await retry_transient(lambda: self._in_pool(route, fresh, seen), self.retry)

    async def _in_pool(self, route: Route, fresh: bool, seen: int) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._acquire, route, fresh, seen, loop)

    def _reusable(self, key: tuple[str, str], fresh: bool, seen: int) -> str | None:
        """The stored token if it serves this ask: usable, and for a fresh ask, newer than the
        newest token there was when the ask was made (so concurrent fresh asks, which all saw
        the same bad token, share the one new token the first of them fetched)."""
        hot = self.hot.get(*key)
        if hot is None or not hot.usable():
            return None
        if fresh and hot.generation <= seen:
            return None
        return hot.token

    def _evict(self, key: tuple[str, str]) -> int:
        self.hot.drop(*key)
        app = self._apps.get(key)
        if app is None:
            return 0
        return evict_access_tokens(app.token_cache, key[0], key[1])

    def _scope(self, route: Route) -> str:
        if self.resource == "partner_center":
            return route.cloud.partner_center_scope
        return route.cloud.graph_scope

    def _acquire(
        self,
        route: Route,
        fresh: bool,
        seen: int,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> str:
        """Get the token through MSAL (its cache, else the wire), holding the tenant's lock.

        ``loop``: the event loop of the async caller this worker thread acts for; MSAL's
        requests are then sent on it (cheaper than requests), while this thread waits."""
        key = (route.identity.client_id, route.tenant_id)
        what = f"app-only token for tenant {route.tenant_id} ({route.region})"
        with self._locks.thread_lock(key):
            reusable = self._reusable(key, fresh, seen)
            if reusable is not None:
                return reusable
            transport = self._transport
            with transport.via_loop(loop):
                transport.forget_answer()
                app = self._app(route, key)
                if fresh:
                    self._evict(key)
                try:
                    result = app.acquire_token_for_client(scopes=[self._scope(route)])
                except TRANSPORT_ERRORS as exc:
                    answer = transport.last_answer()
                    raise transport_error(exc, route.tenant_id, what, answer) from None
                if "access_token" not in result:
                    raise token_error(result, route.tenant_id, what, transport.last_answer())
            generation = self._fresh.generation(key)
            if result.get("token_source") != "cache":  # a new token from the wire
                generation = self._fresh.advance(key)  # under the tenant's thread lock
                with self._guard:
                    self.token_requests += 1
            self.hot.put(*key, hot_token_from(result, generation))
            token: str = result["access_token"]
            return token

    def _app(self, route: Route, key: tuple[str, str]) -> msal.ConfidentialClientApplication:
        """The tenant's MSAL application, built on first use (the caller holds the tenant's
        lock, so it is built once)."""
        app = self._apps.get(key)
        if app is None:
            app = self._apps[key] = build_msal_app(
                route,
                self._credentials.get(route.identity),
                transport=self._transport,
                http_cache=self._http_cache,
                token_cache=msal.TokenCache(),  # this tenant's own: lookups stay O(1)
            )
        return app
