"""An async Microsoft Graph client for many customer tenants at once.

One aiohttp session (one connection pool, capped per host) serves every tenant; each call names the
customer tenant it is for and the :class:`TokenSource` supplies that tenant's token. Responses are
parsed with orjson into plain dicts: the fleet job moves millions of objects and per-object models
would cost more CPU than the network (DESIGN.md, "Graph").

Per request, in order: the CSP scope guard (:mod:`cspgraph.graph.scope`) refuses what a partner
app may not call; the :class:`~cspgraph.graph.limits.GraphLimiter` waits until the tenant's and the
app's budgets allow it; the answer is classified through :mod:`cspgraph.graph.errors`. Transient
failures are retried (decimal ``Retry-After``, else full-jitter backoff), a rejected token once with
a fresh one, and a propagating failure (a young partner relationship) only when a
:class:`PropagationPolicy` says how long to keep waiting for it.
"""

from __future__ import annotations

import asyncio
import builtins
import random
import re
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from cspgraph import __version__
from cspgraph.graph import scope
from cspgraph.graph.errors import (
    CspGraphError,
    ErrorClass,
    NeedsPersonError,
    PropagatingError,
    TransientError,
    classify_graph_error,
    error_from_rule,
)
from cspgraph.graph.limits import GraphLimiter, Limiter, RequestCost, request_cost
from cspgraph.graph.scope import Family, Operation

JsonObject = dict[str, Any]
Sleep = Callable[[float], Awaitable[None]]

MAX_BATCH = 20  # Graph's limit per $batch request (wire-facts §2.6)
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
class Page:
    """One page of a collection; ``next_link``/``delta_link`` are the checkpoints to save."""

    items: builtins.list[JsonObject]
    next_link: str | None
    delta_link: str | None
    count: int | None  # @odata.count, first page only and only when asked for


@dataclass(frozen=True, slots=True)
class BatchRequest:
    id: str
    method: str
    url: str  # relative to the version root: "/users?$select=id"
    body: Any = None
    headers: Mapping[str, str] | None = None
    depends_on: Sequence[str] = ()


@dataclass(slots=True)
class BatchResponse:
    id: str
    status: int
    headers: dict[str, str]
    body: Any
    tenant: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> CspGraphError | None:
        """The classified failure of this item, or None when it succeeded."""
        if self.ok:
            return None
        code, message, request_id = _error_fields(self.body)
        rule = classify_graph_error(self.status, code, message)
        return error_from_rule(
            rule,
            f"$batch item {self.id}: {message or f'HTTP {self.status}'}",
            code=code,
            status=self.status,
            tenant=self.tenant,
            request_id=request_id or _header(self.headers, "request-id"),
        )

    def header(self, name: str) -> str | None:
        """A response header of this item, looked up case-insensitively."""
        return _header(self.headers, name)

    def raise_for_status(self) -> None:
        error = self.error()
        if error is not None:
            raise error


@dataclass(frozen=True, slots=True)
class _Prepared:
    url: str
    operation: Operation
    cost: RequestCost
    headers: Mapping[str, str]


@dataclass(slots=True)
class _Reply:
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


