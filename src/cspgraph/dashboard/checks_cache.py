"""The checks' results, kept between requests while the store does not change.

Running every check reads the whole fleet (one query or two per check); the pages that show
findings would otherwise pay that on every click. The results are kept until a sync records
something (:func:`~cspgraph.dashboard.queries.store_version` changes) or they are
:data:`MAX_AGE` old (some findings depend on the time alone: data older than a week, a
credential about to end). One computation at a time: requests arriving while it runs wait for
its result instead of starting their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cspgraph.dashboard.queries import store_version
from cspgraph.fleet.checks import CheckResults, run_checks
from cspgraph.fleet.needs_action import ActionItem, needs_action
from cspgraph.fleet.store import Store

MAX_AGE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Evaluated:
    results: CheckResults
    actions: list[ActionItem]
    seconds: float  # how long the checks took (shown in the page's footer)
    worst: dict[str, Any]  # tenant id -> its worst finding's severity

    @classmethod
    def of(cls, results: CheckResults, seconds: float) -> Evaluated:
        worst: dict[str, Any] = {}
        for finding in results.findings:  # worst first: the first one per customer is its worst
            if finding.tenant_id is not None:
                worst.setdefault(finding.tenant_id, finding.severity)
        return cls(results, needs_action(results), seconds, worst)

    def findings_of(self, tenant_id: str) -> list[Any]:
        return [f for f in self.results.findings if f.tenant_id == tenant_id]


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
        self._lock = threading.Lock()
        self._version: tuple[Any, ...] | None = None
        self._value: Evaluated | None = None

    def get(self) -> Evaluated:
        with self._store.reading() as conn:
            version = store_version(conn)
        with self._lock:
            now = self._clock()
            value = self._value
            if (
                value is None
                or version != self._version
                or now - value.results.evaluated_at > self._max_age
            ):
                started = datetime.now(UTC)
                results = run_checks(self._store, now=now)
                seconds = (datetime.now(UTC) - started).total_seconds()
                value = Evaluated.of(results, seconds)
                self._value, self._version = value, version
            return value
