"""An async Microsoft Graph client for many customer tenants at once.

One aiohttp session (one connection pool, capped per host) serves every tenant; each call names the
customer tenant it is for and the :class:`TokenSource` supplies that tenant's token. Responses are
parsed with orjson into plain dicts: the fleet job moves millions of objects and per-object models
would cost more CPU than the network (DESIGN.md, "Graph").

Per request, in order: the CSP scope guard (:mod:`cspgraph.graph.scope`) refuses what a partner
app may not call; the :class:`~cspgraph.graph.limits.GraphLimiter` waits until the tenant's and the
app's budgets allow it; the answer is classified through :mod:`cspgraph.http.errors`. Transient
failures are retried (decimal ``Retry-After``, else full-jitter backoff), a rejected token once with
a fresh one, and a propagating failure (a young partner relationship) only when a
:class:`PropagationPolicy` says how long to keep waiting for it.

This module is the Graph API surface (reads, paging, writes, ``$batch``, request preparation). The
client holds a :class:`~cspgraph.http.sender.Sender` for the sending, token refresh and retries
below it (what is particular to Graph there, its error bodies and throttling headers, is in
:mod:`cspgraph.graph.wire`); URL and OData query building is in :mod:`cspgraph.graph.query`;
``$batch`` requests, responses and their splitting in :mod:`cspgraph.graph.batch`. Their public
names are importable from here too.
"""

from __future__ import annotations

import asyncio
import builtins
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from yarl import URL

from cspgraph import __version__
from cspgraph.graph import scope
from cspgraph.graph.batch import (
    MAX_BATCH,
    BatchItem,
    BatchRequest,
    BatchResponse,
    check_batch_ids,
    chunk_by_dependencies,
    ids_to_retry,
    without_settled_dependencies,
)
from cspgraph.graph.limits import GraphLimiter, Limiter, RequestCost, request_cost
from cspgraph.graph.query import (
    encode_query,
    is_absolute,
    needs_count,
    needs_eventual,
    query_of,
    query_params,
    query_text,
    quote_path,
    top_of,
)
from cspgraph.graph.scope import Family
from cspgraph.graph.wire import (
    DEFAULT_TIMEOUT,
    GRAPH,
    GraphStats,
    JsonObject,
    LimiterPacer,
    Prepared,
    app_of,
    find_header,
    unexpected,
)
from cspgraph.http.inflight import InFlightWindow
from cspgraph.http.retry import (
    MAX_RETRY_AFTER,
    PropagationPolicy,
    RetryPolicy,
    parse_float,
    parse_retry_after,
)
from cspgraph.http.sender import PoolLimits, Reply, Sender, Sleep, TokenSource, parse_json

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_BATCH",
    "MAX_RETRY_AFTER",
    "BatchRequest",
    "BatchResponse",
    "GraphClient",
    "GraphStats",
    "JsonObject",
    "Page",
    "PropagationPolicy",
    "Sleep",
    "TokenSource",
]


# Prepared requests kept per client (see GraphClient._prepare).
_MEMO_SIZE = 512
_MEMO_VALUE_TYPES = (str, int, bool)