class GraphClient:
    """Microsoft Graph for many tenants over one connection pool; use ``async with``."""

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
        ``limiter``: shared budgets; None gives this client its own at Graph's published sizes,
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
        self.limiter: Limiter = limiter if limiter is not None else GraphLimiter()
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

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> GraphClient:
        self._ensure_session()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

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

    # -- reads -------------------------------------------------------------------------------------

    async def get(
        self,
        tenant: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        version: str = "v1.0",
        headers: Mapping[str, str] | None = None,
    ) -> JsonObject:
        prepared = self._prepare("GET", path, params, version, headers)
        reply = await self._call(tenant, "GET", prepared, None)
        return _json(reply.body) or {}

    async def count(
        self,
        tenant: str,
        path: str,
        *,
        filter: str | None = None,
        search: str | None = None,
        version: str = "v1.0",
    ) -> int:
        """``GET {path}/$count`` (always an advanced query: ConsistencyLevel is sent)."""
        params = _query_params(filter=filter, search=search)
        prepared = self._prepare("GET", path.rstrip("/") + "/$count", params, version, None)
        reply = await self._call(tenant, "GET", prepared, None)
        return int(reply.body.decode("utf-8-sig").strip())  # Graph prefixes a BOM

    async def pages(
        self,
        tenant: str,
        path: str,
        *,
        select: Sequence[str] | None = None,
        filter: str | None = None,
        top: int | None = None,
        count: bool = False,
        search: str | None = None,
        orderby: str | Sequence[str] | None = None,
        expand: str | None = None,
        params: Mapping[str, Any] | None = None,
        version: str = "v1.0",
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Page]:
        """Every page of a collection, following ``@odata.nextLink`` verbatim.

        ``path`` may also be an absolute URL: a ``next_link`` or ``delta_link`` saved from an
        earlier :class:`Page`, to resume a listing or run the next delta round. Query options are
        then already inside the URL and must not be passed again.
        """
        query = _query_params(
            select=select, filter=filter, top=top, count=count, search=search,
            orderby=orderby, expand=expand, extra=params,
        )  # fmt: skip
        if _is_absolute(path) and query:
            raise ValueError("a saved nextLink/deltaLink already carries its query options")
        prepared = self._prepare("GET", path, query, version, headers)
        url: str | None = prepared.url
        while url is not None:
            reply = await self._call(tenant, "GET", prepared, None, url=url)
            data = _json(reply.body)
            if not isinstance(data, dict):
                raise self._unexpected(tenant, "GET", url, reply, "a collection page")
            items = data.get("value")
            if not isinstance(items, builtins.list):
                raise self._unexpected(tenant, "GET", url, reply, "a collection page")
            next_link = data.get("@odata.nextLink")
            if next_link is not None:
                if next_link == url:
                    raise self._unexpected(tenant, "GET", url, reply, "a nextLink that moves on")
                self._check_origin(next_link)
            count_value = data.get("@odata.count")
            self.stats.objects += len(items)
            yield Page(items, next_link, data.get("@odata.deltaLink"), count_value)
            url = next_link

    async def list(
        self,
        tenant: str,
        path: str,
        *,
        select: Sequence[str] | None = None,
        filter: str | None = None,
        top: int | None = None,
        count: bool = False,
        search: str | None = None,
        orderby: str | Sequence[str] | None = None,
        expand: str | None = None,
        params: Mapping[str, Any] | None = None,
        version: str = "v1.0",
        headers: Mapping[str, str] | None = None,
        page_callback: Callable[[Page], None] | None = None,
    ) -> AsyncIterator[JsonObject]:
        """Every item of a collection, across all its pages (see :meth:`pages`)."""
        async for page in self.pages(
            tenant, path, select=select, filter=filter, top=top, count=count, search=search,
            orderby=orderby, expand=expand, params=params, version=version, headers=headers,
        ):  # fmt: skip
            if page_callback is not None:
                page_callback(page)
            for item in page.items:
                yield item

    # -- writes ------------------------------------------------------------------------------------

    async def post(
        self,
        tenant: str,
        path: str,
        json: Any = None,
        *,
        version: str = "v1.0",
        headers: Mapping[str, str] | None = None,
    ) -> JsonObject | None:
        return await self._write(tenant, "POST", path, json, version, headers)

    async def patch(
        self,
        tenant: str,
        path: str,
        json: Any = None,
        *,
        version: str = "v1.0",
        headers: Mapping[str, str] | None = None,
    ) -> JsonObject | None:
        return await self._write(tenant, "PATCH", path, json, version, headers)

    async def put(
        self,
        tenant: str,
        path: str,
        json: Any = None,
        *,
        version: str = "v1.0",
        headers: Mapping[str, str] | None = None,
    ) -> JsonObject | None:
        return await self._write(tenant, "PUT", path, json, version, headers)

    async def delete(
        self,
        tenant: str,
        path: str,
        *,
        version: str = "v1.0",
        headers: Mapping[str, str] | None = None,
    ) -> JsonObject | None:
        return await self._write(tenant, "DELETE", path, None, version, headers)

    async def _write(
        self,
        tenant: str,
        method: str,
        path: str,
        payload: Any,
        version: str,
        headers: Mapping[str, str] | None,
    ) -> JsonObject | None:
        prepared = self._prepare(method, path, None, version, headers)
        body = None if payload is None else orjson.dumps(payload)
        reply = await self._call(tenant, method, prepared, body)
        data = _json(reply.body)
        return data if isinstance(data, dict) else None

    # -- $batch ------------------------------------------------------------------------------------

    async def batch(
        self, tenant: str, requests: Sequence[BatchRequest], version: str = "v1.0"
    ) -> builtins.list[BatchResponse]:
        """Run ``requests`` through ``$batch``; one response per request, in the same order.

        More than 20 are split into several envelopes, keeping every ``depends_on`` chain in one
        envelope. Items answered 429 or 5xx are sent again on their own (with the items that
        failed 424 only because of them), after the longest ``Retry-After`` among them, up to
        ``max_retries`` rounds; whatever still fails is returned as it was answered.
        """
        items = [self._batch_item(r, version) for r in requests]
        _check_batch_ids(items)
        results: dict[str, BatchResponse] = {}
        pending = items
        for round_number in range(self.max_retries + 1):
            answered = await self._send_batch_round(tenant, pending, version)
            results.update(answered)
            retry_ids = _ids_to_retry(pending, answered)
            if not retry_ids or round_number == self.max_retries:
                break
            delay = max(
                self._retry_delay(answered[i].header, round_number)
                for i in retry_ids
                if answered[i].status != 424
            )
            self.stats.retries += len(retry_ids)
            await self._sleep(delay)
            pending = [_without_settled_dependencies(i, retry_ids) for i in pending
                       if i.key in retry_ids]  # fmt: skip
        return [results[item.key] for item in items]

    def _batch_item(self, request: BatchRequest, version: str) -> _BatchItem:
        relative = self._relative_url(request.url, version)
        operation = scope.resolve(request.method, relative)
        if not operation.in_scope and not self.allow_any_resource:
            raise scope.scope_error(request.method, relative)
        query = _query_of(relative)
        cost = request_cost(operation, query.keys(), _top(query))
        return _BatchItem(request, relative, cost)

    async def _send_batch_round(
        self, tenant: str, items: Sequence[_BatchItem], version: str
    ) -> dict[str, BatchResponse]:
        chunks = _chunk_by_dependencies(items)
        outcomes = await asyncio.gather(
            *(self._send_batch_chunk(tenant, chunk, version) for chunk in chunks),
            return_exceptions=True,
        )
        answered: dict[str, BatchResponse] = {}
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            answered.update(outcome)
        return answered

    async def _send_batch_chunk(
        self, tenant: str, chunk: Sequence[_BatchItem], version: str
    ) -> dict[str, BatchResponse]:
        envelope = {"requests": [item.wire() for item in chunk]}
        prepared = _Prepared(
            url=f"{self._base}/{version}/$batch",
            operation=scope.resolve("POST", "/$batch"),
            cost=RequestCost(Family.OTHER, 1, 0),
            headers={**self._headers, "Content-Type": "application/json"},
        )
        costs = tuple(item.cost for item in chunk)
        idempotent = all(item.request.method.upper() == "GET" for item in chunk)
        self.stats.batch_items += len(chunk)
        reply = await self._call(
            tenant, "POST", prepared, orjson.dumps(envelope), costs=costs, idempotent=idempotent
        )
        data = _json(reply.body)
        responses = data.get("responses") if isinstance(data, dict) else None
        if not isinstance(responses, builtins.list):
            raise self._unexpected(tenant, "POST", prepared.url, reply, "a $batch answer")
        by_key = {item.key: item for item in chunk}
        answered: dict[str, BatchResponse] = {}
        for raw in responses:
            if not isinstance(raw, dict):
                continue
            item = by_key.get(str(raw.get("id", "")).lower())
            if item is None:
                continue  # an id we never sent: nothing to attach it to
            response = BatchResponse(
                id=item.request.id,
                status=int(raw.get("status", 0)),
                headers={str(k): str(v) for k, v in (raw.get("headers") or {}).items()},
                body=raw.get("body"),
                tenant=tenant,
            )
            self._learn_from_item(tenant, item.cost, response)
            answered[item.key] = response
        for item in chunk:
            if item.key not in answered:
                raise self._unexpected(
                    tenant, "POST", prepared.url, reply, f"an answer for item {item.request.id}"
                )
        return answered

    def _learn_from_item(self, tenant: str, cost: RequestCost, response: BatchResponse) -> None:
        if response.status == 429:
            self.stats.throttled += 1
            delay = _retry_after(_header(response.headers, "Retry-After"))
            self.limiter.record_throttled(
                tenant,
                cost,
                delay=delay if delay is not None else self._backoff_base,
                throttle_scope=_header(response.headers, "x-ms-throttle-scope"),
            )
        elif response.ok:
            self.limiter.record_response(
                tenant,
                cost,
                resource_units=_float(_header(response.headers, "x-ms-resource-unit")),
                limit_percentage=_float(
                    _header(response.headers, "x-ms-throttle-limit-percentage")
                ),
            )

    # -- request preparation -----------------------------------------------------------------------

    def _prepare(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        version: str,
        headers: Mapping[str, str] | None,
    ) -> _Prepared:
        absolute = _is_absolute(path)
        if absolute:
            self._check_origin(path)  # a saved nextLink/deltaLink: used verbatim
            query = _query_of(path)
            operation = scope.resolve(method, urlsplit(path).path)
        else:
            bare, _, inline = ("/" + path.lstrip("/")).partition("?")
            query = _query_of("?" + inline)
            query.update({name: _query_text(value) for name, value in (params or {}).items()})
            operation = scope.resolve(method, bare)
        if not operation.in_scope and not self.allow_any_resource:
            raise scope.scope_error(method, path)
        merged = dict(self._headers)
        if operation.family is Family.IDENTITY and _needs_eventual(operation, query):
            merged["ConsistencyLevel"] = "eventual"
            if not absolute and _needs_count(query) and not operation.shape.endswith("$count"):
                query.setdefault("$count", "true")
        if headers:
            merged.update(headers)
        if absolute:
            url = path
        else:
            url = f"{self._base}/{version}{_quote_path(bare)}"
            if query:
                url += "?" + _encode_query(query)
        cost = request_cost(operation, query.keys(), _top(query))
        return _Prepared(url, operation, cost, merged)

    def _check_origin(self, url: str) -> None:
        # The bearer token goes wherever the URL points: never outside the configured Graph host.
        parsed = URL(url, encoded=True)
        if (parsed.scheme, parsed.host, parsed.port) != self._origin:
            raise ValueError(
                f"refusing to send a Graph token to {parsed.scheme}://{parsed.host}:{parsed.port}; "
                f"the client talks to {self._base}"
            )

    def _relative_url(self, url: str, version: str) -> str:
        if _is_absolute(url):
            self._check_origin(url)
            if url.startswith(self._base):
                url = url[len(self._base) :]
            else:
                parts = urlsplit(url)
                url = parts.path + (f"?{parts.query}" if parts.query else "")
        if not url.startswith("/"):
            url = "/" + url
        for known in ("/v1.0/", "/beta/"):
            if url.startswith(known):
                if known != f"/{version}/":
                    raise ValueError(f"a {version} $batch cannot carry {url!r}")
                url = url[len(known) - 1 :]
        return url.replace(" ", "%20")  # Graph parses item URLs as URLs: no bare spaces

    # -- sending, retrying, classifying ------------------------------------------------------------

    async def _call(
        self,
        tenant: str,
        method: str,
        prepared: _Prepared,
        body: bytes | None,
        *,
        url: str | None = None,
        costs: tuple[RequestCost, ...] | None = None,
        idempotent: bool | None = None,
    ) -> _Reply:
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
    ) -> _Reply:
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
                    reply = _Reply(response.status, response.headers, payload)
            except aiohttp.ClientSSLError as exc:
                # Retrying cannot fix a certificate we do not trust; a person must (ca_bundle).
                raise NeedsPersonError(
                    f"{method} {_path(url)}: TLS certificate verification failed: {exc}",
                    error_class=ErrorClass.NEEDS_PERSON,
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
                    error_class=ErrorClass.TRANSIENT,
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
        reply: _Reply,
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
            retry_after = _retry_after(header("Retry-After") or header("retry-after"))
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

    def _learn(self, tenant: str, cost: RequestCost, reply: _Reply) -> None:
        # Every answer counts: a clean one is what lets a slowed-down tenant speed up again.
        headers = reply.headers
        self.limiter.record_response(
            tenant,
            cost,
            resource_units=_float(headers.get("x-ms-resource-unit")),
            limit_percentage=_float(headers.get("x-ms-throttle-limit-percentage")),
        )

    def _error(
        self,
        tenant: str,
        method: str,
        url: str,
        reply: _Reply,
        client_request_id: str,
        state: _CallState,
    ) -> CspGraphError:
        code, message, request_id = _error_fields(_json(reply.body))
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
        self, tenant: str, method: str, url: str, reply: _Reply, wanted: str
    ) -> CspGraphError:
        return TransientError(
            f"{method} {_path(url)}: expected {wanted}, got HTTP {reply.status} "
            f"({len(reply.body)} bytes)",
            error_class=ErrorClass.TRANSIENT,
            status=reply.status,
            tenant=tenant,
            request_id=reply.headers.get("request-id"),
            reason="Microsoft Graph answered in an unexpected shape",
        )


