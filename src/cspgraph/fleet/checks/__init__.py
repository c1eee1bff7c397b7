"""Declarative checks over the fleet store: what needs action, per customer and fleet-wide.

Every check is a :class:`~cspgraph.fleet.checks.model.Check` (id, title, severity, why it
matters, how to fix it, and a function over the store) in a small module of its own; adding one
is a module with a ``CHECKS`` tuple and a line in :data:`MODULES`. :func:`run_checks` reads the
store once (one snapshot) and runs them all. Checks never call Graph: they judge what the last
syncs stored, and say "unknown" (:class:`~cspgraph.fleet.checks.model.Unknown`) where the store
cannot tell.

Not yet a check: GDAP access assignments in error. A sync reads a relationship's assignments only
for customers reached through the service account, and the store keeps none of them;
`cspgraph gdap status` reads and judges them live.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cspgraph.fleet import security_state
from cspgraph.fleet.checks import (
    admins,
    changes,
    credentials,
    devices,
    gdap,
    licences,
    sync,
    users,
)
from cspgraph.fleet.checks.facts import CustomerFacts, Facts
from cspgraph.fleet.checks.model import Check, Finding, FoundObject, Severity, Unknown
from cspgraph.fleet.store import Store

__all__ = [
    "CHECKS",
    "Check",
    "CheckResults",
    "Finding",
    "FoundObject",
    "Severity",
    "Unknown",
    "match_customers",
    "run_checks",
]

MODULES = (sync, credentials, gdap, admins, changes, devices, users, licences)
CHECKS: tuple[Check, ...] = tuple(check for module in MODULES for check in module.CHECKS)
BY_ID: dict[str, Check] = {check.id: check for check in CHECKS}
# What the issue asked for that cannot be checked yet, and why (shown by `cspgraph check --list`).
GAPS: dict[str, str] = {
    "gdap.assignment_error": "GDAP access assignments in error: the store keeps no "
    "assignments (a sync reads them only for customers reached through the service account); "
    "`cspgraph gdap status` reads and judges them live.",
}


@dataclass(slots=True)
class CheckResults:
    """Findings (worst first), unknowns, the customers they are about, and what changed."""

    evaluated_at: datetime
    findings: list[Finding]
    unknowns: list[Unknown]
    customers: dict[str, CustomerFacts]
    changes: list[security_state.Change] = field(default_factory=list)

    def at_or_above(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity >= severity]

    def name_of(self, tenant_id: str | None) -> str:
        if tenant_id is None:
            return "Fleet"
        customer = self.customers.get(tenant_id)
        return customer.name if customer is not None else tenant_id

    def as_dict(self) -> dict[str, Any]:
        def customer(tenant_id: str | None) -> dict[str, Any]:
            c = self.customers.get(tenant_id or "")
            if c is None:
                return {"customer": None}
            return {"customer": c.name, "domain": c.domain, "region": c.region}

        counts: dict[str, int] = {s.label: 0 for s in sorted(Severity, reverse=True)}
        for finding in self.findings:
            counts[finding.severity.label] += 1
        return {
            "evaluated_at": self.evaluated_at.isoformat(),
            "counts": counts,
            "findings": [{**f.as_dict(), **customer(f.tenant_id)} for f in self.findings],
            "unknown": [{**u.as_dict(), **customer(u.tenant_id)} for u in self.unknowns],
            "changes": [
                {
                    "tenant_id": c.tenant_id,
                    **customer(c.tenant_id),
                    "kind": c.kind,
                    "change": c.change,
                    "item": c.item_id,
                    "label": c.label,
                    "before": c.before,
                    "after": c.after,
                    "at": c.at.isoformat(),
                }
                for c in self.changes
            ],
        }


def run_checks(
    store: Store,
    *,
    now: datetime | None = None,
    tenants: Collection[str] | None = None,
    checks: Iterable[Check] = CHECKS,
) -> CheckResults:
    """Run ``checks`` over the store; ``tenants`` limits the results to these customers (and
    drops the fleet-wide findings)."""
    now = now or datetime.now(UTC)
    findings: list[Finding] = []
    unknowns: list[Unknown] = []
    with store.reading() as conn:
        facts = Facts.read(conn, now)
        for check in checks:
            for outcome in check.run(facts, check):
                if isinstance(outcome, Finding):
                    findings.append(outcome)
                else:
                    unknowns.append(outcome)
        latest = facts.memo("latest_changes", lambda: security_state.latest_changes(conn))
    if tenants is not None:
        wanted = set(tenants)
        findings = [f for f in findings if f.tenant_id in wanted]
        unknowns = [u for u in unknowns if u.tenant_id in wanted]
        latest = [c for c in latest if c.tenant_id in wanted]
    names = {t: c.name.casefold() for t, c in facts.customers.items()}
    findings.sort(key=lambda f: (-f.severity, names.get(f.tenant_id or "", ""), f.check_id))
    return CheckResults(now, findings, unknowns, facts.customers, latest)


def match_customers(customers: dict[str, CustomerFacts], text: str) -> list[str]:
    """Tenant ids of the customers ``text`` names: a tenant id, a domain, or (part of) a
    name, case-insensitively; an exact id or domain wins over partial names."""
    wanted = text.strip().casefold()
    exact = [
        t
        for t, c in customers.items()
        if wanted in (t.casefold(), (c.domain or "").casefold(), c.name.casefold())
    ]
    if exact:
        return exact
    return [t for t, c in customers.items() if wanted and wanted in c.name.casefold()]
