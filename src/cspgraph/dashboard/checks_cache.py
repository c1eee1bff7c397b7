"""The checks' results, kept between requests, and made again in the background.

Running every check reads the whole fleet: about a second per 200 customers (bench/dashboard.py),
so tens of seconds at 5,000. No page may wait for that on every click, and the customer list,
whose search must answer at once, never waits for it at all:

* :meth:`ChecksCache.peek` (the customer list's findings column) returns what is there, possibly
  old, or None before the first results; it never blocks.
* :meth:`ChecksCache.get` (needs action, a customer's page) waits only when there is nothing to
  show or a sync has recorded something since (:func:`~cspgraph.dashboard.queries.store_version`
  changed: old findings would be wrong); results merely older than :data:`MAX_AGE` (some findings
  depend on the time alone: data older than a week, a credential about to end) are shown while
  new ones are made on a background thread.
* :meth:`ChecksCache.warm` starts the first run when the server starts.

One run at a time: requests arriving while it runs wait for its result instead of starting their
own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cspgraph.dashboard.queries import store_version
from cspgraph.fleet.checks import CheckResults, Finding, run_checks
from cspgraph.fleet.needs_action import ActionItem, needs_action
from cspgraph.fleet.store import Store

MAX_AGE = timedelta(minutes=5)
log = logging.getLogger("cspgraph.dashboard")


@dataclass(frozen=True, slots=True)
class Evaluated:
    results: CheckResults
    actions: list[ActionItem]
    seconds: float  # how long the checks took (shown under needs action)
    worst: dict[str, Any]  # tenant id -> its worst finding's severity
    version: tuple[Any, ...]  # the store's version the checks read
    # tenant id -> its findings, worst first: a page of 50 customers looked each one up in
    # 20,000 findings (1.35 s of a 1.48 s page at 5,000 customers, profiled).
    by_tenant: dict[str, list[Finding]]

    @classmethod
    def of(cls, results: CheckResults, seconds: float, version: tuple[Any, ...]) -> Evaluated:
        by_tenant: dict[str, list[Finding]] = {}
        for finding in results.findings:  # worst first: the first one per customer is its worst
            if finding.tenant_id is not None:
                by_tenant.setdefault(finding.tenant_id, []).append(finding)
        worst = {tenant: found[0].severity for tenant, found in by_tenant.items()}
        return cls(results, needs_action(results), seconds, worst, version, by_tenant)

    def findings_of(self, tenant_id: str) -> list[Finding]:
        return self.by_tenant.get(tenant_id, [])


class ChecksCache:
    def __init__(
        self,
        store: Store,
        *,
        max_age: timedelta = MAX_AGE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._max_age = max_age
        self._clock = clock
        self._running = threading.Lock()  # held while the checks run
        self._value: Evaluated | None = None
        self._refreshing = False
        self._state = threading.Lock()  # guards _refreshing
        self._idle = threading.Event()  # set while no background run is under way
        self._idle.set()

    def _version(self) -> tuple[Any, ...]:
        with self._store.reading() as conn:
            return store_version(conn)

    def _run(self, version: tuple[Any, ...]) -> Evaluated:
        """Run the checks unless another thread just did for this version."""
        with self._running:
            value = self._value
            if value is not None and value.version == version and not self._old(value):
                return value
            now = self._clock()
            started = datetime.now(UTC)
            results = run_checks(self._store, now=now)
            seconds = (datetime.now(UTC) - started).total_seconds()
            value = Evaluated.of(results, seconds, version)
            self._value = value
            return value

    def _old(self, value: Evaluated) -> bool:
        return self._clock() - value.results.evaluated_at > self._max_age

    def get(self) -> Evaluated:
        """Results for the store as it is now (see the module's docstring)."""
        version = self._version()
        value = self._value
        if value is None or value.version != version:
            return self._run(version)
        if self._old(value):
            self._refresh(version)
        return value

    def peek(self) -> Evaluated | None:
        """Whatever results there are, never waiting; a refresh starts when they are out of
        date."""
        value = self._value
        if value is None or value.version != self._version() or self._old(value):
            self._refresh(None)
        return value

    def warm(self) -> None:
        """Make the first results in the background (the server calls this when it starts)."""
        self._refresh(None)

    def _refresh(self, version: tuple[Any, ...] | None) -> None:
        with self._state:
            if self._refreshing:
                return
            self._refreshing = True
            self._idle.clear()

        def work() -> None:
            try:
                self._run(version if version is not None else self._version())
            except Exception:  # a page that needs them runs them itself and shows the error
                log.exception("the dashboard's checks could not run")
            finally:
                with self._state:
                    self._refreshing = False
                    self._idle.set()

        threading.Thread(target=work, name="cspgraph-dashboard-checks", daemon=True).start()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no background run is under way (tests, the benchmark); False on timeout."""
        return self._idle.wait(timeout)
