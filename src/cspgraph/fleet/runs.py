"""Every sync run, recorded: when it ran, how each customer's sync ended and what the store then
held, so the store has a history (the dashboard's runs, "failing for N runs").

:class:`RunRecorder` is what :func:`cspgraph.fleet.sync.sync_customers` uses: it begins a run,
records each customer as it finishes (on the store writer's thread, so the event loop never
waits for it) and ends the run, also when the run is interrupted. Per customer it keeps

* a ``run_customers`` row (status, reason, modes, the customer's figures after the run);
* ``customer_state``: how many runs in a row have not ended "ok", and since when;
* ``coverage``: which resources its last successful sync could read (no Intune licence, no
  role permission: unknown, not 0);
* the security-relevant state and what changed in it (:mod:`cspgraph.fleet.security_state`).

:func:`mark_gone` and :func:`prune_gone` handle customers Partner Center no longer lists.
Recording must never fail a sync: an error here is logged and the sync goes on.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from cspgraph.fleet import security_state
from cspgraph.fleet.customers import CustomerRef
from cspgraph.fleet.outcomes import CustomerStatus, SyncSummary, TenantResult
from cspgraph.fleet.progress import SyncProgress
from cspgraph.fleet.schema import metadata
from cspgraph.fleet.store import Store
from cspgraph.fleet.store_writer import StoreWriter

if TYPE_CHECKING:  # a type only: importing the Graph client would load aiohttp here
    from cspgraph.graph.client import GraphStats

log = logging.getLogger(__name__)

RUNNING, COMPLETED, INTERRUPTED, FAILED = "running", "completed", "interrupted", "failed"
# How a run found its customers: Partner Center's full lists, or names the caller gave.
PARTNER_CENTER, NAMED = "partner_center", "named"


def _now() -> datetime:
    return datetime.now(UTC)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# --- the store side (blocking; runs on the writer thread) ----------------------------------------


def begin_run(store: Store, run_id: str, started_at: datetime) -> None:
    with store.write_transaction() as cursor:
        cursor.execute(
            store.driver_sql("INSERT INTO runs (run_id, started_at, outcome) VALUES (?, ?, ?)"),
            (run_id, store.driver_time(started_at), RUNNING),
        )


def finish_run(
    store: Store,
    run_id: str,
    outcome: str,
    results: Iterable[TenantResult],
    graph: Mapping[str, int],
    wall_time: float,
) -> None:
    statuses: dict[str, int] = {}
    count = 0
    for result in results:
        count += 1
        statuses[result.status.value] = statuses.get(result.status.value, 0) + 1
    with store.write_transaction() as cursor:
        cursor.execute(
            store.driver_sql(
                "UPDATE runs SET finished_at = ?, outcome = ?, customers = ?, statuses = ?,"
                " requests = ?, throttled = ?, wall_time = ? WHERE run_id = ?"
            ),
            (
                store.driver_time(_now()),
                outcome,
                count,
                _json(statuses),
                graph.get("requests", 0),
                graph.get("throttled", 0),
                round(wall_time, 3),
                run_id,
            ),
        )


def note_listing(store: Store, run_id: str, listed: str, listing_errors: Mapping[str, str]) -> None:
    """How the run's customers were found, and the regions whose list could not be read."""
    with store.write_transaction() as cursor:
        cursor.execute(
            store.driver_sql("UPDATE runs SET listed = ?, listing_errors = ? WHERE run_id = ?"),
            (listed, _json(dict(listing_errors)), run_id),
        )


def note_enqueued(store: Store, run_id: str, customers: int) -> None:
    """A run of workers (``sync --engine celery``): how many customers it sent them, recorded
    before the first is sent, so that any process can tell from the store when the run is whole.
    A local run's ``customers`` stays empty until it ends."""
    with store.write_transaction() as cursor:
        cursor.execute(
            store.driver_sql("UPDATE runs SET customers = ? WHERE run_id = ?"), (customers, run_id)
        )


