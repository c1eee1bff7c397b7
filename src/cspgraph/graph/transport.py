"""Sending one request to Microsoft Graph for one tenant, until it succeeds or must not be retried.

:class:`GraphTransport` is the lower half of :class:`~cspgraph.graph.client.GraphClient` (which
adds the Graph API on top: URLs, paging, writes, ``$batch``). It owns the aiohttp session, the
:class:`TokenSource` and the :class:`~cspgraph.graph.limits.Limiter`. Per request, in order: wait
until the tenant's and the app's budgets allow it, attach the tenant's token, send, and classify a
failed answer through :mod:`cspgraph.http.errors`. Transient failures are retried (decimal
``Retry-After``, else full-jitter backoff), a rejected token once with a fresh one, and a
propagating failure (a young partner relationship) only when a :class:`PropagationPolicy` says how
long to keep waiting for it.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from cspgraph import __version__
from cspgraph.graph.limits import GraphLimiter, Limiter, RequestCost
from cspgraph.graph.query import is_absolute
from cspgraph.graph.scope import Operation
from cspgraph.http.errors import (
    CspGraphError,
    ErrorClass,
    NeedsPersonError,
    PropagatingError,
    TransientError,
    classify_graph_error,
    error_from_rule,
)

JsonObject = dict[str, Any]
Sleep = Callable[[float], Awaitable[None]]

# Graph's own gateway gives up on a request after about 100 s.
DEFAULT_TIMEOUT = 100.0
# A Retry-After beyond this is treated as this: one answer must not park a worker for hours.
MAX_RETRY_AFTER = 3600.0


class TokenSource(Protocol):
    async def get_token(self, tenant: str, *, fresh: bool = False) -> str:
        """An access token for Graph in ``tenant`` (a customer tenant GUID).

        ``fresh=True``: evict this tenant's cached token and acquire a new one — a token keeps the
        claims it was born with, so after consent or a relationship change only a new one helps.
        """
        ...


def app_of(tokens: object) -> Callable[[str], str | None] | None:
    """The token source's "which app (client id) serves this tenant", when it has one.

    Graph's app-wide budgets are per app; a source serving several apps (a
    :class:`~cspgraph.identity.TokenProvider` with one partner identity per region) names a
    tenant's app with ``app_for(tenant)`` once it has routed the tenant, without any I/O. Pass
    the result to :class:`~cspgraph.graph.limits.GraphLimiter` (``app_of=``) when building a
    limiter to share.
    """
    found = getattr(tokens, "app_for", None)
    return found if callable(found) else None


@dataclass(frozen=True)
class PropagationPolicy:
    """How long to keep retrying while a partner relationship or consent propagates.

    Graph's CSP guidance: after creating a customer, access is denied for up to 3 minutes; on an
    authorization error wait 60 s more and get a new token (wire-facts §5.2). The client waits
    ``initial_wait`` after the first propagating answer of a call, then ``retry_every`` between
    later ones, always with a fresh token, until ``budget`` seconds of waiting are spent; then the
    :class:`PropagatingError` is raised. ``on_wait`` is told about every wait (for progress UIs).
    ``applies_to`` limits the policy to some tenants (those whose relationship is young): for the
    others a denial is more likely a missing permission, and is raised at once.
    """

    initial_wait: float = 180.0
    retry_every: float = 60.0
    budget: float = 900.0
    on_wait: Callable[[PropagatingError, float], None] | None = None
    applies_to: Callable[[str], bool] | None = None

    def next_wait(self, attempt: int, waited: float) -> float | None:
        """Seconds to wait before retry number ``attempt`` (0-based), or None to give up."""
        wait = self.initial_wait if attempt == 0 else self.retry_every
        return wait if waited + wait <= self.budget else None


@dataclass(slots=True)
class GraphStats:
    """Counters for benchmarks and progress displays; cheap to bump on the hot path."""

    requests: int = 0  # HTTP requests sent, retries and $batch envelopes included
    batch_items: int = 0  # requests sent inside $batch envelopes
    throttled: int = 0  # 429 answers seen, $batch items included
    retries: int = 0  # requests (or $batch items) sent again
    errors: int = 0  # calls that ended in an exception
    bytes_sent: int = 0
    bytes_received: int = 0  # after decompression
    objects: int = 0  # collection items handed to callers by pages()/list()

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request ready to send: its URL, what it is (for the limiter) and its headers."""

    url: str
    operation: Operation
    cost: RequestCost
    headers: Mapping[str, str]