# -- $batch helpers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _BatchItem:
    request: BatchRequest
    url: str
    cost: RequestCost
    depends_on: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.depends_on and self.request.depends_on:
            object.__setattr__(self, "depends_on", tuple(self.request.depends_on))

    @property
    def key(self) -> str:
        return self.request.id.lower()  # Graph treats batch ids case-insensitively

    def wire(self) -> JsonObject:
        request = self.request
        item: JsonObject = {"id": request.id, "method": request.method.upper(), "url": self.url}
        headers = dict(request.headers or {})
        if request.body is not None:
            item["body"] = request.body
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"  # Graph requires it with a body
        if headers:
            item["headers"] = headers
        if self.depends_on:
            item["dependsOn"] = builtins.list(self.depends_on)
        return item


def _check_batch_ids(items: Sequence[_BatchItem]) -> None:
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        raise ValueError("$batch request ids must be unique (case-insensitively)")
    known = set(keys)
    for item in items:
        for dependency in item.depends_on:
            if dependency.lower() not in known:
                raise ValueError(f"$batch item {item.request.id} depends on unknown {dependency}")


def _chunk_by_dependencies(items: Sequence[_BatchItem]) -> builtins.list[builtins.list[_BatchItem]]:
    """Envelopes of at most 20 items; items linked by dependsOn always share one."""
    parent: dict[str, str] = {item.key: item.key for item in items}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for item in items:
        for dependency in item.depends_on:
            if dependency.lower() in parent:
                parent[root(item.key)] = root(dependency.lower())
    groups: dict[str, builtins.list[_BatchItem]] = {}
    for item in items:
        groups.setdefault(root(item.key), []).append(item)
    chunks: builtins.list[builtins.list[_BatchItem]] = []
    current: builtins.list[_BatchItem] = []
    for group in groups.values():
        if len(group) > MAX_BATCH:
            raise ValueError(f"a dependsOn chain of {len(group)} requests exceeds {MAX_BATCH}")
        if len(current) + len(group) > MAX_BATCH:
            chunks.append(current)
            current = []
        current.extend(group)
    if current:
        chunks.append(current)
    return chunks


