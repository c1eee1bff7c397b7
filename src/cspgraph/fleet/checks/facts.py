"""The store as the checks see it: every customer with its sync state and what its last sync
could read, on one read connection (one snapshot), plus the moment the checks are made.

Each check reads the rest itself, fleet-wide in a query or two (:mod:`cspgraph.fleet.inventory`),
which keeps a check fast on thousands of customers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import Connection

from cspgraph.fleet.history_schema import coverage, customer_state
from cspgraph.fleet.outcomes import CustomerStatus
from cspgraph.fleet.schema import OBJECT_TABLES, customers, directory_roles, organizations

NOT_SYNCED = "not synced yet"
T = TypeVar("T")


@dataclass(slots=True)
class CustomerFacts:
    tenant_id: str
    name: str
    domain: str | None
    region: str | None
    status: str | None
    status_reason: str | None
    error_class: str | None
    status_at: datetime | None
    last_sync_at: datetime | None
    failing_runs: int = 0
    failing_since: datetime | None = None
    gone_since: datetime | None = None
    # resource -> (readable, why not); resources the customer's syncs never reported are absent
    coverage: dict[str, tuple[bool, str | None]] = field(default_factory=dict)
    has_rows: set[str] = field(default_factory=set)  # resources the store holds rows of

    @property
    def synced(self) -> bool:
        """Synced successfully at least once: its inventory can be checked."""
        return self.last_sync_at is not None


@dataclass(slots=True)
class Facts:
    conn: Connection
    now: datetime
    customers: dict[str, CustomerFacts]
    _memo: dict[str, Any] = field(default_factory=dict)

    def memo(self, name: str, read: Callable[[], T]) -> T:
        """What several checks read (the role holders), read once."""
        if name not in self._memo:
            self._memo[name] = read()
        value: T = self._memo[name]
        return value

    @classmethod
    def read(cls, conn: Connection, now: datetime) -> Facts:
        org = organizations.c
        names = {row[0]: row[1] for row in conn.execute(select(org.tenant_id, org.display_name))}
        found: dict[str, CustomerFacts] = {}
        for row in conn.execute(select(customers)):
            found[row.tenant_id] = CustomerFacts(
                row.tenant_id,
                row.display_name or names.get(row.tenant_id) or row.domain or row.tenant_id,
                row.domain,
                row.region,
                row.status,
                row.status_reason,
                row.error_class,
                row.status_at,
                row.last_sync_at,
            )
        s = customer_state.c
        for row in conn.execute(select(s.tenant_id, s.failing_runs, s.failing_since, s.gone_since)):
            if (c := found.get(row.tenant_id)) is not None:
                c.failing_runs, c.failing_since = row.failing_runs, row.failing_since
                c.gone_since = row.gone_since
        cv = coverage.c
        for row in conn.execute(select(cv.tenant_id, cv.resource, cv.available, cv.reason)):
            if (c := found.get(row.tenant_id)) is not None:
                c.coverage[row.resource] = (bool(row.available), row.reason)
        # Which resources have rows: the stores synced before coverage was recorded know what
        # they hold only this way.
        for resource, table in {**OBJECT_TABLES, "directoryRoles": directory_roles}.items():
            for tenant in conn.execute(select(table.c.tenant_id).distinct()).scalars():
                if (c := found.get(tenant)) is not None:
                    c.has_rows.add(resource)
        return cls(conn, now, found)

    def unknown_reason(self, tenant_id: str, resource: str) -> str | None:
        """None when the store knows ``resource`` of the customer, else why it does not."""
        c = self.customers[tenant_id]
        readable = c.coverage.get(resource)
        if readable is not None:
            return None if readable[0] else readable[1] or "not readable in this tenant"
        if resource in c.has_rows:
            return None  # synced before the store recorded coverage
        return NOT_SYNCED

    def checkable(self) -> list[CustomerFacts]:
        """Customers whose inventory can be checked: synced at least once, not gone."""
        return [c for c in self.customers.values() if c.synced and c.gone_since is None]

    def failing(self) -> list[CustomerFacts]:
        return [
            c
            for c in self.customers.values()
            if c.gone_since is None and c.status not in (CustomerStatus.OK, None)
        ]
