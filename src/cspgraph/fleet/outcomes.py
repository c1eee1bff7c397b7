"""What a sync says about each customer and about the run: the status, the results, the summary.

:class:`CustomerStatus` is the one spelling of a customer's sync status, in memory and in the
store (its values are what existing databases hold). :class:`TenantResult` is one customer's
outcome, :class:`SyncSummary` a run's, and :func:`describe_failure` turns any failure into the
status, error class and reason recorded on a customer. The sync, its progress displays, the store
and the report all read these types from here, so none of them imports another for a type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from cspgraph.customer_ref import domain_of
from cspgraph.fleet.customers import CustomerRef
from cspgraph.fleet.resources import ALL_RESOURCES
from cspgraph.http.errors import CspGraphError, ErrorClass

# A reason stored on a customer is shown in tables: keep it readable.
MAX_REASON = 500


class CustomerStatus(StrEnum):
    """A customer's sync status, as recorded in the store (``customers.status``)."""

    RUNNING = "running"  # a sync of this customer has begun and not yet finished
    OK = "ok"
    PROPAGATING = "propagating"  # the partner relationship or consent is still on its way
    NEEDS_PERSON = "needs_person"  # nothing changes until somebody acts
    FAILED = "failed"


# Synced, or still syncing: nothing for a person to look at (every other status, and "never
# synced", is listed among the problems).
SETTLED = frozenset({CustomerStatus.OK, CustomerStatus.RUNNING})


@dataclass(slots=True)
class TenantResult:
    """How one customer's sync went."""

    customer: CustomerRef
    tenant_id: str | None
    region: str | None
    status: CustomerStatus = CustomerStatus.RUNNING
    reason: str | None = None
    error_class: str | None = None
    # Per resource: "full" (a new full pull), "resumed" (an interrupted pull continued),
    # "delta" (changes since the last run), "skipped: …" (not available, and why).
    modes: dict[str, str] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)  # objects received per resource
    removed: dict[str, int] = field(default_factory=dict)  # @removed entries per resource
    pages: dict[str, int] = field(default_factory=dict)  # pages (= Graph requests) per resource
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # The sync run that was syncing this customer when this run left it alone (its lease's
    # holder); the status is then ``running``, and nothing of the customer was written.
    held_by: str | None = None
    # How the customer was reached (cspgraph.fleet.access.CustomerAccess), when the sync found out.
    access: Any = None

    def _name_from_gdap(self) -> str | None:
        """A customer named by domain or id and not reached: the name its GDAP relationship
        gives it, where one was read."""
        # The access a worker recorded (Celery) carries no relationships: no name from there.
        nearest = getattr(self.access, "nearest", None)
        return getattr(nearest, "customer_name", None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "customer": self.customer.reference,
            "domain": self.customer.domain or domain_of(self.customer.reference),
            "display_name": self.customer.display_name or self._name_from_gdap(),
            "region": self.region,
            "status": self.status.value,
            "reason": self.reason,
            "error_class": self.error_class,
            "modes": dict(self.modes),
            "received": dict(self.received),
            "removed": dict(self.removed),
            "pages": dict(self.pages),
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
            "held_by": self.held_by,
            "access": self.access.as_dict() if self.access is not None else None,
        }


@dataclass(slots=True)
class SyncSummary:
    """The outcome of one sync run."""

    tenants: list[TenantResult]
    started_at: datetime
    wall_time: float  # seconds
    graph: dict[str, int]  # this run's Graph counters: requests, throttled (429s), retries, …
    listing_errors: dict[str, str] = field(default_factory=dict)  # region -> why
    run_id: str | None = None  # the run as the store records it (cspgraph.fleet.runs)
    gone: list[str] = field(default_factory=list)  # tenants a complete listing no longer named
    # Regions whose GDAP relationships could not be read (each with why): GDAP unknown there.
    gdap_unknown: dict[str, str] = field(default_factory=dict)
    # Listing Partner Center and GDAP together: who one names and the other does not
    # (cspgraph.fleet.customer_sources.ListingGaps.as_dict); None otherwise.
    listing_gaps: dict[str, Any] | None = None

    @property
    def requests(self) -> int:
        return self.graph.get("requests", 0)

    @property
    def throttled(self) -> int:
        """429 answers seen (each was waited out and retried)."""
        return self.graph.get("throttled", 0)

    @property
    def ok(self) -> bool:
        """Every customer synced and every region listed."""
        return not self.listing_errors and all(t.status is CustomerStatus.OK for t in self.tenants)

    @property
    def left_alone(self) -> list[TenantResult]:
        """The customers this run left to another run that was syncing them."""
        return [t for t in self.tenants if t.held_by is not None]

    def by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.tenants:
            counts[t.status.value] = counts.get(t.status.value, 0) + 1
        return counts

    def access_modes(self) -> dict[str, int]:
        """Customers per access mode ("unknown" where it was not found out)."""
        counts: dict[str, int] = {}
        for t in self.tenants:
            mode = t.access.mode if t.access is not None else None
            key = mode.value if mode is not None else "unknown"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def totals(self) -> dict[str, Any]:
        received: dict[str, int] = {}
        removed = 0
        for t in self.tenants:
            for resource, n in t.received.items():
                received[resource] = received.get(resource, 0) + n
            removed += sum(t.removed.values())
        order = {name: i for i, name in enumerate(ALL_RESOURCES)}
        received = dict(sorted(received.items(), key=lambda kv: order.get(kv[0], len(order))))
        return {
            "customers": len(self.tenants),
            "status": self.by_status(),
            "received": received,
            "objects": sum(received.values()),
            "removed": removed,
        }

    def as_dict(self) -> dict[str, Any]:
        """Everything, as JSON-ready data (what ``cspgraph sync --json`` prints)."""
        return {
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "wall_time_s": round(self.wall_time, 3),
            "ok": self.ok,
            "totals": self.totals(),
            "requests": self.requests,
            "throttled": self.throttled,
            "graph": dict(self.graph),
            "listing_errors": dict(self.listing_errors),
            "gone": list(self.gone),
            "gdap_unknown": dict(self.gdap_unknown),
            "listing_gaps": self.listing_gaps,
            "access_modes": self.access_modes(),
            "tenants": [t.as_dict() for t in self.tenants],
        }


def describe_failure(
    exc: BaseException, resource: str | None = None
) -> tuple[CustomerStatus, str, str]:
    """(status, error class, reason) to record on a customer for ``exc``."""
    where = f"{resource}: " if resource else ""
    if isinstance(exc, CspGraphError):
        if exc.error_class is ErrorClass.PROPAGATING:
            return CustomerStatus.PROPAGATING, exc.error_class.value, clip(where + short(exc))
        if exc.error_class is ErrorClass.NEEDS_PERSON:
            return CustomerStatus.NEEDS_PERSON, exc.error_class.value, clip(where + short(exc))
        return CustomerStatus.FAILED, exc.error_class.value, clip(where + str(exc))
    return CustomerStatus.FAILED, "error", clip(f"{where}{type(exc).__name__}: {exc}")


def short(exc: BaseException) -> str:
    """The reason a person acts on, followed by the detail that proves it."""
    if isinstance(exc, CspGraphError):
        detail = str(exc)
        return detail if not exc.reason or exc.reason == detail else f"{exc.reason} ({detail})"
    return f"{type(exc).__name__}: {exc}"


def clip(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"
