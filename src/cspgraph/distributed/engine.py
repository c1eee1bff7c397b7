"""The fleet sync on Celery workers: one task per customer, the store as the shared truth.

``cspgraph sync --engine celery`` (:func:`enqueue_sync`) lists the customers as a local sync
would, records a run, sends one task per customer to the broker and then follows the run in the
store until every customer's task has finished. ``cspgraph worker`` (:func:`start_worker`) is
Celery's own worker with this application; each worker process runs one asyncio loop with one
:class:`~cspgraph.identity.TokenProvider` (its own tokens) and the Graph limiter its settings name:
:class:`~cspgraph.distributed.redis_limiter.RedisLimiter` for one budget shared by every worker,
and with it one Partner Center window per partner tenant
(:mod:`cspgraph.distributed.partner_center_pacer`).

Why nothing is lost and nothing applied twice:

* Late acknowledgement (``task_acks_late``) with a prefetch of one per slot: a message is
  acknowledged only after its customer is recorded. A worker killed mid-customer never
  acknowledges; the broker hands its messages to another worker (RabbitMQ at once, when the dead
  worker's connection closes; a Redis broker after ``visibility_timeout``).
* A task is idempotent: it takes the customer's lease in the store
  (:mod:`cspgraph.fleet.leases`; a dead holder on this machine is seen at once, elsewhere its
  lease expires), and resumes from the store's checkpoints, where each page and its checkpoint
  were one transaction. A page is written only where its pull's checkpoint stands, so even a
  duplicate delivery cannot write a page twice.
* Results are rows keyed by (run, customer): ``run_customers`` (as a local run records) and
  ``run_tasks`` (which worker, how many attempts, the Graph requests and 429s of every attempt);
  a second attempt updates them, it does not add rows.

What a run spent: an attempt adds its Graph requests and 429s to its ``run_tasks`` row every
:data:`COUNT_EVERY` seconds while it runs and once more when it finishes, as increments, so the
requests of an attempt that died (they spent budget all the same) stay counted up to its last
increment, at most :data:`COUNT_EVERY` seconds before it died, and two attempts that overlap
(a duplicate delivery) never overwrite each other's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.signals import worker_shutdown
from sqlalchemy import select

from cspgraph.config import Config
from cspgraph.distributed.async_limiter import AsyncRedisLimiter
from cspgraph.distributed.partner_center_pacer import RedisPartnerCenterPacers
from cspgraph.distributed.redis_limiter import DEFAULT_NAMESPACE
from cspgraph.fleet import runs
from cspgraph.fleet.access import (
    AccessResolver,
    FleetTokens,
    read_gdap_relationships,
    recorded_access,
)
from cspgraph.fleet.customers import (
    CustomerRef,
    ListingErrors,
    customers_from_list,
    partner_center_customers,
)
from cspgraph.fleet.history_schema import run_customers, run_tasks
from cspgraph.fleet.leases import TenantLeases
from cspgraph.fleet.outcomes import CustomerStatus, SyncSummary, TenantResult
from cspgraph.fleet.progress import NullProgress
from cspgraph.fleet.resources import ALL_RESOURCES, MAX_PAGE_SIZE
from cspgraph.fleet.run_progress import run_progress
from cspgraph.fleet.store import Store
from cspgraph.fleet.store_writer import StoreWriter
from cspgraph.fleet.sync import TOKEN_WORKERS, service_account
from cspgraph.fleet.tenant_sync import SyncSettings, sync_tenant
from cspgraph.graph.client import GraphClient, GraphStats
from cspgraph.graph.limits import GraphLimiter, Limiter
from cspgraph.graph.wire import app_of
from cspgraph.identity import TokenProvider
from cspgraph.partner.pacing import share_pacers

__all__ = [
    "DEFAULT_QUEUE",
    "TASK",
    "NotARun",
    "WorkerSettings",
    "enqueue_sync",
    "follow_run",
    "make_app",
    "start_worker",
]

log = logging.getLogger(__name__)

TASK = "cspgraph.sync_customer"
DEFAULT_QUEUE = "cspgraph.sync"
# A Redis broker hands an unacknowledged message to another worker after this long: longer than
# the longest customer takes (a 100,000-user tenant under its budget: well under 2 hours), or a
# live worker's customer would be started twice (harmless, the lease makes it wait, but wasted).
# RabbitMQ needs none: it redelivers when the dead worker's connection closes.
VISIBILITY_TIMEOUT = 4 * 3600
# How often a running attempt adds its requests to the store: what a SIGKILL can leave uncounted.
# One small UPDATE per customer in flight per second, against the pages it writes meanwhile.
COUNT_EVERY = 1.0
# How many runs' access resolvers a worker keeps (each holds its run's GDAP relationships, read
# once per region and run, as a local sync reads them): the runs a worker serves at once.
RESOLVERS_KEPT = 4


def make_app(broker: str, queue: str = DEFAULT_QUEUE) -> Celery:
    """The Celery application both sides use: the enqueuer sends with it, workers run it."""
    app = Celery("cspgraph", broker=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        # Acknowledged once the customer is recorded: a killed worker's customers run again.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message per free slot: a worker that dies holds no customers it had not begun.
        worker_prefetch_multiplier=1,
        # Progress and outcomes are in the store; no result backend to run or to fill.
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    app.task(name=TASK, bind=True)(_run_task)
    return app


# -- the worker side ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    """What a worker needs besides its broker: the partner configuration (its own credentials:
    tokens stay per worker), the store, and where the shared Graph budget lives."""

    config: Config
    store_url: str
    # Redis URL of the shared budget; None gives the worker a limiter of its own (one machine,
    # one worker, or the comparison in tests/scale: separate limiters overrun the app budget).
    budget_url: str | None
    budget_namespace: str = DEFAULT_NAMESPACE
    # Multiplies every Graph budget, as the emulator's throttling scale does (tests, benchmarks).
    budget_scale: float = 1.0


_settings: WorkerSettings | None = None
_runtime: _WorkerRuntime | None = None
_runtime_lock = threading.Lock()


class _WorkerRuntime:
    """One per worker process: an asyncio loop on a thread of its own, the tokens, the limiter,
    the store, its writer and the leases. Celery's thread pool runs tasks; each hands its
    customer to the loop, so a worker's customers share one token cache and one limiter."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="cspgraph-worker-loop", daemon=True
        )
        self._thread.start()
        self.store = Store.open(settings.store_url)
        self.writer = StoreWriter(self.store, 1 if self.store.dialect == "sqlite" else 4)
        self.leases = TenantLeases(self.store)
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(self.leases.heartbeat())
        # As many token and discovery requests in flight as a local sync has: every customer
        # needs both before its first Graph request, and the token layer's default 8 capped a
        # worker at ~9 customers a second whatever its --concurrency (1,000 customers: 110 s
        # with 32 at once, 103 s with 128; bench.scale, 2026-12-07).
        self.provider = TokenProvider(settings.config, workers=TOKEN_WORKERS)
        self.limiter: Limiter
        self._shared: AsyncRedisLimiter | None = None
        self._partner_center: RedisPartnerCenterPacers | None = None
        if settings.budget_url is not None:
            # Reached without blocking the loop: the worker's other customers go on meanwhile.
            self.limiter = self._shared = AsyncRedisLimiter(
                settings.budget_url,
                namespace=settings.budget_namespace,
                scale=settings.budget_scale,
                app_of=app_of(self.provider),
            )
            # Partner Center's 500 a minute per partner tenant, shared by the workers too: every
            # Partner Center client of this worker's provider paces in the namespace's window.
            self._partner_center = RedisPartnerCenterPacers(
                settings.budget_url, namespace=settings.budget_namespace
            )
            share_pacers(self.provider, self._partner_center.pacer)
        else:
            self.limiter = GraphLimiter(scale=settings.budget_scale, app_of=app_of(self.provider))
        # The partner service account (gdap-delegated customers), as a local sync has it.
        self.service = service_account(self.provider)
        # Each run's way of finding out how its customers are reached (made on the loop).
        self._resolvers: dict[str, tuple[FleetTokens, AccessResolver]] = {}
        self._relationships: GraphClient | None = None

    async def _access_of(self, run_id: str) -> tuple[FleetTokens, AccessResolver]:
        """The run's tokens and access resolver: per run, so a worker serving for weeks reads
        each run's GDAP relationships afresh and a customer found delegated in one run is
        found out again in the next."""
        found = self._resolvers.get(run_id)
        if found is not None:
            return found
        if self._relationships is None:
            cloud = self.provider.cloud
            # The reads of the partners' relationships (one per region and run): over the
            # worker's limiter, outside any customer's counters.
            self._relationships = GraphClient(
                self.provider, graph_url=cloud.graph, ca_bundle=cloud.ca_bundle,
                limiter=self.limiter, throttle_priority="Low",
            )  # fmt: skip
        tokens = FleetTokens(self.provider, self.service)
        resolver = AccessResolver(self.provider, self.store, self._relationships, tokens=tokens)
        self._resolvers[run_id] = found = (tokens, resolver)
        while len(self._resolvers) > RESOLVERS_KEPT:  # the oldest run's first
            _, oldest = self._resolvers.pop(next(iter(self._resolvers)))
            await oldest.aclose()
        return found

    def sync(
        self, run_id: str, key: str, customer: CustomerRef, settings: SyncSettings, worker: str
    ) -> str:
        future = asyncio.run_coroutine_threadsafe(
            self._sync(run_id, key, customer, settings, worker), self.loop
        )
        return future.result()

    async def _sync(
        self, run_id: str, key: str, customer: CustomerRef, settings: SyncSettings, worker: str
    ) -> str:
        store, writer = self.store, self.writer
        await writer.run(start_attempt, store, run_id, key, worker)
        cloud = self.provider.cloud
        tokens, resolver = await self._access_of(run_id)
        # A client per customer, over the worker's tokens and limiter: its counters are this
        # customer's alone (the run's requests and 429s are their sum). One TLS handshake more
        # per customer, against the dozens of requests a customer takes.
        async with GraphClient(
            tokens,
            graph_url=cloud.graph,
            ca_bundle=cloud.ca_bundle,
            limiter=self.limiter,
            throttle_priority="Low",
        ) as client:
            spent = _Spent(store, run_id, key, client.stats)
            done = asyncio.Event()
            counting = asyncio.create_task(spent.count_every(writer, COUNT_EVERY, done))
            try:
                result = await sync_tenant(
                    client, tokens, writer, NullProgress(), settings, customer, self.leases,
                    resolver,
                )  # fmt: skip
            finally:
                done.set()
                await counting
        await writer.run(runs.record_tenant, store, run_id, result)
        await writer.run(finish_attempt, store, run_id, key, result, spent.unsaved())
        return result.status.value

    async def _aclose(self) -> None:
        for _, resolver in self._resolvers.values():
            await resolver.aclose()
        if self._relationships is not None:
            await self._relationships.close()
        await self.provider.aclose()
        if self._partner_center is not None:
            await self._partner_center.aclose()

    def close(self) -> None:
        self._stack.close()
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._aclose(), self.loop).result(30)
        if self._shared is not None:
            with contextlib.suppress(Exception):  # what it had not sent yet: learnt again
                asyncio.run_coroutine_threadsafe(self._shared.aclose(), self.loop).result(30)
        if self.service is not None:
            self.service.close()
        self.writer.close()
        with contextlib.suppress(Exception):  # they expire on their own
            self.leases.release_all()
        self.store.close()
        self.loop.call_soon_threadsafe(self.loop.stop)