@dataclass(slots=True)
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass(slots=True)
class _CallState:
    """What one logical call has spent on retries so far."""

    transient: int = 0
    auth_refreshed: bool = False
    propagation_attempts: int = 0
    propagation_waited: float = 0.0
    fresh: bool = False
    token_generation: int = 0


class GraphTransport:
    """Sends prepared requests to Graph for many tenants over one connection pool."""

    def __init__(
        self,
        tokens: TokenSource,
        *,
        graph_url: str = "https://graph.microsoft.com",
        ca_bundle: str | None = None,
        limiter: Limiter | None = None,
        allow_any_resource: bool = False,
        max_retries: int = 6,
        throttle_priority: str | None = None,
        user_agent: str = f"cspgraph/{__version__}",
        sleep: Sleep = asyncio.sleep,
        propagation: PropagationPolicy | None = None,
        connection_limit: int = 100,
        per_host_limit: int = 30,
        timeout: float = DEFAULT_TIMEOUT,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        rng: random.Random | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """
        ``limiter``: shared budgets; None gives this client its own at Graph's published sizes
        (per app when ``tokens`` can tell a tenant's app: see :func:`app_of`),
        :class:`~cspgraph.graph.limits.NoLimiter` turns client-side limiting off.
        ``per_host_limit``: connections to Graph at most (CIPP uses 30).
        ``session``: an existing aiohttp session to use (then its owner closes it, and
        ``ca_bundle``/limits/``timeout`` are that session's business).
        """
        base = URL(graph_url.rstrip("/"))
        if not base.absolute or base.scheme not in ("https", "http"):
            raise ValueError(f"graph_url must be an absolute http(s) URL, got {graph_url!r}")
        self._base = str(base)
        self._origin = (base.scheme, base.host, base.port)
        self._tokens = tokens
        self._ca_bundle = ca_bundle
        self.limiter: Limiter = (
            limiter if limiter is not None else GraphLimiter(app_of=app_of(tokens))
        )
        self.allow_any_resource = allow_any_resource
        self.max_retries = max_retries
        self.propagation = propagation
        self._sleep = sleep
        self._rng = rng or random.Random()  # jitter, not secrets
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._connection_limit = connection_limit
        self._per_host_limit = per_host_limit
        self._timeout = timeout
        self._session = session
        self._owns_session = session is None
        self._headers: dict[str, str] = {"Accept": "application/json", "User-Agent": user_agent}
        if throttle_priority is not None:
            self._headers["x-ms-throttle-priority"] = throttle_priority
        self.stats = GraphStats()
        # Per tenant, how many fresh tokens were fetched; lets concurrent calls that failed on
        # the same old token share one refresh instead of each evicting the cache again.
        self._token_generation: dict[str, int] = {}
        self._refreshing: dict[str, asyncio.Task[str]] = {}
        # GraphClient's memo of prepared requests by their arguments; a Prepared is never mutated.
        self._prepared: dict[tuple[Any, ...], Prepared] = {}

    # -- lifecycle ---------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            context = ssl.create_default_context(cafile=self._ca_bundle)
            connector = aiohttp.TCPConnector(
                limit=self._connection_limit, limit_per_host=self._per_host_limit, ssl=context
            )
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=min(self._timeout, 30.0), sock_read=self._timeout
            )
            # trust_env stays False: no proxy or CA bundle from the environment (client-traps §3).
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._session

    # -- sending, retrying, classifying ------------------------------------------------------------

    async def _call(
        self,
        tenant: str,
        method: str,
        prepared: Prepared,
        body: bytes | None,
        *,
        url: str | None = None,
        costs: tuple[RequestCost, ...] | None = None,
        idempotent: bool | None = None,
    ) -> Reply:
        try:
            return await self._send(
                tenant, method, url or prepared.url, prepared.headers, body,
                costs or (prepared.cost,), method != "POST" if idempotent is None else idempotent,
            )  # fmt: skip
        except CspGraphError:
            self.stats.errors += 1
            raise

    async def _send(
        self,
        tenant: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        costs: tuple[RequestCost, ...],
        idempotent: bool,
    ) -> Reply:
        state = _CallState()
        target = URL(url, encoded=True)  # verbatim: a nextLink's skiptoken must not be re-quoted
        session = self._ensure_session()
        while True:
            wait = 0.0
            for cost in costs:
                wait = max(wait, self.limiter.reserve(tenant, cost))
            if wait > 0.0:
                await self._sleep(wait)
            try:
                token = await self._get_token(tenant, state)
            except PropagatingError as token_error:
                # The token endpoint too says "not yet" while consent propagates (AADSTS700016).
                if await self._wait_for_propagation(token_error, state, tenant):
                    continue
                raise
            request_id = str(uuid.uuid4())
            send_headers = {
                **headers,
                "Authorization": f"Bearer {token}",
                "client-request-id": request_id,
            }
            if body is not None:
                send_headers.setdefault("Content-Type", "application/json")
                self.stats.bytes_sent += len(body)
            self.stats.requests += 1
            try:
                async with session.request(
                    method, target, headers=send_headers, data=body, allow_redirects=False
                ) as response:
                    payload = await response.read()
                    reply = Reply(response.status, response.headers, payload)
            except aiohttp.ClientSSLError as exc:
                # Retrying cannot fix a certificate we do not trust; a person must (ca_bundle).
                raise NeedsPersonError(
                    f"{method} {_path(url)}: TLS certificate verification failed: {exc}",
                    tenant=tenant,
                    reason="the Graph endpoint's certificate is not trusted: check ca_bundle",
                ) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                # A refused connection never reached Graph; anything later might have.
                safe = idempotent or isinstance(exc, aiohttp.ClientConnectorError)
                if safe and state.transient < self.max_retries:
                    delay = self._retry_delay(None, state.transient)
                    await self._retry_after_failure(state, delay)
                    continue
                raise TransientError(
                    f"{method} {_path(url)}: {type(exc).__name__}: {exc}",
                    tenant=tenant,
                    request_id=request_id,
                    reason="the connection to Microsoft Graph failed",
                ) from exc
            self.stats.bytes_received += len(payload)
            if reply.status < 300:
                if len(costs) == 1:
                    self._learn(tenant, costs[0], reply)
                return reply
            error = self._error(tenant, method, url, reply, request_id, state)
            if reply.status == 429:
                self.stats.throttled += 1
            if not await self._should_retry(tenant, error, reply, costs, idempotent, state):
                raise error

    async def _should_retry(
        self,
        tenant: str,
        error: CspGraphError,
        reply: Reply,
        costs: tuple[RequestCost, ...],
        idempotent: bool,
        state: _CallState,
    ) -> bool:
        """Decide, and wait for, the next attempt; False to give up with ``error``."""
        if error.error_class is ErrorClass.TRANSIENT:
            # A 429 or 503/504 was refused before any work; other failures may have done some.
            if not (idempotent or reply.status in (429, 503, 504)):
                return False
            if state.transient >= self.max_retries:
                return False
            delay = self._retry_delay(reply.headers.get, state.transient)
            if reply.status == 429:
                # Before sleeping: the pause is measured from now, when Graph said it.
                for cost in costs:
                    self.limiter.record_throttled(
                        tenant, cost, delay=delay,
                        throttle_scope=reply.headers.get("x-ms-throttle-scope"),
                    )  # fmt: skip
            await self._retry_after_failure(state, delay)
            return True
        if error.code == "InvalidAuthenticationToken" and not state.auth_refreshed:
            state.auth_refreshed = True
            state.fresh = True
            self.stats.retries += 1
            return True
        if isinstance(error, PropagatingError):
            return await self._wait_for_propagation(error, state, tenant)
        return False

    async def _wait_for_propagation(
        self, error: PropagatingError, state: _CallState, tenant: str
    ) -> bool:
        """Wait as the propagation policy says, then retry with a fresh token; False: give up."""
        policy = self.propagation
        if policy is None or (policy.applies_to is not None and not policy.applies_to(tenant)):
            return False
        wait = policy.next_wait(state.propagation_attempts, state.propagation_waited)
        if wait is None:
            return False
        if policy.on_wait is not None:
            policy.on_wait(error, wait)
        state.propagation_attempts += 1
        state.propagation_waited += wait
        state.fresh = True
        self.stats.retries += 1
        await self._sleep(wait)
        return True

    async def _retry_after_failure(self, state: _CallState, delay: float) -> None:
        state.transient += 1
        self.stats.retries += 1
        await self._sleep(delay)

    def _retry_delay(self, header: Callable[[str], str | None] | None, attempt: int) -> float:
        """Graph's Retry-After when it gave one, else full-jitter exponential backoff."""
        if header is not None:
            retry_after = parse_retry_after(header("Retry-After") or header("retry-after"))
            if retry_after is not None:
                return retry_after
        return self._rng.uniform(0.0, min(self._backoff_cap, self._backoff_base * 2**attempt))

    async def _get_token(self, tenant: str, state: _CallState) -> str:
        if not state.fresh:
            state.token_generation = self._token_generation.get(tenant, 0)
            return await self._tokens.get_token(tenant)
        state.fresh = False
        if self._token_generation.get(tenant, 0) != state.token_generation:
            # Another call already replaced the token this call failed with.
            state.token_generation = self._token_generation.get(tenant, 0)
            return await self._tokens.get_token(tenant)
        refresh = self._refreshing.get(tenant)
        if refresh is None:
            refresh = asyncio.ensure_future(self._refresh_token(tenant))
            self._refreshing[tenant] = refresh
        token = await asyncio.shield(refresh)
        state.token_generation = self._token_generation.get(tenant, 0)
        return token

    async def _refresh_token(self, tenant: str) -> str:
        try:
            token = await self._tokens.get_token(tenant, fresh=True)
            self._token_generation[tenant] = self._token_generation.get(tenant, 0) + 1
            return token
        finally:
            del self._refreshing[tenant]

    def _learn(self, tenant: str, cost: RequestCost, reply: Reply) -> None:
        # Every answer counts: a clean one is what lets a slowed-down tenant speed up again.
        headers = reply.headers
        self.limiter.record_response(
            tenant,
            cost,
            resource_units=parse_float(headers.get("x-ms-resource-unit")),
            limit_percentage=parse_float(headers.get("x-ms-throttle-limit-percentage")),
        )

    def _error(
        self,
        tenant: str,
        method: str,
        url: str,
        reply: Reply,
        client_request_id: str,
        state: _CallState,
    ) -> CspGraphError:
        code, message, request_id = error_fields(parse_json(reply.body))
        if message is None and reply.body:
            message = reply.body[:200].decode("utf-8", "replace")
        rule = classify_graph_error(reply.status, code, message)
        tries = state.transient + int(state.auth_refreshed) + state.propagation_attempts
        after = f" after {tries} retries" if tries else ""
        return error_from_rule(
            rule,
            f"{method} {_path(url)} failed{after}: {message or f'HTTP {reply.status}'}",
            code=code,
            status=reply.status,
            tenant=tenant,
            request_id=request_id or reply.headers.get("request-id") or client_request_id,
        )

    def _unexpected(
        self, tenant: str, method: str, url: str, reply: Reply, wanted: str
    ) -> CspGraphError:
        return TransientError(
            f"{method} {_path(url)}: expected {wanted}, got HTTP {reply.status} "
            f"({len(reply.body)} bytes)",
            status=reply.status,
            tenant=tenant,
            request_id=reply.headers.get("request-id"),
            reason="Microsoft Graph answered in an unexpected shape",
        )


# -- reading answers -------------------------------------------------------------------------------


def _path(url: str) -> str:
    """A URL without its query, which may carry personal data (names in a $filter)."""
    return urlsplit(url).path if is_absolute(url) else url.split("?", 1)[0]


def parse_json(body: bytes) -> Any:
    """A response body as JSON; None when empty or not JSON."""
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def error_fields(data: Any) -> tuple[str | None, str | None, str | None]:
    """(code, message, request id) from a Graph error body: {"error": {"code", "message", …}}."""
    if not isinstance(data, dict):
        return None, None, None
    error = data.get("error")
    if isinstance(error, dict):
        inner = error.get("innerError") or error.get("innererror") or {}
        request_id = inner.get("request-id") if isinstance(inner, dict) else None
        return _str(error.get("code")), _str(error.get("message")), _str(request_id)
    if isinstance(error, str):  # an OAuth-shaped answer
        return error, _str(data.get("error_description")), None
    return None, None, None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def find_header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup in a $batch item's plain header dict."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def parse_float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: decimal seconds (Graph) or an HTTP date."""
    if value is None:
        return None
    seconds = parse_float(value.strip())
    if seconds is None:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
