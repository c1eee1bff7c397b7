"""Where a customer lives: tenant id, region and cloud from OIDC discovery, and which partner
identity serves it.

CSP engagement is regional: a partner-managed app registered in the NA partner tenant does not
work for an EU customer (seed: "Register your app in the regions you support"). So before any
sign-in, a customer given as a tenant GUID, a domain or a user's sign-in name is placed:
``GET {login}/{tenant}/v2.0/.well-known/openid-configuration`` names the tenant GUID (in
``issuer`` and every endpoint), ``tenant_region_scope`` and ``cloud_instance_name``. The answer is
cached in memory (and on disk when configured) for a TTL, and concurrent asks for one customer
share one request. A transient failure (a 429 or 5xx, a timeout, a broken connection) is retried
under the one retry policy of :mod:`cspgraph.http.retry`: a discovery GET may be sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from cspgraph.clouds import Cloud, cloud_for_instance
from cspgraph.config import Config, PartnerIdentity, write_private_file
from cspgraph.customer_ref import customer_key
from cspgraph.http.errors import (
    BadRequestError,
    CspGraphError,
    HostUnreachableError,
    NeedsPersonError,
    TransientError,
    classify_token_error,
    error_from_rule,
)
from cspgraph.http.retry import HOSTS, RetryPolicy, retry_transient, retry_transient_sync
from cspgraph.http.sessions import Sessions

log = logging.getLogger(__name__)


class UnknownTenantError(BadRequestError):
    """No tenant has this id or verified domain in the cloud (AADSTS90002)."""


class WrongCloudError(BadRequestError):
    """The customer lives in another national cloud than the configuration targets."""


class RegionNotConfiguredError(NeedsPersonError):
    """The customer's region has no partner identity in the configuration."""


@dataclass(frozen=True)
class TenantInfo:
    """What discovery says about one tenant."""

    tenant_id: str
    region: str | None  # tenant_region_scope: NA, EU, WW, …
    sub_region: str | None  # tenant_region_sub_scope (GCC, DOD, …) when present
    cloud_instance: str | None  # cloud_instance_name: microsoftonline.com, …
    graph_host: str | None  # msgraph_host
    issuer: str
    fetched_at: float
    jwks_uri: str | None = None


def parse_discovery(document: dict[str, Any], fetched_at: float) -> TenantInfo:
    """A TenantInfo from a v2 discovery document; ValueError when it names no tenant GUID.

    The GUID is the first path segment of ``token_endpoint`` (what MSAL keys its cache realm by),
    cross-checked against ``issuer``.
    """
    token_endpoint = document.get("token_endpoint")
    issuer = document.get("issuer")
    if not isinstance(token_endpoint, str) or not isinstance(issuer, str):
        raise ValueError("the discovery document has no token_endpoint or issuer")
    segment = urlsplit(token_endpoint).path.strip("/").split("/")[0]
    try:
        tenant_id = str(uuid.UUID(segment))
    except ValueError:
        raise ValueError(f"token_endpoint names no tenant GUID: {token_endpoint}") from None
    if tenant_id not in issuer.lower():
        raise ValueError(f"issuer {issuer} does not name tenant {tenant_id}")

    def text(key: str) -> str | None:
        value = document.get(key)
        return str(value) if value not in (None, "") else None

    return TenantInfo(
        tenant_id=tenant_id,
        region=text("tenant_region_scope"),
        sub_region=text("tenant_region_sub_scope"),
        cloud_instance=text("cloud_instance_name"),
        graph_host=text("msgraph_host"),
        issuer=issuer,
        fetched_at=fetched_at,
        jwks_uri=text("jwks_uri"),
    )