def configure_worker(settings: WorkerSettings) -> None:
    """Set what this process's worker syncs with (before :func:`start_worker`)."""
    global _settings
    _settings = settings


def _runtime_here() -> _WorkerRuntime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            if _settings is None:
                raise RuntimeError("this worker was started without cspgraph's settings")
            _runtime = _WorkerRuntime(_settings)
        return _runtime


def _close_runtime(**_: Any) -> None:
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.close()
            _runtime = None


worker_shutdown.connect(_close_runtime)


def _run_task(
    task: Any, run_id: str, key: str, customer: dict[str, Any], options: dict[str, Any]
) -> str:
    """One customer of a run. Idempotent: see the module docstring."""
    settings = SyncSettings(
        full=bool(options["full"]),
        page_size=int(options["page_size"]),
        resources=frozenset(options["resources"]),
        # A customer whose lease another holder has (a dead worker elsewhere, until it expires;
        # a local run) is waited for: the task must end with the customer synced.
        wait=True,
    )
    worker = f"{task.request.hostname} pid={os.getpid()}"
    return _runtime_here().sync(run_id, key, CustomerRef(**customer), settings, worker)


def start_worker(
    broker: str,
    settings: WorkerSettings,
    *,
    concurrency: int = 8,
    name: str | None = None,
    queue: str = DEFAULT_QUEUE,
    loglevel: str = "INFO",
) -> None:
    """Run a Celery worker in this process until it is stopped (SIGTERM: warm shutdown).

    The thread pool: a customer's sync waits on Graph and the store, not on the CPU, and the
    threads share the process's one event loop, tokens and limiter. More CPU: more processes
    (``cspgraph worker`` per core, or per machine)."""
    configure_worker(settings)
    app = make_app(broker, queue)
    argv = [
        "worker",
        "--pool=threads",
        f"--concurrency={concurrency}",
        f"--queues={queue}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]
    if name:
        argv.append(f"--hostname={name}")
    app.worker_main(argv)


# -- the store side of a distributed run (blocking; run on a writer thread) ------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def start_attempt(store: Store, run_id: str, key: str, worker: str) -> None:
    with store.write_transaction() as cursor:
        cursor.execute(
            store.driver_sql(
                "INSERT INTO run_tasks (run_id, customer, worker, attempts, started_at)"
                " VALUES (?, ?, ?, 1, ?) ON CONFLICT (run_id, customer) DO UPDATE SET"
                " worker = excluded.worker, attempts = run_tasks.attempts + 1,"
                " started_at = excluded.started_at, finished_at = NULL, status = NULL"
            ),
            (run_id, key, worker, store.driver_time(_now())),
        )


class _Spent:
    """One attempt's Graph requests and 429s, added to its run_tasks row as they grow."""

    def __init__(self, store: Store, run_id: str, key: str, stats: GraphStats) -> None:
        self._store, self._run_id, self._key, self._stats = store, run_id, key, stats
        self._saved = (0, 0)

    def unsaved(self) -> tuple[int, int]:
        """Requests and 429s since the last time they were saved; from now on they count as
        saved (the caller saves them)."""
        now = (self._stats.requests, self._stats.throttled)
        delta = (now[0] - self._saved[0], now[1] - self._saved[1])
        self._saved = now
        return delta

    async def count_every(self, writer: StoreWriter, seconds: float, done: asyncio.Event) -> None:
        """Save what was spent every ``seconds`` until ``done`` (never cancelled mid-write, so
        nothing taken from :meth:`unsaved` is lost)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), seconds)
            if done.is_set():
                return
            delta = self.unsaved()
            if delta != (0, 0):
                await writer.run(add_spent, self._store, self._run_id, self._key, delta)


# Increments, so that overlapping attempts of one customer never overwrite each other's counts.
_ADD_SPENT_SQL = (
    "UPDATE run_tasks SET requests = COALESCE(requests, 0) + ?,"
    " throttled = COALESCE(throttled, 0) + ? WHERE run_id = ? AND customer = ?"
)
_FINISH_SQL = (
    "UPDATE run_tasks SET tenant_id = ?, finished_at = ?, status = ?,"
    " requests = COALESCE(requests, 0) + ?, throttled = COALESCE(throttled, 0) + ?"
    " WHERE run_id = ? AND customer = ?"
)


def add_spent(store: Store, run_id: str, key: str, delta: tuple[int, int]) -> None:
    """Add an attempt's requests and 429s since it last did to the customer's run_tasks row."""
    with store.write_transaction() as cursor:
        cursor.execute(
            store.driver_sql(_ADD_SPENT_SQL),
            (*delta, run_id, key),
        )


def finish_attempt(
    store: Store, run_id: str, key: str, result: TenantResult, delta: tuple[int, int]
) -> None:
    """The attempt's outcome, and what it spent since it last added that."""
    with store.write_transaction() as cursor:
        cursor.execute(
            store.driver_sql(_FINISH_SQL),
            (
                result.tenant_id,
                store.driver_time(_now()),
                result.status.value,
                *delta,
                run_id,
                key,
            ),
        )


@dataclasses.dataclass(frozen=True)
class TaskRow:
    """One customer of a distributed run as the store has it."""

    customer: str
    tenant_id: str | None
    worker: str | None
    attempts: int
    finished: bool
    status: str | None
    requests: int | None
    throttled: int | None


def task_rows(store: Store, run_id: str) -> list[TaskRow]:
    c = run_tasks.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(
                c.customer, c.tenant_id, c.worker, c.attempts, c.finished_at, c.status,
                c.requests, c.throttled,
            ).where(c.run_id == run_id)
        ).all()  # fmt: skip
    return [TaskRow(r[0], r[1], r[2], r[3], r[4] is not None, r[5], r[6], r[7]) for r in rows]


