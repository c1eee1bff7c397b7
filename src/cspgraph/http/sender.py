"""Sending one request until it is answered or must not be retried.

A :class:`Sender` is the lower half of a service client: :class:`~cspgraph.graph.GraphClient`
and :class:`~cspgraph.partner.PartnerCenterClient` each hold one (as httpx's client holds its
transport) and add their API on top. Per attempt, in order: wait until the pacer allows it
(Graph's budgets), attach a token for the request's key (the tenant it acts in), send, and on a
failed answer ask the :class:`Service` what it means in the taxonomy of
:mod:`cspgraph.http.errors`. Then:

* a transient failure is retried as the :class:`~cspgraph.http.retry.RetryPolicy` says — an
  idempotent request always, any request after a 429, 503 or 504 (refused before any work) or a
  refused connection (it never reached the service);
* a rejected token is retried once with a fresh one;
* a propagating failure (a young partner relationship), from the service or from the token
  endpoint, is waited out only under a :class:`~cspgraph.http.retry.PropagationPolicy`.

Every retry after an authorization error uses a newly acquired token, never the old one, and
concurrent requests that failed on the same token share one refresh
(:class:`~cspgraph.http.fresh.FreshTokens`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from cspgraph.http.errors import (
    CspGraphError,
    ErrorClass,
    HostUnreachableError,
    NeedsPersonError,
    PropagatingError,
    TransientError,
)
from cspgraph.http.fresh import FreshTokens
from cspgraph.http.inflight import InFlightWindow
from cspgraph.http.retry import HOSTS, PropagationPolicy, RetryPolicy
from cspgraph.http.sessions import aiohttp_session

log = logging.getLogger(__name__)
debug = functools.partial(log.isEnabledFor, logging.DEBUG)

Sleep = Callable[[float], Awaitable[None]]
Headers = CIMultiDictProxy[str]


class TokenSource(Protocol):
    async def get_token(self, tenant: str, *, fresh: bool = False) -> str:
        """An access token for requests in ``tenant``.

        ``fresh=True``: evict this tenant's cached token and acquire a new one — a token keeps the
        claims it was born with, so after consent or a relationship change only a new one helps.
        """
        ...


class Pacer(Protocol):
    """Client-side budgets (Graph's limiter): how long to wait before a request of a given cost,
    and what the answers teach. Costs are the client's own objects; the sender passes them on."""

    def reserve(self, key: str, cost: Any) -> float | Awaitable[float]: ...

    def throttled(self, key: str, cost: Any, delay: float, headers: Headers) -> None: ...

    def answered(self, key: str, cost: Any, headers: Headers) -> None: ...


class Counters(Protocol):
    """The statistics a sender keeps up to date (a client's stats object)."""

    requests: int  # HTTP requests sent, retries included
    retries: int
    throttled: int  # 429 answers
    errors: int  # calls that ended in an exception
    bytes_sent: int
    bytes_received: int


@dataclass(slots=True)
class Reply:
    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True, slots=True)
class Sent:
    """What was sent, for turning a failed answer into an error (made only on failure)."""

    key: str
    method: str
    url: str
    what: str  # the request as people read it: "GET /v1.0/users", "listing customers"
    request_id: str  # the id this attempt sent
    retries: int  # retries this call had made before this answer


@dataclass(frozen=True)
class Service:
    """What differs between the services one sender serves."""

    name: str  # for messages: "Microsoft Graph"
    request_id_header: str  # sent on every attempt: "client-request-id", "MS-RequestId"
    classify: Callable[[Reply, Sent], CspGraphError]  # a failed answer in the taxonomy
    token_rejected: Callable[[CspGraphError], bool]  # worth one retry with a fresh token


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """The sender's own connection pool (when it makes its session)."""

    connections: int = 100
    per_host: int = 30
    timeout: float = 100.0  # seconds of silence before a read gives up
    connect_timeout: float = 30.0


@dataclass(slots=True)
class _CallState:
    """What one logical call has spent on retries so far."""

    transient: int = 0
    auth_refreshed: bool = False
    propagation_attempts: int = 0
    propagation_waited: float = 0.0
    fresh: bool = False
    token_generation: int = 0
    refused: int | None = None  # the host's answer count at this call's first refused connect

    @property
    def retries(self) -> int:
        return self.transient + int(self.auth_refreshed) + self.propagation_attempts


