"""Who needs action today: the checks' findings turned into a short list of things to do,
worst first, each with its next step.

One item per customer (its findings, the worst first), one per fleet-wide subject (a region's
app), and one per **shared cause**: when several customers' syncs fail the same way in the same
region (a wrong secret of the region's app fails every one of its customers with AADSTS7000215),
they become one item naming them all, with the one fix, instead of one paragraph per customer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from cspgraph.fleet.checks import CheckResults
from cspgraph.fleet.checks.model import Finding, Severity
from cspgraph.fleet.outcomes import CustomerStatus

SYNC_FAILING = "sync.failing"
# A cause shared by at least this many customers is shown once.
SHARED = 2
_STATUS_RANK: dict[str | None, int] = {
    CustomerStatus.NEEDS_PERSON: 0,
    CustomerStatus.FAILED: 1,
    CustomerStatus.PROPAGATING: 2,
    CustomerStatus.RUNNING: 3,
    None: 4,
    CustomerStatus.OK: 5,
}


@dataclass(slots=True)
class ActionItem:
    """One thing to act on: a customer, a shared cause, or a fleet-wide subject."""

    title: str
    tenant_ids: list[str]  # the customers it is about (none: the fleet)
    findings: list[Finding]  # worst first
    status: str | None = None  # the customer's sync status (a single customer's item)
    domain: str | None = None
    shared: bool = False  # one cause of several customers' failures
    names: list[str] = field(default_factory=list)  # the customers of a shared cause

    @property
    def severity(self) -> Severity:
        return self.findings[0].severity

    @property
    def next_step(self) -> str:
        return self.findings[0].fix

    @property
    def headline(self) -> str:
        """The worst finding, and how many more."""
        more = len(self.findings) - 1
        return self.findings[0].summary + (f" (+{more} more)" if more > 0 else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "severity": self.severity.label,
            "tenant_ids": self.tenant_ids,
            "customers": self.names,
            "status": self.status,
            "shared_cause": self.shared,
            "next_step": self.next_step,
            "findings": [f.as_dict() for f in self.findings],
        }


def needs_action(results: CheckResults) -> list[ActionItem]:
    """The findings as action items, worst first (see the module docstring)."""
    per_customer: dict[str | None, list[Finding]] = defaultdict(list)
    by_cause: dict[str, list[Finding]] = defaultdict(list)
    for finding in results.findings:
        if finding.check_id == SYNC_FAILING and finding.group:
            by_cause[finding.group].append(finding)
        else:
            per_customer[finding.tenant_id or f"fleet:{finding.subject}"].append(finding)
    items: list[ActionItem] = []
    for cause, findings in by_cause.items():
        if len(findings) < SHARED:
            per_customer[findings[0].tenant_id].extend(findings)
            continue
        names = sorted(results.name_of(f.tenant_id) for f in findings)
        region = cause.split("|", 1)[0]
        worst = sorted(findings, key=lambda f: -f.severity)
        items.append(
            ActionItem(
                f"{len(findings)} customers of region {region}: the same sync failure",
                [f.tenant_id for f in findings if f.tenant_id],
                [_shared(worst[0], len(findings)), *worst[1:]],
                shared=True,
                names=names,
            )
        )
    for key, findings in per_customer.items():
        findings.sort(key=lambda f: (-f.severity, f.check_id))
        if key is not None and not key.startswith("fleet:"):
            customer = results.customers.get(key)
            items.append(
                ActionItem(
                    results.name_of(key),
                    [key],
                    findings,
                    status=customer.status if customer else None,
                    domain=customer.domain if customer else None,
                    names=[results.name_of(key)],
                )
            )
        else:
            subject = findings[0].subject
            title = f"Partner side: region {subject}" if subject else "Partner side"
            items.append(ActionItem(title, [], findings))
    items.sort(key=_order)
    return items


def _shared(first: Finding, count: int) -> Finding:
    """The first customer's finding, told as the shared cause it is."""
    reason = first.summary.split(": ", 1)[-1]
    return Finding(
        first.check_id,
        None,
        first.severity,
        first.title,
        f"{count} customers' syncs fail the same way: {reason}",
        first.fix,
        first.objects,
        first.subject,
        first.group,
    )


def _order(item: ActionItem) -> tuple[int, int, int, int, str]:
    status_rank = 0 if item.shared else _STATUS_RANK.get(item.status, 4)
    return (
        -item.severity,
        status_rank,
        -sum(f.severity for f in item.findings),
        -len(item.tenant_ids),
        item.title.casefold(),
    )