def record_tenant(store: Store, run_id: str, result: TenantResult) -> None:
    """Everything a run keeps about one customer, in one transaction."""
    tenant = result.tenant_id
    if tenant is None:  # never placed: nothing in the store to attach it to
        return
    now = _now()
    ok = result.status is CustomerStatus.OK
    with store.write_transaction() as cursor:
        figures: dict[str, Any] = {}
        if ok:
            _record_coverage(store, cursor, tenant, run_id, result.modes, now)
            figures = security_state.record(store, cursor, tenant, run_id, result.modes, now)
        cursor.execute(
            store.driver_sql(
                "INSERT INTO run_customers (run_id, tenant_id, finished_at, status, reason,"
                " error_class, region, modes, received, seconds, figures)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, tenant_id)"
                " DO UPDATE SET finished_at = excluded.finished_at, status = excluded.status,"
                " reason = excluded.reason, error_class = excluded.error_class,"
                " modes = excluded.modes, received = excluded.received,"
                " seconds = excluded.seconds, figures = excluded.figures"
            ),
            (
                run_id,
                tenant,
                store.driver_time(now),
                result.status.value,
                result.reason if not ok else "; ".join(result.notes) or None,
                result.error_class,
                result.region,
                _json(result.modes),
                _json(result.received),
                round(result.seconds, 3),
                _json(figures),
            ),
        )
        if result.status is not CustomerStatus.RUNNING:
            # "running": another run holds the customer and records how its sync ends.
            _record_state(store, cursor, tenant, run_id, ok, now)


def _record_state(
    store: Store, cursor: Any, tenant: str, run_id: str, ok: bool, now: datetime
) -> None:
    """The failing streak: reset by an "ok" sync, else one more run (since the first)."""
    if ok:
        cursor.execute(
            store.driver_sql(
                "INSERT INTO customer_state (tenant_id, failing_runs, failing_since, last_run_id,"
                " state_run_id) VALUES (?, 0, NULL, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET"
                " failing_runs = 0, failing_since = NULL, last_run_id = excluded.last_run_id,"
                " state_run_id = excluded.state_run_id, gone_since = NULL"
            ),
            (tenant, run_id, run_id),
        )
        return
    cursor.execute(
        store.driver_sql(
            "INSERT INTO customer_state (tenant_id, failing_runs, failing_since, last_run_id)"
            " VALUES (?, 1, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET"
            " failing_runs = CASE WHEN customer_state.last_run_id = excluded.last_run_id"
            " THEN customer_state.failing_runs ELSE customer_state.failing_runs + 1 END,"
            " failing_since = coalesce(customer_state.failing_since, excluded.failing_since),"
            " last_run_id = excluded.last_run_id, gone_since = NULL"
        ),
        (tenant, store.driver_time(now), run_id),
    )


def _record_coverage(
    store: Store,
    cursor: Any,
    tenant: str,
    run_id: str,
    modes: Mapping[str, str],
    now: datetime,
) -> None:
    """What this successful sync could read: each resource it pulled, or why it could not."""
    rows = []
    for resource, mode in modes.items():
        skipped = mode.startswith("skipped")
        reason = mode.partition(":")[2].strip() or None if skipped else None
        rows.append((tenant, resource, not skipped, reason, run_id, store.driver_time(now)))
    if rows:
        cursor.executemany(
            store.driver_sql(
                "INSERT INTO coverage (tenant_id, resource, available, reason, run_id, at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, resource) DO UPDATE SET"
                " available = excluded.available, reason = excluded.reason,"
                " run_id = excluded.run_id, at = excluded.at"
            ),
            rows,
        )


def mark_gone(store: Store, listed: Iterable[str], at: datetime | None = None) -> list[str]:
    """Customers of the store that a complete listing no longer named: marked gone (the date of
    the first such run is kept); returns their tenant ids. Their data stays."""
    at = at or _now()
    present = {t.lower() for t in listed}
    with store.write_transaction() as cursor:
        cursor.execute("SELECT tenant_id FROM customers")
        gone = [row[0] for row in cursor.fetchall() if row[0].lower() not in present]
        if gone:
            cursor.executemany(
                store.driver_sql(
                    "INSERT INTO customer_state (tenant_id, failing_runs, gone_since)"
                    " VALUES (?, 0, ?) ON CONFLICT (tenant_id) DO UPDATE SET"
                    " gone_since = coalesce(customer_state.gone_since, excluded.gone_since)"
                ),
                [(tenant, store.driver_time(at)) for tenant in gone],
            )
    return gone