class Sender:
    """Sends requests to one service for many keys (tenants) over one connection pool."""

    def __init__(
        self,
        tokens: TokenSource,
        service: Service,
        counters: Counters,
        *,
        ca_bundle: str | None = None,
        retry: RetryPolicy | None = None,
        propagation: PropagationPolicy | None = None,
        pacer: Pacer | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        session: aiohttp.ClientSession | None = None,
        pool: PoolLimits | None = None,
        window: InFlightWindow | None = None,
    ) -> None:
        """``session``: an existing aiohttp session to use (then its owner closes it, and
        ``ca_bundle`` and ``pool`` are that session's business). ``window``: how many requests
        may be in flight at once (:mod:`cspgraph.http.inflight`); None: as many as the pool
        has connections."""
        self.tokens = tokens
        self.service = service
        self.stats = counters
        self.ca_bundle = ca_bundle
        self.retry = retry or RetryPolicy()
        self.propagation = propagation
        self.pacer = pacer
        self.sleep = sleep
        self.rng = rng or random.Random()  # jitter, not secrets
        self.fresh: FreshTokens[str] = FreshTokens()
        self._pool = pool or PoolLimits()
        self._session = session
        self._owns_session = session is None
        self.window = window

    # -- lifecycle ---------------------------------------------------------------------------------

    def ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            pool = self._pool
            self._session = aiohttp_session(
                self.ca_bundle,
                limit=pool.connections,
                limit_per_host=pool.per_host,
                connect_timeout=min(pool.timeout, pool.connect_timeout),
                read_timeout=pool.timeout,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    # -- sending -----------------------------------------------------------------------------------

    def retry_delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds before retry number ``attempt``: the service's Retry-After, else backoff."""
        return self.retry.delay(attempt, retry_after, self.rng)

    async def send(
        self,
        key: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        *,
        costs: tuple[Any, ...] = (),
        idempotent: bool,
        what: str | None = None,
    ) -> Reply:
        """Send until answered below 300 (returned) or until the failure must not be retried
        (raised, classified). ``key``: the tenant the request acts in ("" for a client of one
        tenant). ``url`` is sent verbatim. ``costs``: what the request costs the pacer (several
        for a ``$batch`` envelope). ``what``: how messages name the request (default: method and
        path, never the query, which may carry personal data)."""
        stats = self.stats
        state = _CallState()
        target = URL(url, encoded=True)  # verbatim: a nextLink's skiptoken must not be re-quoted
        session = self._session or self.ensure_session()
        pacer = self.pacer
        id_header = self.service.request_id_header
        host = target.raw_authority
        try:
            while True:
                HOSTS.check(host)  # a host judged gone fails every call at once (http/retry.py)
                if pacer is not None:
                    wait = 0.0
                    for cost in costs:
                        booked = pacer.reserve(key, cost)
                        # A budget shared over the network (cspgraph.distributed) is awaited.
                        wait = max(wait, booked if isinstance(booked, float) else await booked)
                    if wait > 0.0:
                        await self.sleep(wait)
                try:
                    token = await self._token(key, state)
                except PropagatingError as token_error:
                    # The token endpoint too says "not yet" while consent propagates (700016).
                    if await self._wait_for_propagation(token_error, state, key):
                        continue
                    raise
                request_id = headers.get(id_header) or str(uuid.uuid4())
                send_headers = {
                    **headers,
                    "Authorization": f"Bearer {token}",
                    id_header: request_id,
                }
                if body is not None:
                    send_headers.setdefault("Content-Type", "application/json")
                    stats.bytes_sent += len(body)
                stats.requests += 1
                try:
                    reply = await self._exchange(session, method, target, send_headers, body)
                    payload = reply.body
                    if debug():  # --verbose: each request, by method and path (no query)
                        name = what or request_name(method, url)
                        log.debug(
                            "%s: %d (%s request-id %s)",
                            name, reply.status, self.service.name, request_id,
                        )  # fmt: skip
                except aiohttp.ClientSSLError as exc:
                    # Retrying cannot fix a certificate we do not trust; a person must.
                    name = what or request_name(method, url)
                    raise NeedsPersonError(
                        f"{name}: TLS certificate verification failed: {exc}",
                        tenant=key or None,
                        reason=f"the {self.service.name} endpoint's certificate is not trusted: "
                        "check ca_bundle",
                    ) from exc
                except (aiohttp.ClientError, TimeoutError) as exc:
                    # A refused connection never reached the service; anything later might have.
                    refused = isinstance(exc, aiohttp.ClientConnectorError)
                    name = what or request_name(method, url)
                    unreachable = self._refused(state, host, exc, key, name) if refused else None
                    if (idempotent or refused) and state.transient < self.retry.max_retries:
                        await self._pause(state, self.retry_delay(state.transient, None))
                        continue
                    if unreachable is not None and state.refused is not None:
                        if state.transient:  # (a call allowed no retry judges nothing)
                            HOSTS.gave_up(unreachable, state.refused)
                        raise unreachable from exc
                    raise TransientError(
                        f"{what or request_name(method, url)}: {type(exc).__name__} talking to "
                        f"{self.service.name}: {exc}",
                        tenant=key or None,
                        request_id=request_id,
                        reason=f"the connection to {self.service.name} failed",
                    ) from exc
                HOSTS.answered(host)
                stats.bytes_received += len(payload)
                if reply.status < 300:
                    if pacer is not None and len(costs) == 1:
                        # Every answer counts: a clean one lets a slowed-down tenant speed up.
                        pacer.answered(key, costs[0], reply.headers)
                    return reply
                sent = Sent(
                    key, method, url, what or request_name(method, url), request_id, state.retries
                )
                error = self.service.classify(reply, sent)
                if reply.status == 429:
                    stats.throttled += 1
                if not await self._should_retry(key, error, reply, costs, idempotent, state):
                    raise error
        except CspGraphError:
            stats.errors += 1
            raise

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        method: str,
        target: URL,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> Reply:
        """One request and its whole answer, inside a slot of the in-flight window (when
        there is one), which learns the latency, the answer's size and any 429 from it."""
        window = self.window
        if window is None:
            async with session.request(
                method, target, headers=headers, data=body, allow_redirects=False
            ) as response:
                return Reply(response.status, response.headers, await response.read())
        await window.acquire()
        began = window.clock()
        status: int | None = None
        size: int | None = None
        try:
            async with session.request(
                method, target, headers=headers, data=body, allow_redirects=False
            ) as response:
                payload = await response.read()
                status, size = response.status, len(payload)
                return Reply(response.status, response.headers, payload)
        finally:
            window.release(window.clock() - began, status, size)

    async def _should_retry(
        self,
        key: str,
        error: CspGraphError,
        reply: Reply,
        costs: tuple[Any, ...],
        idempotent: bool,
        state: _CallState,
    ) -> bool:
        """Decide, and wait for, the next attempt; False to give up with ``error``."""
        if error.error_class is ErrorClass.TRANSIENT:
            # A 429 or 503/504 was refused before any work; other failures may have done some.
            if not (idempotent or reply.status in (429, 503, 504)):
                return False
            if state.transient >= self.retry.max_retries:
                return False
            delay = self.retry_delay(state.transient, reply.headers.get("Retry-After"))
            if reply.status == 429 and self.pacer is not None:
                # Before sleeping: the pause is measured from now, when the service said it.
                for cost in costs:
                    self.pacer.throttled(key, cost, delay, reply.headers)
            await self._pause(state, delay)
            return True
        if not state.auth_refreshed and self.service.token_rejected(error):
            state.auth_refreshed = True
            state.fresh = True
            self.stats.retries += 1
            return True
        if isinstance(error, PropagatingError):
            return await self._wait_for_propagation(error, state, key)
        return False

    async def _wait_for_propagation(
        self, error: PropagatingError, state: _CallState, key: str
    ) -> bool:
        """Wait as the propagation policy says, then retry with a fresh token; False: give up."""
        policy = self.propagation
        if policy is None or (policy.applies_to is not None and not policy.applies_to(key)):
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
        await self.sleep(wait)
        return True

    def _refused(
        self, state: _CallState, host: str, exc: BaseException, key: str, name: str
    ) -> HostUnreachableError:
        """A connection to ``host`` could not be made: tell the host watch."""
        error = HostUnreachableError(
            f"{name}: cannot connect to {self.service.name} at {host}: {exc}",
            host=host,
            service=self.service.name,
            tenant=key or None,
        )
        generation = HOSTS.refused(error)
        if state.refused is None:
            state.refused = generation
        return error

    async def _pause(self, state: _CallState, delay: float) -> None:
        state.transient += 1
        self.stats.retries += 1
        await self.sleep(delay)

    async def _token(self, key: str, state: _CallState) -> str:
        fresh = self.fresh
        if not state.fresh:
            state.token_generation = fresh.generation(key)
            return await self.tokens.get_token(key)
        state.fresh = False
        token = await fresh.refresh(key, state.token_generation, lambda: self._renew(key))
        if token is None:  # another call already replaced the token this call failed with
            token = await self.tokens.get_token(key)
        state.token_generation = fresh.generation(key)
        return token

    async def _renew(self, key: str) -> str:
        token = await self.tokens.get_token(key, fresh=True)
        self.fresh.advance(key)
        return token


# -- reading answers -------------------------------------------------------------------------------


def request_name(method: str, url: str) -> str:
    """A request as messages name it: method and path, without the query (it may carry
    personal data, such as names in a $filter)."""
    return f"{method} {urlsplit(url).path if '://' in url else url.split('?', 1)[0]}"


def parse_json(body: bytes) -> Any:
    """A response body as JSON; None when empty or not JSON."""
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