def _memo_key(
    method: str,
    path: str,
    params: Mapping[str, Any] | None,
    version: str,
    headers: Mapping[str, str] | None,
) -> tuple[Any, ...] | None:
    """What a prepared request depends on, or None when it is not worth keeping (a saved link is
    used once) or its parameters are not plain values."""
    if is_absolute(path):
        return None
    values: builtins.list[tuple[str, type, Any]] = []
    if params:
        for name, value in params.items():
            kind = type(value)
            if kind not in _MEMO_VALUE_TYPES:
                return None
            values.append((name, kind, value))  # the type too: True and 1 encode differently
    return method, path, version, tuple(values), tuple(headers.items()) if headers else ()


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a collection; ``next_link``/``delta_link`` are the checkpoints to save."""

    items: builtins.list[JsonObject]
    next_link: str | None
    delta_link: str | None
    count: int | None  # @odata.count, first page only and only when asked for


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
        window: InFlightWindow | None = None,
    ) -> None:
        """
        ``window``: how many requests are in flight at once, adapting to latency, 429s and
        the budgets (:mod:`cspgraph.http.inflight`, :func:`cspgraph.graph.window.graph_window`);
        None: as many as ``per_host_limit`` connections allow.
        ``limiter``: shared budgets; None gives this client its own at Graph's published sizes
        (per app when ``tokens`` can tell a tenant's app: see :func:`~cspgraph.graph.wire.app_of`),
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
        self.allow_any_resource = allow_any_resource
        self._headers: dict[str, str] = {"Accept": "application/json", "User-Agent": user_agent}
        if throttle_priority is not None:
            self._headers["x-ms-throttle-priority"] = throttle_priority
        self.stats = GraphStats()
        self.last_write_status: int | None = None  # the HTTP status of the last write's answer
        self._pacer = LimiterPacer(
            limiter if limiter is not None else GraphLimiter(app_of=app_of(tokens))
        )
        self._sender = Sender(
            tokens,
            GRAPH,
            self.stats,
            ca_bundle=ca_bundle,
            retry=RetryPolicy(max_retries, backoff_base, backoff_cap, MAX_RETRY_AFTER),
            propagation=propagation,
            pacer=self._pacer,
            sleep=sleep,
            rng=rng,
            session=session,
            pool=PoolLimits(connection_limit, per_host_limit, timeout),
            window=window,
        )
        # Prepared requests by their arguments (see _prepare); a Prepared is never mutated.
        self._prepared: dict[tuple[Any, ...], Prepared] = {}

    @property
    def window(self) -> InFlightWindow | None:
        """The in-flight window requests wait for, if any."""
        return self._sender.window

    @property
    def limiter(self) -> Limiter:
        """The budgets this client books its requests against."""
        return self._pacer.limiter

    @property
    def base_url(self) -> str:
        """The Graph host this client talks to, e.g. ``https://graph.microsoft.com``."""
        return self._base

    def sends_to(self, url: str) -> bool:
        """Whether an absolute ``url`` (a saved nextLink or deltaLink) is on this client's Graph
        host, so that the client would send a token there; a link to any other origin is
        refused when it is followed."""
        parsed = URL(url, encoded=True)
        return (parsed.scheme, parsed.host, parsed.port) == self._origin

    @property
    def max_retries(self) -> int:
        """Retries of a transient failure per call (and rounds of retried ``$batch`` items)."""
        return self._sender.retry.max_retries

    @max_retries.setter
    def max_retries(self, value: int) -> None:
        self._sender.retry = replace(self._sender.retry, max_retries=value)

    @property
    def propagation(self) -> PropagationPolicy | None:
        """How long a propagating failure is waited out (None: raised at once)."""
        return self._sender.propagation

    @propagation.setter
    def propagation(self, policy: PropagationPolicy | None) -> None:
        self._sender.propagation = policy

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> GraphClient:
        self._sender.ensure_session()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._sender.close()

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
        return await self._sender.send(
            tenant, method, url or prepared.url, prepared.headers, body,
            costs=costs or (prepared.cost,),
            idempotent=method != "POST" if idempotent is None else idempotent,
        )  # fmt: skip

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
        return parse_json(reply.body) or {}

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
        params = query_params(filter=filter, search=search)
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
        query = query_params(
            select=select, filter=filter, top=top, count=count, search=search,
            orderby=orderby, expand=expand, extra=params,
        )  # fmt: skip
        if is_absolute(path) and query:
            raise ValueError("a saved nextLink/deltaLink already carries its query options")
        prepared = self._prepare("GET", path, query, version, headers)
        url: str | None = prepared.url
        while url is not None:
            reply = await self._call(tenant, "GET", prepared, None, url=url)
            data = parse_json(reply.body)
            if not isinstance(data, dict):
                raise unexpected(tenant, "GET", url, reply, "a collection page")
            items = data.get("value")
            if not isinstance(items, builtins.list):
                raise unexpected(tenant, "GET", url, reply, "a collection page")
            next_link = data.get("@odata.nextLink")
            if next_link is not None:
                if next_link == url:
                    raise unexpected(tenant, "GET", url, reply, "a nextLink that moves on")
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
        self.last_write_status = reply.status  # for an audit line (`cspgraph call`)
        data = parse_json(reply.body)
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
        check_batch_ids(items)
        results: dict[str, BatchResponse] = {}
        pending = items
        for round_number in range(self.max_retries + 1):
            answered = await self._send_batch_round(tenant, pending, version)
            results.update(answered)
            retry_ids = ids_to_retry(pending, answered)
            if not retry_ids or round_number == self.max_retries:
                break
            delay = max(
                self._sender.retry_delay(round_number, answered[i].header("Retry-After"))
                for i in retry_ids
                if answered[i].status != 424
            )
            self.stats.retries += len(retry_ids)
            await self._sender.sleep(delay)
            pending = [without_settled_dependencies(i, retry_ids) for i in pending
                       if i.key in retry_ids]  # fmt: skip
        return [results[item.key] for item in items]

    def _batch_item(self, request: BatchRequest, version: str) -> BatchItem:
        relative = self._relative_url(request.url, version)
        operation = scope.resolve(request.method, relative)
        if not operation.in_scope and not self.allow_any_resource:
            raise scope.scope_error(request.method, relative)
        query = query_of(relative)
        cost = request_cost(operation, query.keys(), top_of(query))
        return BatchItem(request, relative, cost)

    async def _send_batch_round(
        self, tenant: str, items: Sequence[BatchItem], version: str
    ) -> dict[str, BatchResponse]:
        chunks = chunk_by_dependencies(items)
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
        self, tenant: str, chunk: Sequence[BatchItem], version: str
    ) -> dict[str, BatchResponse]:
        envelope = {"requests": [item.wire() for item in chunk]}
        prepared = Prepared(
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
        data = parse_json(reply.body)
        responses = data.get("responses") if isinstance(data, dict) else None
        if not isinstance(responses, builtins.list):
            raise unexpected(tenant, "POST", prepared.url, reply, "a $batch answer")
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
                raise unexpected(
                    tenant, "POST", prepared.url, reply, f"an answer for item {item.request.id}"
                )
        return answered

    def _learn_from_item(self, tenant: str, cost: RequestCost, response: BatchResponse) -> None:
        if response.status == 429:
            self.stats.throttled += 1
            delay = parse_retry_after(find_header(response.headers, "Retry-After"))
            self.limiter.record_throttled(
                tenant,
                cost,
                delay=delay if delay is not None else self._sender.retry.backoff_base,
                throttle_scope=find_header(response.headers, "x-ms-throttle-scope"),
            )
        elif response.ok:
            self.limiter.record_response(
                tenant,
                cost,
                resource_units=parse_float(find_header(response.headers, "x-ms-resource-unit")),
                limit_percentage=parse_float(
                    find_header(response.headers, "x-ms-throttle-limit-percentage")
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
    ) -> Prepared:
        """The request for these arguments: URL, operation (CSP scope), cost and headers.

        A fleet job asks for the same few requests for every tenant, and building one (scope
        resolution, query encoding, quoting) cost as much CPU as the rest of the client's work
        on the request, so results are memoised by their arguments. The CSP scope check runs on
        every call all the same (``allow_any_resource`` may change)."""
        key = _memo_key(method, path, params, version, headers)
        if key is not None:
            try:
                prepared = self._prepared.get(key)
            except TypeError:  # an unhashable header value: build it every time
                key, prepared = None, None
            if prepared is not None:
                if not prepared.operation.in_scope and not self.allow_any_resource:
                    raise scope.scope_error(method, path)
                return prepared
        prepared = self._build(method, path, params, version, headers)
        if key is not None:
            if len(self._prepared) >= _MEMO_SIZE:
                self._prepared.clear()  # paths with ids are endless; keep the memo small
            self._prepared[key] = prepared
        return prepared

    def _build(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        version: str,
        headers: Mapping[str, str] | None,
    ) -> Prepared:
        absolute = is_absolute(path)
        if absolute:
            self._check_origin(path)  # a saved nextLink/deltaLink: used verbatim
            query = query_of(path)
            operation = scope.resolve(method, urlsplit(path).path)
        else:
            bare, _, inline = ("/" + path.lstrip("/")).partition("?")
            query = query_of("?" + inline)
            query.update({name: query_text(value) for name, value in (params or {}).items()})
            operation = scope.resolve(method, bare)
        if not operation.in_scope and not self.allow_any_resource:
            raise scope.scope_error(method, path)
        merged = dict(self._headers)
        if operation.family is Family.IDENTITY and needs_eventual(operation, query):
            merged["ConsistencyLevel"] = "eventual"
            if not absolute and needs_count(query) and not operation.shape.endswith("$count"):
                query.setdefault("$count", "true")
        if headers:
            merged.update(headers)
        if absolute:
            url = path
        else:
            url = f"{self._base}/{version}{quote_path(bare)}"
            if query:
                url += "?" + encode_query(query)
        cost = request_cost(operation, query.keys(), top_of(query))
        return Prepared(url, operation, cost, merged)

    def _check_origin(self, url: str) -> None:
        # The bearer token goes wherever the URL points: never outside the configured Graph host.
        if not self.sends_to(url):
            parsed = URL(url, encoded=True)
            raise ValueError(
                f"refusing to send a Graph token to {parsed.scheme}://{parsed.host}:{parsed.port}; "
                f"the client talks to {self._base}"
            )

    def _relative_url(self, url: str, version: str) -> str:
        if is_absolute(url):
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