def _retryable_item(item: _BatchItem, response: BatchResponse) -> bool:
    if response.status in (429, 503, 504):
        return True
    return response.status >= 500 and item.request.method.upper() == "GET"


def _ids_to_retry(items: Sequence[_BatchItem], answered: Mapping[str, BatchResponse]) -> set[str]:
    """Throttled/5xx items, plus the 424s that failed only because one of those did."""
    retry = {item.key for item in items if _retryable_item(item, answered[item.key])}
    changed = bool(retry)
    while changed:
        changed = False
        for item in items:
            if item.key in retry or answered[item.key].status != 424:
                continue
            if any(d.lower() in retry for d in item.depends_on):
                retry.add(item.key)
                changed = True
    # A round that would resend only 424s has nothing to wait for: nothing to retry then.
    if all(answered[key].status == 424 for key in retry):
        return set()
    return retry


def _without_settled_dependencies(item: _BatchItem, retry_ids: set[str]) -> _BatchItem:
    # Dependencies that already succeeded are not in the next envelope; Graph rejects dangling ids.
    kept = tuple(d for d in item.depends_on if d.lower() in retry_ids)
    if kept == item.depends_on:
        return item
    return _BatchItem(item.request, item.url, item.cost, kept)


# -- query strings ---------------------------------------------------------------------------------

