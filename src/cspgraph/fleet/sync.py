"""The fleet sync: every customer's directory and Intune inventory, into the store.

:func:`sync_fleet` lists the customers (Partner Center, per configured region, through each
region's partner identity; or a list given by the caller), places each in its region, and syncs
them, the largest first, as many at once as the Graph client's in-flight window has room for
(:mod:`cspgraph.fleet.scheduling`: the window follows Graph's budgets, the observed latency and
429s; ``concurrency`` is only an upper bound); in each tenant users, groups with their members,
devices, the organization, Intune managed devices and the Global Administrators are pulled at once
(:mod:`cspgraph.fleet.tenant_sync`). One Graph client serves the whole fleet, so its limiter keeps
every tenant and the app as a whole inside Graph's budgets.

Memory stays flat as the fleet grows: pages stream into the store as they arrive, and only the
per-tenant outcome (a few counters) is kept until the summary; the window bounds the bytes of the
answers in flight and the writer's backlog bounds the pages waiting to be written, so thousands
of requests in flight cost no more memory than a few.

The first run pulls everything, through delta queries where Graph has them, and leaves delta links
behind; later runs fetch changes only (``full=True`` forces full pulls). Each customer's outcome
is recorded on it in the store — ``ok``, ``propagating``, ``needs_person`` with the reason,
``failed`` with the error — and never stops the others. An interrupted run (Ctrl-C, a crash,
``kill -9``) leaves every stream at its last committed page; running again resumes there.

Runs never interleave on a customer: each takes the customer's lease in the store first
(:mod:`cspgraph.fleet.leases`, renewed by a heartbeat while the run lasts). A customer that
another run holds is left to it and reported as ``running`` with the reason (the run is then only
partly done), or waited for with ``wait=True``.

    from cspgraph.config import load_config
    from cspgraph.fleet.store import Store
    from cspgraph.fleet.sync import sync_fleet

    with Store.open("sqlite:///cspgraph.db") as store:
        summary = asyncio.run(sync_fleet(load_config(), store))
    print(summary.by_status(), summary.requests, summary.throttled)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cspgraph.config import Config
from cspgraph.fleet import partner_apps, runs
from cspgraph.fleet.access import (
    AccessResolver,
    FleetTokens,
    GdapRelationships,
    read_gdap_relationships,
)
from cspgraph.fleet.customer_sources import (
    CustomerSource,
    from_sources,
    gdap_customers,
    listing_gaps,
)
from cspgraph.fleet.customers import (
    CustomerRef,
    ListingErrors,
    customers_from_list,
    partner_center_customers,
)
from cspgraph.fleet.leases import TenantLeases
from cspgraph.fleet.outcomes import SyncSummary, TenantResult
from cspgraph.fleet.progress import NullProgress, SyncProgress
from cspgraph.fleet.resources import ALL_RESOURCES, MAX_PAGE_SIZE
from cspgraph.fleet.runs import ListedTenants, RunRecorder
from cspgraph.fleet.scheduling import Admission, CustomerQueue, known_sizes, size_key
from cspgraph.fleet.store import Store
from cspgraph.fleet.store_writer import StoreWriter
from cspgraph.fleet.tenant_sync import SyncSettings, TenantAccess, sync_tenant
from cspgraph.graph.client import GraphClient, GraphStats
from cspgraph.graph.window import DEFAULT_MAX_IN_FLIGHT, budget_rate
from cspgraph.http.inflight import InFlightWindow
from cspgraph.identity import TokenProvider

if TYPE_CHECKING:
    from cspgraph.identity.service_account import ServiceAccountTokens

__all__ = [
    "CustomerRef",
    "SyncSummary",
    "TenantResult",
    "sync_customers",
    "sync_fleet",
]

log = logging.getLogger(__name__)

# The most customers in flight at once: an upper bound, not the setting that matters (how many
# are in flight follows the Graph client's in-flight window: cspgraph.fleet.scheduling). Each
# customer in flight costs a lease and a few counters; 512 leave the window room at any latency.
DEFAULT_CONCURRENCY = 512
# Token and discovery requests in flight at once (each customer needs one of each before its
# first Graph request): at Entra's ~0.3 s an answer, the token layer's default 8 would start
# about 13 customers a second, 6 minutes for 5,000.
TOKEN_WORKERS = 64


async def sync_fleet(
    source: Config | TokenProvider,
    store: Store,
    *,
    customers: Iterable[str] | None = None,
    full: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: SyncProgress | None = None,
    page_size: int = MAX_PAGE_SIZE,
    resources: Sequence[str] | None = None,
    graph: GraphClient | None = None,
    wait: bool = False,
    leases: TenantLeases | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    detect_access: bool = True,
    customer_source: CustomerSource | str = CustomerSource.PARTNER_CENTER,
    exclude_mlt: bool = False,
) -> SyncSummary:
    """Sync every customer (or just ``customers``) into ``store``; see the module docstring.

    ``source``: a configuration (a :class:`TokenProvider` is made and closed here) or a provider
    you own. ``customers``: tenant GUIDs, domains or sign-in names; None lists every customer
    from Partner Center in every configured region. ``resources``: a subset of
    :data:`~cspgraph.fleet.resources.ALL_RESOURCES`. ``graph``: a Graph client to use (sharing
    its limiter and counters); by default one is made for the run, sending
    ``x-ms-throttle-priority: Low`` as background jobs should (client-traps §11). ``wait``: wait
    for customers another run holds instead of leaving them alone. ``leases``: the leases to
    take customers with (default: a holder of this run's own in ``store``). ``concurrency``:
    the most customers in flight at once and ``max_in_flight`` the most Graph requests (both
    upper bounds: how many are in flight follows the budgets, the observed latency and 429s,
    :mod:`cspgraph.fleet.scheduling`); with a ``graph`` of your own, its window if it has one
    (else ``concurrency`` customers at once). ``detect_access``: find out and record how each
    customer is reached (DAP, GDAP app, GDAP delegated, ...; :mod:`cspgraph.fleet.access`),
    reading each region's GDAP relationships; without it, app-only tokens only, as before GDAP.
    ``customer_source`` (when ``customers`` is None): ``partner-center``, ``gdap`` (the
    customers with an active GDAP relationship, ``MLT_…`` relationships left out with
    ``exclude_mlt``) or ``both``, whose gaps the summary reports
    (:mod:`cspgraph.fleet.customer_sources`).
    """
    chosen = CustomerSource(customer_source)
    async with contextlib.AsyncExitStack() as stack:
        if isinstance(source, TokenProvider):
            provider = source
        else:
            provider = TokenProvider(source, workers=TOKEN_WORKERS)
            stack.push_async_callback(provider.aclose)
        tokens: FleetTokens | None = None
        access: TenantAccess = provider
        if detect_access and graph is None:
            service = service_account(provider)
            if service is not None:
                stack.callback(service.close)
                tokens = FleetTokens(provider, service)
                access = tokens
        if graph is None:
            cloud = provider.cloud
            # Requests in flight follow the budgets, the latency and 429s (the window), up to
            # as many connections as the pool may open.
            window = InFlightWindow(max_in_flight)
            client = GraphClient(
                tokens or provider,
                graph_url=cloud.graph,
                ca_bundle=cloud.ca_bundle,
                throttle_priority="Low",
                connection_limit=max_in_flight,
                per_host_limit=max_in_flight,
                window=window,
            )
            window.rate = lambda: budget_rate(client.limiter)
            graph = await stack.enter_async_context(client)
        ahead: GdapRelationships | None = None
        if customers is None and chosen.gdap:
            # The list itself comes from them: read before the customers (not among the run's
            # requests, as Partner Center's listing is not).
            ahead = await read_gdap_relationships(graph, provider)
        resolver: AccessResolver | None = None
        if detect_access:
            resolver = AccessResolver(provider, store, graph, relationships=ahead, tokens=tokens)
            stack.push_async_callback(resolver.aclose)
        errors = ListingErrors()
        listed: Iterable[CustomerRef] | AsyncIterable[CustomerRef]
        seen = ListedTenants()
        names: dict[str, str | None] = {}
        regions: dict[str, str | None] = {}
        in_gdap = gdap_customers(ahead, exclude_mlt=exclude_mlt) if ahead is not None else []
        if customers is None:
            from_pc = (
                seen.watch(partner_center_customers(provider, errors=errors))
                if chosen.partner_center
                else None
            )
            listed = from_sources(from_pc, in_gdap, names, regions)
        else:
            listed = customers_from_list(customers)
        # When each region's app loses its credential (a check warns before it happens): read
        # while the customers sync, not after them (a sign-in and a request per region, ~1 s
        # at Graph's latency, which would otherwise end every run), and kept after them.
        reading = asyncio.create_task(
            partner_apps.read_credentials(provider.config.identities, graph)
        )
        try:
            summary = await sync_customers(
                graph,
                access,
                store,
                listed,
                full=full,
                concurrency=concurrency,
                progress=progress,
                page_size=page_size,
                resources=resources,
                wait=wait,
                leases=leases,
                resolver=resolver,
            )
        except BaseException:
            reading.cancel()
            raise
        summary.listing_errors.update(errors.by_region)
        if customers is None and ahead is not None:
            # The customer list came (partly) from the GDAP relationships: a region whose
            # relationships are unknown is a region whose customers could not be listed (the
            # run fails, as for an unreadable Partner Center list), never one without any.
            for region, why in ahead.unknown.items():
                listed_why = f"GDAP relationships unknown: {why}"
                before = summary.listing_errors.get(region)
                summary.listing_errors[region] = f"{before}; {listed_why}" if before else listed_why
        if resolver is not None:
            summary.gdap_unknown.update(resolver.relationships.unknown)
        elif ahead is not None:
            summary.gdap_unknown.update(ahead.unknown)
        gdap_ids = {(c.tenant_id or c.reference).lower() for c in in_gdap}
        if customers is None and chosen is CustomerSource.BOTH and ahead is not None:
            whole = seen.complete and not errors and not ahead.unknown
            summary.listing_gaps = listing_gaps(
                names, in_gdap, complete=whole, regions=regions,
                gdap_unknown=ahead.unknown, partner_center_unknown=errors.by_region,
            ).as_dict()  # fmt: skip
        await partner_apps.keep(store, await reading)
        listing = None if customers is None else runs.NAMED
        if listing is None:
            listing = runs.PARTNER_CENTER if chosen.partner_center else GDAP_LISTED
        gdap_whole = ahead is not None and not ahead.unknown
        await asyncio.to_thread(
            _after_listing, store, summary, listing, seen, gdap_ids if gdap_whole else None
        )
        return summary


def service_account(provider: TokenProvider) -> ServiceAccountTokens | None:
    """The partner service account of the configuration (the Secure Application Model), or
    None when none is configured."""
    path = provider.config.service_account_cache_path
    if path is None:
        return None
    # Lazy: PyJWT, cryptography and the agent sign-in, only for a configured service account.
    from cspgraph.identity.service_account import ServiceAccountTokens

    return ServiceAccountTokens(provider, path)


GDAP_LISTED = "gdap"  # runs.listed of a run that listed the active GDAP relationships only


def _after_listing(
    store: Store,
    summary: SyncSummary,
    listing: str,
    seen: ListedTenants,
    gdap_ids: set[str] | None,
) -> None:
    """Record how the run found its customers; after a complete Partner Center listing, mark
    the customers it no longer named as gone (their data stays until ``--prune``). A customer
    the GDAP list named too (``--customer-source both``) is not gone; a run that listed GDAP
    customers only marks nothing gone (Partner Center was not asked)."""
    if summary.run_id is None:
        return
    runs.note_listing(store, summary.run_id, listing, summary.listing_errors)
    if listing != runs.PARTNER_CENTER or not seen.complete or summary.listing_errors:
        return
    named = set(seen.tenants)
    if gdap_ids is None and summary.listing_gaps is not None:
        return  # GDAP customers were listed but not every region's: cannot tell who is gone
    summary.gone = runs.mark_gone(store, named | (gdap_ids or set()))


async def sync_customers(
    client: GraphClient,
    access: TenantAccess,
    store: Store,
    customers: Iterable[CustomerRef] | AsyncIterable[CustomerRef],
    *,
    full: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: SyncProgress | None = None,
    page_size: int = MAX_PAGE_SIZE,
    resources: Sequence[str] | None = None,
    writer_threads: int | None = None,
    wait: bool = False,
    leases: TenantLeases | None = None,
    resolver: AccessResolver | None = None,
) -> SyncSummary:
    """:func:`sync_fleet` with the Graph client and the routing/tokens (``access``, e.g. a
    :class:`TokenProvider`) supplied by the caller, for any stream of customers.

    ``writer_threads``: store writer threads; one for SQLite (one writer at a time there
    anyway), four for PostgreSQL by default. ``leases``: as in :func:`sync_fleet`; a run that
    makes its own gives every lease back at its end, also when interrupted (a caller's own
    leases get back only the customers this run took).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    wanted = frozenset(resources or ALL_RESOURCES)
    if not wanted <= set(ALL_RESOURCES):
        unknown = sorted(wanted - set(ALL_RESOURCES))
        raise ValueError(f"unknown resources {unknown}; expected some of {list(ALL_RESOURCES)}")
    settings = SyncSettings(full=full, page_size=page_size, resources=wanted, wait=wait)
    own_leases = leases is None
    held = leases if leases is not None else TenantLeases(store)
    observer: SyncProgress = progress or NullProgress()
    if writer_threads is None:
        writer_threads = 1 if store.engine.dialect.name == "sqlite" else 4
    writer = StoreWriter(store, writer_threads)
    results: list[TenantResult] = []
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    before = client.stats.as_dict()
    run = await RunRecorder.begin(writer)  # the store's history of runs (cspgraph.fleet.runs)
    observer = run.watching(observer)
    observer.started(client.stats)
    loop = asyncio.get_running_loop()
    outcome = runs.INTERRUPTED
    try:
        with held.heartbeat():
            await _fan_out(
                client, access, writer, observer, settings, customers, concurrency, results, held,
                resolver,
            )  # fmt: skip
        outcome = runs.COMPLETED
    except Exception:
        outcome = runs.FAILED
        raise
    finally:
        wall_time = time.monotonic() - clock
        run.finish(outcome, results, _stats_since(before, client.stats), wall_time)
        # Also when cancelled: the writes in flight finish (each is one atomic page), then
        # the leases go back, so the next run need not wait for them to expire.
        await asyncio.shield(loop.run_in_executor(None, writer.close))
        if own_leases:
            try:
                await asyncio.shield(loop.run_in_executor(None, held.release_all))
            except Exception as exc:  # they expire on their own, or a run here sees us gone
                log.warning("could not give the sync's leases back: %s", exc)
    summary = SyncSummary(
        tenants=results,
        started_at=started_at,
        wall_time=wall_time,
        graph=_stats_since(before, client.stats),
        run_id=run.run_id,
    )
    observer.finished(summary)
    return summary


async def _fan_out(
    client: GraphClient,
    access: TenantAccess,
    writer: StoreWriter,
    observer: SyncProgress,
    settings: SyncSettings,
    customers: Iterable[CustomerRef] | AsyncIterable[CustomerRef],
    concurrency: int,
    results: list[TenantResult],
    leases: TenantLeases,
    resolver: AccessResolver | None = None,
) -> Admission:
    """Start customers, the largest first, as the Graph client's in-flight window has room
    (:mod:`cspgraph.fleet.scheduling`), at most ``concurrency`` at once.

    The listing runs ahead on its own (a customer is a few strings, and a Partner Center
    continuation should not wait for hours on slow tenants)."""
    sizes = await writer.run(known_sizes, writer.store)
    queue = CustomerQueue(sizes)
    streams = len(settings.resources)
    admission = Admission(client.window, concurrency, streams, writer.backlog)
    seen: set[str] = set()

    async def feed() -> None:
        try:
            async for customer in _aiter(customers):
                key = size_key(customer)
                if key in seen:  # one customer listed by two regions, or named twice
                    continue
                seen.add(key)
                observer.customers_found(1)
                queue.put(customer)
        finally:
            queue.close()

    async def one(customer: CustomerRef) -> None:
        pulled = left = False

        def pulling() -> None:
            nonlocal pulled
            pulled = True
            admission.pulling()

        def leave() -> None:
            # Once: early when only Partner Center's answer is missing, else at the end.
            nonlocal left
            if not left:
                left = True
                admission.leave(pulled)

        try:
            result = await sync_tenant(
                client, access, writer, observer, settings, customer, leases, resolver,
                on_pulling=pulling, on_pulled=leave,
            )  # fmt: skip
        finally:
            leave()
        results.append(result)
        observer.tenant_finished(result)

    async with asyncio.TaskGroup() as group:
        group.create_task(feed())
        while True:
            await admission.enter()
            customer = await queue.get()
            if customer is None:
                admission.leave(pulled=False)
                break
            group.create_task(one(customer))
    return admission


async def _aiter(
    customers: Iterable[CustomerRef] | AsyncIterable[CustomerRef],
) -> AsyncIterator[CustomerRef]:
    if isinstance(customers, AsyncIterable):
        async for customer in customers:
            yield customer
    else:
        for customer in customers:
            yield customer


def _stats_since(before: dict[str, int], stats: GraphStats) -> dict[str, int]:
    return {name: value - before.get(name, 0) for name, value in stats.as_dict().items()}