def prune_gone(store: Store) -> list[str]:
    """Delete everything the store holds about customers marked gone; returns their ids."""
    with store.write_transaction() as cursor:
        cursor.execute("SELECT tenant_id FROM customer_state WHERE gone_since IS NOT NULL")
        gone = [row[0] for row in cursor.fetchall()]
        if gone:
            # Every table keyed by tenant, this module's included (names are the schema's own).
            tables = [t.name for t in metadata.sorted_tables if "tenant_id" in t.c]
            for table in tables:
                cursor.executemany(
                    store.driver_sql(f"DELETE FROM {table} WHERE tenant_id = ?"),  # noqa: S608
                    [(tenant,) for tenant in gone],
                )
    return gone


# --- the sync side (on the event loop) -----------------------------------------------------------


class ListedTenants:
    """The tenants a customer listing named, and whether it was read to its end."""

    def __init__(self) -> None:
        self.tenants: set[str] = set()
        self.complete = False

    async def watch(self, listing: AsyncIterator[CustomerRef]) -> AsyncIterator[CustomerRef]:
        async for customer in listing:
            if customer.tenant_id:
                self.tenants.add(customer.tenant_id.lower())
            yield customer
        self.complete = True


class RunRecorder:
    """Records one sync run through the sync's store writer; see the module docstring."""

    def __init__(self, writer: StoreWriter, run_id: str, started_at: datetime) -> None:
        self.writer = writer
        self.run_id = run_id
        self.started_at = started_at

    @classmethod
    async def begin(cls, writer: StoreWriter) -> RunRecorder:
        recorder = cls(writer, uuid.uuid4().hex, _now())
        try:
            await writer.run(begin_run, writer.store, recorder.run_id, recorder.started_at)
        except Exception:  # a store that cannot record runs still syncs
            log.exception("could not record the start of sync run %s", recorder.run_id)
        return recorder

    def tenant(self, result: TenantResult) -> None:
        self._submit(record_tenant, self.writer.store, self.run_id, result)

    def finish(
        self,
        outcome: str,
        results: list[TenantResult],
        graph: Mapping[str, int],
        wall_time: float,
    ) -> None:
        """Queued behind the customers still being written; the writer's close waits for it."""
        self._submit(
            finish_run, self.writer.store, self.run_id, outcome, list(results), graph, wall_time
        )

    def watching(self, inner: SyncProgress) -> SyncProgress:
        """``inner``, with each finished customer also recorded."""
        return _Recording(inner, self)

    def _submit(self, fn: Any, *args: Any) -> None:
        try:
            future = self.writer.submit(fn, *args)
        except RuntimeError:  # the writer is closed (the run is over)
            log.error("sync run %s: %s not recorded, the writer is closed", self.run_id, fn)
            return
        future.add_done_callback(self._logged)

    def _logged(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("sync run %s: could not record: %s", self.run_id, future.exception())


class _Recording:
    """A progress observer that also records each finished customer."""

    def __init__(self, inner: SyncProgress, recorder: RunRecorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def started(self, stats: GraphStats) -> None:
        self._inner.started(stats)

    def customers_found(self, count: int) -> None:
        self._inner.customers_found(count)

    def tenant_started(self, customer: CustomerRef) -> None:
        self._inner.tenant_started(customer)

    def page_written(self, tenant_id: str, resource: str, objects: int) -> None:
        self._inner.page_written(tenant_id, resource, objects)

    def tenant_finished(self, result: TenantResult) -> None:
        self._recorder.tenant(result)
        self._inner.tenant_finished(result)

    def finished(self, summary: SyncSummary) -> None:
        summary.run_id = self._recorder.run_id
        self._inner.finished(summary)