def _results(
    store: Store, run_id: str, sent: dict[str, CustomerRef], since: datetime
) -> list[TenantResult]:
    """Each customer's outcome as the workers recorded it (``since``: the run's start; how each
    customer was reached counts from then on)."""
    rc = run_customers.c
    with store.engine.connect() as conn:
        recorded = {
            r.tenant_id: r
            for r in conn.execute(
                select(
                    rc.tenant_id, rc.status, rc.reason, rc.error_class, rc.region, rc.modes,
                    rc.received, rc.seconds,
                ).where(rc.run_id == run_id)
            )
        }  # fmt: skip
    rows = task_rows(store, run_id)
    access = recorded_access(store, (r.tenant_id for r in rows if r.tenant_id), since)
    results = []
    for row in rows:
        customer = sent.get(row.customer, CustomerRef(reference=row.customer))
        result = TenantResult(customer=customer, tenant_id=row.tenant_id, region=customer.region)
        result.status = CustomerStatus(row.status or CustomerStatus.FAILED.value)
        detail = recorded.get(row.tenant_id)
        if detail is not None:
            result.region = detail.region
            result.reason = detail.reason if result.status is not CustomerStatus.OK else None
            result.error_class = detail.error_class
            result.modes = dict(detail.modes or {})
            result.received = dict(detail.received or {})
            result.seconds = detail.seconds or 0.0
        if row.tenant_id is not None:
            result.access = access.get(row.tenant_id)
        results.append(result)
    return results


