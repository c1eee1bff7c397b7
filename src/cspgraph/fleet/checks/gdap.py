"""GDAP: relationships about to end, ended, or waiting too long for the customer's approval.

Read from ``customer_access`` (:mod:`cspgraph.fleet.access`): per customer, the relationship that
matters most as the last sync found it (the one in effect that ends first, else the one on its
way, waiting, or ended last), with its end, whether it extends itself and when it was created.
Ends are judged against the checks' clock, not the status the sync saw: a relationship that was
active at the sync and whose end has passed since is said as ended.

Unknown, never "nothing found": a customer whose last sync could not read the partner's
relationships (the app lacks ``DelegatedAdminRelationship.Read.All``, or is not in
``AdminAgents``), or that was synced before cspgraph recorded them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from cspgraph.fleet.checks.facts import Facts
from cspgraph.fleet.checks.model import Check, FoundObject, Outcome, Severity, day
from cspgraph.fleet.history_schema import customer_access
from cspgraph.http.errors import GDAP_ENDED, GDAP_IN_EFFECT, GDAP_WAITING

EXPIRY_WARNING = timedelta(days=30)  # Graph's own "expiring" window
URGENT = timedelta(days=7)
APPROVAL_PATIENCE = timedelta(days=7)  # as `cspgraph gdap status` judges it
NOT_READ = (
    "the last sync could not read the partner's GDAP relationships (the app needs the "
    "application permission DelegatedAdminRelationship.Read.All and its service principal in "
    "AdminAgents; `cspgraph sync` said why)"
)
NOT_RECORDED = "synced before cspgraph recorded GDAP relationships: sync it again"
# Modes in which the partner's app reaches the customer without the relationship.
APP_REACHES = ("dap", "gdap-app")


@dataclass(frozen=True, slots=True)
class Access:
    """One customer's row of ``customer_access``: what the GDAP checks read."""

    tenant_id: str
    mode: str | None
    known: bool
    name: str | None
    status: str | None
    end: datetime | None
    auto_extend: bool | None
    created: datetime | None
    count: int | None

    def found(self, detail: str) -> FoundObject:
        return FoundObject(self.name or "?", self.name, detail)


def _read(facts: Facts) -> dict[str, Access]:
    c = customer_access.c
    query = select(
        c.tenant_id, c.mode, c.gdap_known, c.gdap_relationship, c.gdap_status, c.gdap_end,
        c.gdap_auto_extend, c.gdap_created, c.gdap_relationships,
    )  # fmt: skip
    found: dict[str, Access] = {}
    for row in facts.conn.execute(query):
        found[row.tenant_id] = Access(
            row.tenant_id, row.mode, bool(row.gdap_known), row.gdap_relationship,
            row.gdap_status, row.gdap_end, row.gdap_auto_extend, row.gdap_created,
            row.gdap_relationships,
        )  # fmt: skip
    return found


def _rows(facts: Facts, check: Check) -> tuple[list[Access], list[Outcome]]:
    """The rows whose relationships the last sync read, of every customer still listed (a
    customer the app cannot reach has one too); the others as unknowns. A customer never synced
    and never looked at is left to ``sync.never``."""
    stored = facts.memo("customer_access", lambda: _read(facts))
    known: list[Access] = []
    unknowns: list[Outcome] = []
    for customer in facts.customers.values():
        if customer.gone_since is not None:
            continue
        row = stored.get(customer.tenant_id)
        if row is not None and row.known:
            known.append(row)
        elif row is not None:
            unknowns.append(check.unknown(customer.tenant_id, NOT_READ))
        elif customer.synced:
            unknowns.append(check.unknown(customer.tenant_id, NOT_RECORDED))
    return known, unknowns


def expiring(facts: Facts, check: Check) -> Iterable[Outcome]:
    rows, unknowns = _rows(facts, check)
    yield from unknowns
    for row in rows:
        if row.status not in GDAP_IN_EFFECT or row.end is None or row.auto_extend:
            continue
        left = row.end - facts.now
        if left <= timedelta(0) or left > EXPIRY_WARNING:
            continue  # ended: gdap.ended says so
        days = left // timedelta(days=1)
        extends = "" if row.auto_extend is False else " (whether it auto-extends is unknown)"
        others = f"; the first to end of {row.count}" if (row.count or 0) > 1 else ""
        yield check.finding(
            row.tenant_id,
            f"GDAP relationship {row.name!r} ends on {day(row.end)}, in {days} days"
            f"{extends}{others}",
            [row.found(f"ends {day(row.end)}")],
            severity=Severity.HIGH if left <= URGENT else Severity.MEDIUM,
        )


def ended(facts: Facts, check: Check) -> Iterable[Outcome]:
    rows, unknowns = _rows(facts, check)
    yield from unknowns
    for row in rows:
        passed = row.status in GDAP_IN_EFFECT and row.end is not None and row.end <= facts.now
        if row.status not in GDAP_ENDED and not passed:
            continue
        if row.auto_extend and passed:
            continue  # extended by Graph at its end; the next sync reads the new end
        status = "expired" if passed else row.status
        when = f" on {day(row.end)}" if row.end else ""
        if row.mode in APP_REACHES:
            summary = (
                f"No GDAP relationship in effect: {row.name!r} {status}{when}; the app still "
                "syncs the customer, but partner users hold no role there"
            )
            severity = Severity.MEDIUM
        else:
            summary = f"No GDAP relationship in effect: {row.name!r} {status}{when}"
            severity = Severity.HIGH
        yield check.finding(
            row.tenant_id, summary, [row.found(f"{status}{when}")], severity=severity
        )


def approval_waiting(facts: Facts, check: Check) -> Iterable[Outcome]:
    rows, unknowns = _rows(facts, check)
    yield from unknowns
    for row in rows:
        if row.status not in GDAP_WAITING or row.status == "created":
            continue
        if row.created is None:
            yield check.unknown(row.tenant_id, f"when {row.name!r} was created is not recorded")
            continue
        waited = facts.now - row.created
        if waited > APPROVAL_PATIENCE:
            yield check.finding(
                row.tenant_id,
                f"GDAP relationship {row.name!r} has waited {waited.days} days for the "
                "customer's approval",
                [row.found(f"created {day(row.created)}")],
            )


CHECKS = (
    Check(
        "gdap.expiring",
        "GDAP relationship ending",
        Severity.MEDIUM,
        "When the relationship ends, partner users lose every role it gave them in the customer, "
        "and a customer without DAP or the app's consent is no longer synced at all.",
        "Invite the customer to a new relationship before this one ends (`cspgraph gdap invite "
        "--customer …`), or make it auto-extend if it holds no Global Administrator role.",
        expiring,
    ),
    Check(
        "gdap.ended",
        "GDAP relationship ended",
        Severity.HIGH,
        "Without a relationship in effect the partner's users have no role in the customer; "
        "only DAP or the app's consent, where they exist, still reach it.",
        "Invite the customer to a new relationship (`cspgraph gdap invite --customer …`) and "
        "assign its roles to the partner's groups once approved (`cspgraph gdap assign`).",
        ended,
    ),
    Check(
        "gdap.approval_waiting",
        "GDAP approval waiting",
        Severity.LOW,
        f"A relationship the customer has not approved within {APPROVAL_PATIENCE.days} days "
        "was likely missed; it expires unapproved after 90 days.",
        "Send the customer the approval link again (`cspgraph gdap invite` prints it).",
        approval_waiting,
    ),
)
