"""Where every customer's GDAP stands, and what needs a person.

Per customer: its relationships (roles, status, end date and days left), each active one's access
assignments (group, roles, status), and whether the app is consented there. A customer needs a
person when a relationship it relies on expires within the window (and does not auto-extend), when
it has no relationship that gives access any more (expired, terminated), when an assignment is in
``error``, when an approval has waited longer than the patience given, when an active relationship
has no active assignment, or when the app's consent is missing or short of what the sync needs.
What could not be read is shown as unknown, never as none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cspgraph.gdap.api import (
    ACCESS_STATUSES,
    ENDED_STATUSES,
    Assignment,
    GdapApi,
    Relationship,
)
from cspgraph.gdap.calendar import days_between
from cspgraph.gdap.consent_state import ConsentState
from cspgraph.gdap.roles import describe
from cspgraph.http.errors import CspGraphError

ConsentCheck = Callable[[str], Awaitable[ConsentState]]
ANY_CUSTOMER = "(any customer)"
CONSENT_CHECKS_AT_ONCE = 8


@dataclass(frozen=True)
class RelationshipState:
    relationship: Relationship
    days_left: int | None  # None: no end date known
    assignments: tuple[Assignment, ...] | None  # None: not read (not active) or unreadable
    assignments_error: str | None = None

    def as_dict(self, groups: dict[str, str]) -> dict[str, Any]:
        rel = self.relationship
        return {
            "id": rel.id,
            "name": rel.display_name,
            "status": rel.status,
            "roles": [{"template_id": r, "name": describe((r,))} for r in rel.roles],
            "ends": rel.ends.isoformat() if rel.ends else None,
            "days_left": self.days_left,
            "auto_extend": rel.auto_extend,
            "microsoft_led_transition": rel.is_mlt,
            "assignments": None
            if self.assignments is None
            else [
                {
                    "id": a.id,
                    "group_id": a.group_id,
                    "group": groups.get(a.group_id),
                    "roles": [describe((r,)) for r in a.roles],
                    "status": a.status,
                }
                for a in self.assignments
            ],
            "assignments_error": self.assignments_error,
        }


@dataclass
class CustomerGdap:
    tenant_id: str | None  # None: relationships any customer may approve
    name: str | None
    relationships: list[RelationshipState] = field(default_factory=list)
    consent: ConsentState | None = None  # None: not checked
    needs: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.tenant_id is None:
            return ANY_CUSTOMER
        return f"{self.name} ({self.tenant_id})" if self.name else self.tenant_id

    @property
    def has_access(self) -> bool:
        return any(r.relationship.gives_access for r in self.relationships)

    def as_dict(self, groups: dict[str, str]) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "name": self.name,
            "relationships": [r.as_dict(groups) for r in self.relationships],
            "consent": self.consent.as_dict() if self.consent else None,
            "needs_person": list(self.needs),
        }


@dataclass
class GdapStatus:
    now: datetime
    customers: list[CustomerGdap]
    groups: dict[str, str]  # partner group id -> display name

    @property
    def needs_person(self) -> bool:
        return any(c.needs for c in self.customers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "customers": [c.as_dict(self.groups) for c in self.customers],
            "needs_person": [
                {"customer": c.tenant_id, "name": c.name, "why": why}
                for c in self.customers
                for why in c.needs
            ],
        }


async def gdap_status(
    api: GdapApi,
    *,
    now: datetime,
    customer: str | None = None,
    expiring_within: timedelta = timedelta(days=30),
    pending_longer_than: timedelta = timedelta(days=7),
    consent: ConsentCheck | None = None,
) -> GdapStatus:
    """Read every relationship (of ``customer`` only, when given), their assignments and the
    app's consent per customer, and judge what needs a person."""
    relationships = await api.relationships(customer=customer)
    try:
        groups = {str(g["id"]).lower(): str(g.get("displayName")) for g in await api.groups()}
    except CspGraphError:
        groups = {}  # names unknown: assignments show their group ids
    by_customer: dict[str | None, CustomerGdap] = {}
    for rel in sorted(relationships, key=lambda r: (r.customer_name or "", r.display_name)):
        entry = by_customer.setdefault(rel.customer_id, CustomerGdap(rel.customer_id, None))
        entry.name = entry.name or rel.customer_name
        entry.relationships.append(await _state(api, rel, now))
    if consent is not None:
        # One token request per customer: several at once (a fleet has hundreds).
        gate = asyncio.Semaphore(CONSENT_CHECKS_AT_ONCE)

        async def check(entry: CustomerGdap) -> None:
            async with gate:
                assert consent is not None and entry.tenant_id is not None
                entry.consent = await consent(entry.tenant_id)

        await asyncio.gather(
            *(check(e) for e in by_customer.values() if e.tenant_id is not None and e.has_access)
        )
    for entry in by_customer.values():
        entry.needs = _needs(entry, now, expiring_within, pending_longer_than)
    customers = sorted(by_customer.values(), key=lambda c: (c.tenant_id is None, c.label.lower()))
    return GdapStatus(now, customers, groups)