# -- the enqueuing side ---------------------------------------------------------------------------

Progress = Callable[[int, int], None]  # (customers finished, customers enqueued)


async def enqueue_sync(
    config: Config,
    store: Store,
    broker: str,
    *,
    customers: Iterable[str] | None = None,
    full: bool = False,
    page_size: int = MAX_PAGE_SIZE,
    resources: Sequence[str] | None = None,
    queue: str = DEFAULT_QUEUE,
    poll: float = 1.0,
    progress: Progress | None = None,
    give_up_after: float | None = None,
    enqueued: Callable[[str, int], None] | None = None,
) -> SyncSummary:
    """Sync every customer (or ``customers``) on the workers listening on ``queue``; returns
    when every customer's task has finished, with the run's summary (see the module docstring).

    ``enqueued(run_id, customers)`` is told once every message is sent: from then on the run
    goes on without this process, and :func:`follow_run` can pick it up from the store.
    ``give_up_after``: stop following after this many seconds (:class:`TimeoutError`; the workers
    go on, and the run is in the store as they record it)."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    wanted = sorted(set(resources or ALL_RESOURCES))
    if not set(wanted) <= set(ALL_RESOURCES):
        unknown = sorted(set(wanted) - set(ALL_RESOURCES))
        raise ValueError(f"unknown resources {unknown}; expected some of {list(ALL_RESOURCES)}")
    run_id, started_at = uuid.uuid4().hex, _now()
    errors = ListingErrors()
    seen = runs.ListedTenants()
    listed: list[CustomerRef] = []
    async with TokenProvider(config) as provider:
        if customers is None:
            async for customer in seen.watch(partner_center_customers(provider, errors=errors)):
                listed.append(customer)
        else:
            listed = customers_from_list(customers)
        # Whose GDAP relationships the workers cannot read, and why (the same app everywhere:
        # what the enqueuer is told is what each worker is), said as a local sync says it.
        gdap_unknown = await _gdap_unknown(provider)
    unique: dict[str, CustomerRef] = {}
    for customer in listed:
        key = (customer.tenant_id or customer.reference).strip().lower()
        unique.setdefault(key, customer)  # one customer listed by two regions: once
    sent = region_turns(unique)
    options = {"full": full, "page_size": page_size, "resources": wanted}
    await asyncio.to_thread(runs.begin_run, store, run_id, started_at)
    listed_how = runs.NAMED if customers is not None else runs.PARTNER_CENTER
    # The listing and the number of customers first: whoever follows the run from the store
    # (this process, or `sync --follow` after it stopped) knows how many tasks make it whole.
    await asyncio.to_thread(runs.note_listing, store, run_id, listed_how, errors.by_region)
    await asyncio.to_thread(runs.note_enqueued, store, run_id, len(sent))
    await asyncio.to_thread(_send, broker, queue, run_id, sent, options)
    if enqueued is not None:
        enqueued(run_id, len(sent))
    gone: list[str] = []
    if customers is None and seen.complete and not errors.by_region:
        gone = await asyncio.to_thread(runs.mark_gone, store, seen.tenants)
    summary = await follow_run(
        store, run_id, poll=poll, progress=progress, give_up_after=give_up_after, sent=sent
    )
    summary.gone, summary.gdap_unknown = gone, gdap_unknown
    return summary


class NotARun(LookupError):
    """``follow_run`` was given a run id the store cannot follow (unknown, or not a run of
    workers); the message says which."""


async def follow_run(
    store: Store,
    run_id: str,
    *,
    poll: float = 1.0,
    progress: Progress | None = None,
    give_up_after: float | None = None,
    sent: dict[str, CustomerRef] | None = None,
) -> SyncSummary:
    """Follow a run of workers in the store until every customer's task has finished (at once
    for a run that has), record its end, and return its summary. Any process may follow any run:
    the one that enqueued it, or ``cspgraph sync --engine celery --follow RUN_ID`` after that one
    was stopped; two following one run record the same end.

    Raises :class:`NotARun` for a run the store does not have, or one not enqueued for workers
    (a local run: its own process follows it, and when that dies the run stays ``running``)."""
    started = time.monotonic()
    record = await asyncio.to_thread(run_progress, store, run_id)
    if record is None:
        raise NotARun(f"no run {run_id} in the store")
    if not record.on_workers:
        raise NotARun(
            f"run {run_id} was not enqueued for workers (a local sync run, or one whose enqueuer "
            "stopped before it sent the customers): nothing to follow"
        )
    total = record.customers or 0
    deadline = None if give_up_after is None else started + give_up_after
    while True:
        rows = await asyncio.to_thread(task_rows, store, run_id)
        done = sum(1 for row in rows if row.finished)
        if progress is not None:
            progress(done, total)
        if done >= total:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(
                f"run {run_id}: {done} of {total} customers finished after {give_up_after} s"
            )
        await asyncio.sleep(poll)
    results = await asyncio.to_thread(_results, store, run_id, sent or {}, record.started_at)
    graph = {
        "requests": sum(row.requests or 0 for row in rows),
        "throttled": sum(row.throttled or 0 for row in rows),
    }
    # The run's time is from its start as recorded, whoever follows it.
    wall_time = (_now() - record.started_at).total_seconds()
    if record.outcome == runs.RUNNING:
        await asyncio.to_thread(
            runs.finish_run, store, run_id, runs.COMPLETED, results, graph, wall_time
        )
    else:  # already ended (followed before): as it was recorded
        wall_time = record.wall_time if record.wall_time is not None else wall_time
    return SyncSummary(
        tenants=results,
        started_at=record.started_at,
        wall_time=wall_time,
        graph=graph,
        listing_errors=dict(record.listing_errors),
        run_id=run_id,
    )


async def _gdap_unknown(provider: TokenProvider) -> dict[str, str]:
    """Each region whose GDAP relationships cannot be read, with why (one request per region)."""
    cloud = provider.cloud
    async with GraphClient(provider, graph_url=cloud.graph, ca_bundle=cloud.ca_bundle) as graph:
        found = await read_gdap_relationships(graph, provider)
    return dict(found.unknown)


def region_turns(customers: dict[str, CustomerRef]) -> dict[str, CustomerRef]:
    """The customers one region after another in turn, as the local sync hands them out
    (:class:`~cspgraph.fleet.sync.RegionTurns`): each region is its own app with its own
    app-wide budgets, and a queue that held a whole region before the next would leave the other
    apps' budgets idle. Within a region, in listing order."""
    by_region: dict[str | None, list[tuple[str, CustomerRef]]] = {}
    for key, customer in customers.items():
        by_region.setdefault(customer.region, []).append((key, customer))
    turns: dict[str, CustomerRef] = {}
    for round_ in itertools.zip_longest(*by_region.values()):
        turns.update(item for item in round_ if item is not None)
    return turns


def _send(
    broker: str, queue: str, run_id: str, sent: dict[str, CustomerRef], options: dict[str, Any]
) -> None:
    """One message per customer, over one connection; its id is the run and the customer, so a
    message sent twice is still one customer of one run."""
    app = make_app(broker, queue)
    with app.connection_for_write() as connection, app.producer_or_acquire() as producer:
        del connection
        for key, customer in sent.items():
            app.send_task(
                TASK,
                args=[run_id, key, dataclasses.asdict(customer), options],
                task_id=f"{run_id}:{key}",
                queue=queue,
                producer=producer,
            )