class TenantDiscovery:
    """Tenant facts by customer reference, cached for ``ttl`` seconds, one request per customer
    however many ask at once. ``resolve`` is async (aiohttp) for bulk work; ``resolve_sync`` uses
    the requests session for scripts and the CLI. ``sessions``: the HTTP sessions to use (the
    token layer's, shared with MSAL); without, discovery makes its own and closes them."""

    def __init__(
        self,
        cloud: Cloud,
        *,
        ttl: float = 86400.0,
        cache_path: Path | None = None,
        sessions: Sessions | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.cloud = cloud
        self.retry = retry or RetryPolicy()
        self.ttl = ttl
        self.cache_path = cache_path
        self.requests_sent = 0  # discovery GETs on the wire, for tests and stats
        self._sessions = sessions
        self._owns_sessions = sessions is None
        self._entries: dict[str, TenantInfo] = {}
        self._documents: dict[str, str] = {}  # by the GUID-form discovery URL, until MSAL reads it
        self._inflight: dict[str, asyncio.Future[TenantInfo]] = {}
        self._sync_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._dirty = False
        if cache_path is not None:
            self._load(cache_path)

    # -- public ---------------------------------------------------------------------------------
    def url(self, tenant: str) -> str:
        return f"{self.cloud.login}/{tenant}/v2.0/.well-known/openid-configuration"

    def cached(self, customer: str) -> TenantInfo | None:
        info = self._entries.get(customer_key(customer))
        if info is not None and time.time() - info.fetched_at < self.ttl:
            return info
        return None

    async def resolve(self, customer: str) -> TenantInfo:
        key = customer_key(customer)
        info = self.cached(key)
        if info is not None:
            return info
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._inflight[key] = pending
            try:
                result = await retry_transient(lambda: self._fetch_async(key), self.retry)
            except asyncio.CancelledError:
                pending.cancel()
                raise
            except Exception as exc:
                pending.set_exception(exc)
                pending.exception()  # marks it retrieved: there may be no other waiter
                raise
            else:
                pending.set_result(result)
                return result
            finally:
                self._inflight.pop(key, None)
        return await asyncio.shield(pending)

    def resolve_sync(self, customer: str) -> TenantInfo:
        key = customer_key(customer)
        info = self.cached(key)
        if info is not None:
            return info
        with self._lock:
            lock = self._sync_locks.setdefault(key, threading.Lock())
        with lock:
            info = self.cached(key)  # another thread may have fetched it meanwhile
            if info is not None:
                return info
            return retry_transient_sync(lambda: self._fetch_sync(key), self.retry)

    def take_document(self, url: str) -> str | None:
        """The discovery document at ``url`` if we fetched it, handed over once (to MSAL)."""
        with self._lock:
            return self._documents.pop(url, None)

    def forget(self, customer: str) -> None:
        with self._lock:
            self._entries.pop(customer_key(customer), None)

    def save(self) -> None:
        """Write the cache file (atomically) if anything new was learned."""
        if self.cache_path is None or not self._dirty:
            return
        with self._lock:
            entries = {k: asdict(v) for k, v in self._entries.items()}
            self._dirty = False
        payload = {"version": 1, "login": self.cloud.login, "entries": entries}
        write_private_file(self.cache_path, json.dumps(payload, indent=1))

    @property
    def sessions(self) -> Sessions:
        if self._sessions is None:
            self._sessions = Sessions(self.cloud.ca_bundle)
        return self._sessions

    async def aclose(self) -> None:
        self.save()
        if self._owns_sessions and self._sessions is not None:
            await self._sessions.aclose()
            self._sessions = None

    def close(self) -> None:
        self.save()
        if self._owns_sessions and self._sessions is not None:
            self._sessions.close()
            self._sessions = None

    # -- fetching -------------------------------------------------------------------------------
    async def _fetch_async(self, key: str) -> TenantInfo:
        # Lazy on purpose: the token layer must import without aiohttp (~150 ms); by now the
        # session below has loaded it.
        from aiohttp import ClientError

        session = await self.sessions.aiohttp()
        url = self.url(key)
        with self._lock:
            self.requests_sent += 1
        try:
            async with session.get(url, headers={"Accept": "application/json"}) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                text = await response.text()
        except (ClientError, TimeoutError) as exc:
            raise self._unreachable(key, exc, url) from None
        return self._accept(key, url, status, text, retry_after)

    def _fetch_sync(self, key: str) -> TenantInfo:
        url = self.url(key)
        with self._lock:
            self.requests_sent += 1
        try:
            response = self.sessions.requests.get(url, headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise self._unreachable(key, exc, url) from None
        retry_after = response.headers.get("Retry-After")
        return self._accept(key, url, response.status_code, response.text, retry_after)

    def _unreachable(self, key: str, exc: BaseException, url: str) -> CspGraphError:
        message = f"cannot reach {self.cloud.login} to discover {key}: {type(exc).__name__}"
        if _connect_failed(exc):  # never reached the host: the host watch keeps count
            host = urlsplit(url).netloc
            return HostUnreachableError(
                message, host=host, service="the identity platform", tenant=key
            )
        return TransientError(message, tenant=key)

    def _accept(
        self, key: str, url: str, status: int, text: str, retry_after: str | None = None
    ) -> TenantInfo:
        HOSTS.answered(urlsplit(url).netloc)
        if status != 200:
            raise self._error(key, status, text, retry_after)
        try:
            document = json.loads(text)
            info = parse_discovery(document, time.time())
        except ValueError as exc:
            raise TransientError(
                f"discovery for {key} returned an unusable document: {exc}",
                tenant=key,
                status=status,
            ) from None
        with self._lock:
            self._entries[key] = info
            self._entries[info.tenant_id] = info
            self._documents[self.url(info.tenant_id)] = text
            self._dirty = True
        log.debug("discovered %s: tenant %s, region %s", key, info.tenant_id, info.region)
        return info

    def _error(
        self, key: str, status: int, text: str, retry_after: str | None = None
    ) -> CspGraphError:
        body: dict[str, Any] = {}
        with contextlib.suppress(ValueError):
            parsed = json.loads(text)
            body = parsed if isinstance(parsed, dict) else {}
        error = body.get("error")
        description = str(body.get("error_description") or "")
        codes = [c for c in body.get("error_codes") or [] if isinstance(c, int)]
        rule = classify_token_error(error, description, codes, status=status)
        if 90002 in codes or error == "invalid_tenant" or "AADSTS90002" in description:
            return UnknownTenantError(
                f"no tenant {key!r} in the {self.cloud.name} cloud ({self.cloud.login}): check "
                "the domain or tenant ID; a customer of another national cloud needs a "
                "configuration for that cloud",
                code="AADSTS90002",
                status=status,
                tenant=key,
                request_id=body.get("correlation_id"),
                reason=rule.reason,
            )
        first_line = description.splitlines()[0] if description else f"HTTP {status}"
        code = next((f"AADSTS{c}" for c in codes), error)
        return error_from_rule(
            rule,
            f"discovery for {key} failed: {first_line}",
            code=code,
            status=status,
            tenant=key,
            request_id=body.get("correlation_id"),
            retry_after=retry_after,
        )

    # -- the cache file -------------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            if payload.get("version") != 1 or payload.get("login") != self.cloud.login:
                return  # another cloud's or format's answers: start afresh
            now = time.time()
            for key, raw in payload.get("entries", {}).items():
                info = TenantInfo(**raw)
                if now - info.fetched_at < self.ttl:
                    self._entries[key] = info
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable discovery cache %s: %s", path, exc)


# -- routing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Where tokens for one customer come from."""

    customer: str  # as the caller named it
    tenant_id: str
    region: str
    cloud: Cloud
    identity: PartnerIdentity

    @property
    def authority(self) -> str:
        return self.cloud.authority(self.tenant_id)


class Router:
    """Places customers (via discovery) and picks the partner identity of their region."""

    def __init__(self, config: Config, discovery: TenantDiscovery) -> None:
        self.config = config
        self.discovery = discovery
        # The routes of customers as callers spell them, so the hot path (a token per Graph
        # request) skips parsing and discovery's cache; valid as long as discovery's answer.
        self._routes: dict[str, tuple[Route, float]] = {}

    async def route(self, customer: str) -> Route:
        memo = self._routes.get(customer)
        if memo is not None and time.time() < memo[1]:
            return memo[0]
        return self._remember(customer, await self.discovery.resolve(customer))

    def route_sync(self, customer: str) -> Route:
        memo = self._routes.get(customer)
        if memo is not None and time.time() < memo[1]:
            return memo[0]
        return self._remember(customer, self.discovery.resolve_sync(customer))

    def cached(self, customer: str) -> Route | None:
        """The route already worked out for ``customer`` (as it was asked for), without I/O;
        None when it has not been routed (an expired route is still the tenant's identity)."""
        memo = self._routes.get(customer)
        return memo[0] if memo is not None else None

    def _remember(self, customer: str, info: TenantInfo) -> Route:
        route = self._choose(customer, info)
        self._routes[customer] = (route, info.fetched_at + self.discovery.ttl)
        return route

    def _choose(self, customer: str, info: TenantInfo) -> Route:
        cloud = self.discovery.cloud
        if info.cloud_instance and info.cloud_instance.lower() != cloud.instance_name:
            other = cloud_for_instance(info.cloud_instance) or info.cloud_instance
            raise WrongCloudError(
                f"customer {customer} (tenant {info.tenant_id}) is in the {other} cloud, and "
                f"this configuration targets the {cloud.name} cloud; each national cloud "
                "needs its own partner tenant, app registration and configuration",
                tenant=info.tenant_id,
            )
        region = info.region or "unknown"
        identity = self.config.identity_for_scope(region) if info.region else None
        if identity is None:
            configured = ", ".join(sorted(self.config.identities)) or "none"
            raise RegionNotConfiguredError(
                f"customer {customer} (tenant {info.tenant_id}) is in region {region}, and no "
                f"partner identity serves {region} (configured: {configured}); CSP apps work "
                f"only within their region: add a [regions.{region}] section with "
                "partner_tenant, client_id and a credential of the partner-managed app "
                f"registered in your {region} partner tenant",
                tenant=info.tenant_id,
                code="RegionNotConfigured",
                reason=f"no partner identity configured for region {region}",
            )
        return Route(
            customer=customer,
            tenant_id=info.tenant_id,
            region=info.region or region,
            cloud=cloud,
            identity=identity,
        )


def requests_could_not_connect(exc: BaseException) -> bool:
    """requests found nothing to connect to (urllib3's NewConnectionError, or its subclass
    NameResolutionError: refused, no route, no such name), as opposed to a proxy, TLS or timeout
    failure. Told by class name: urllib3 is requests' dependency, not ours."""
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return type(exc) is requests.ConnectionError and any(
        kind.__name__ == "NewConnectionError" for kind in type(reason).__mro__
    )


def _connect_failed(exc: BaseException) -> bool:
    """No connection could be made at all, by requests or by aiohttp."""
    if isinstance(exc, requests.RequestException):
        return requests_could_not_connect(exc)
    from aiohttp import ClientConnectorError, ClientSSLError  # as _fetch_async: loaded by now

    return isinstance(exc, ClientConnectorError) and not isinstance(exc, ClientSSLError)