async def _state(api: GdapApi, rel: Relationship, now: datetime) -> RelationshipState:
    days = days_between(now, rel.ends) if rel.ends is not None else None
    if rel.status not in ACCESS_STATUSES:
        return RelationshipState(rel, days, None)
    try:
        assignments = tuple(await api.assignments(rel.id))
    except CspGraphError as exc:
        return RelationshipState(rel, days, None, f"{exc.error_class}: {exc.reason}")
    return RelationshipState(rel, days, assignments)


def _needs(
    entry: CustomerGdap, now: datetime, expiring_within: timedelta, pending: timedelta
) -> list[str]:
    needs: list[str] = []
    window = expiring_within // timedelta(days=1)
    for state in entry.relationships:
        rel = state.relationship
        name = f"{rel.display_name!r}"
        left = state.days_left
        if rel.gives_access and not rel.auto_extends and left is not None and left <= window:
            needs.append(
                f"relationship {name} ends {rel.ends:%Y-%m-%d} ({left} days left) and does not "
                "auto-extend: invite the customer to a new one (cspgraph gdap invite)"
            )
        if (
            rel.status == "approvalPending"
            and rel.created is not None
            and now - rel.created > pending
        ):
            waited = days_between(rel.created, now)
            needs.append(
                f"relationship {name} has waited {waited} days for the customer's approval: "
                "send the approval link again (cspgraph gdap invite prints it)"
            )
        for assignment in state.assignments or ():
            if assignment.status == "error":
                needs.append(
                    f"an access assignment of {name} is in error (group {assignment.group_id}): "
                    "run cspgraph gdap assign again"
                )
        if (
            rel.gives_access
            and state.assignments is not None
            and not any(a.status in ("active", "pending") for a in state.assignments)
        ):
            needs.append(
                f"relationship {name} is active but assigns its roles to no group: "
                "run cspgraph gdap assign"
            )
    if entry.tenant_id is not None and not entry.has_access:
        ended = [
            s.relationship for s in entry.relationships if s.relationship.status in ENDED_STATUSES
        ]
        if ended and len(ended) == len(entry.relationships):
            last = max(ended, key=lambda r: r.ends.timestamp() if r.ends else 0.0)
            when = f" on {last.ends:%Y-%m-%d}" if last.ends else ""
            needs.append(
                f"no GDAP relationship gives access any more: {last.display_name!r} "
                f"{last.status}{when}; invite the customer again (cspgraph gdap invite)"
            )
    if entry.consent is not None and entry.consent.state in ("no", "partial"):
        needs.append(
            f"the app's consent is {entry.consent.label}: run cspgraph gdap consent "
            f"--customer {entry.tenant_id}"
        )
    return needs