# Characters left as they are inside an OData query value; everything else is percent-encoded
# (a space as %20: Graph does not read "+" as a space in every option).
_QUERY_SAFE = "$,'()*:@/!"
_PATH_SAFE = "/$'()=,:@!*;+%"
_ADVANCED_FILTER = re.compile(r"\b(?:ne|not)\b|\bendswith\s*\(|/\$count\b", re.IGNORECASE)
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


def _query_params(
    *,
    select: Sequence[str] | None = None,
    filter: str | None = None,
    top: int | None = None,
    count: bool = False,
    search: str | None = None,
    orderby: str | Sequence[str] | None = None,
    expand: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if select:
        params["$select"] = ",".join(select)
    if filter:
        params["$filter"] = filter
    if top is not None:
        params["$top"] = top
    if count:
        params["$count"] = True
    if search:
        # Graph wants the search clause in double quotes: $search="displayName:room".
        params["$search"] = search if search.startswith('"') else f'"{search}"'
    if orderby:
        params["$orderby"] = orderby if isinstance(orderby, str) else ",".join(orderby)
    if expand:
        params["$expand"] = expand
    if extra:
        params.update(extra)
    return params


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, builtins.list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _encode_query(query: Mapping[str, str]) -> str:
    return "&".join(
        f"{quote(name, safe='$')}={quote(text, safe=_QUERY_SAFE)}" for name, text in query.items()
    )


def _quote_path(path: str) -> str:
    """Percent-encode what cannot stand in a path (a guest UPN's '#EXT#'), keep what can.

    '%' stays as it is, so a caller that already encoded its path is not encoded twice.
    """
    return quote(path, safe=_PATH_SAFE)


def _query_of(url: str) -> dict[str, str]:
    _, _, query = url.partition("?")
    return dict(parse_qsl(query, keep_blank_values=True)) if query else {}


def _needs_eventual(operation: Operation, query: Mapping[str, str]) -> bool:
    """Directory advanced queries need ``ConsistencyLevel: eventual`` (wire-facts §2.4)."""
    if "$count" in operation.shape or "$search" in query:
        return True
    if str(query.get("$count", "")).lower() == "true":
        return True
    return _needs_count(query)


def _needs_count(query: Mapping[str, str]) -> bool:
    """Advanced filters (and $filter with $orderby) also need ``$count=true``."""
    filter_text = query.get("$filter")
    if not filter_text:
        return False
    if "$orderby" in query:
        return True
    return bool(_ADVANCED_FILTER.search(_STRING_LITERAL.sub("''", str(filter_text))))


def _top(query: Mapping[str, str]) -> int | None:
    value = query.get("$top")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# -- small parsers ---------------------------------------------------------------------------------


def _is_absolute(path: str) -> bool:
    return path.startswith(("https://", "http://"))


def _path(url: str) -> str:
    """A URL without its query, which may carry personal data (names in a $filter)."""
    return urlsplit(url).path if _is_absolute(url) else url.split("?", 1)[0]


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _error_fields(data: Any) -> tuple[str | None, str | None, str | None]:
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


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup in a $batch item's plain header dict."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: decimal seconds (Graph) or an HTTP date."""
    if value is None:
        return None
    seconds = _float(value.strip())
    if seconds is None:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
