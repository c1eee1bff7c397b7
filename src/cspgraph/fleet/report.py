"""The fleet report: what the store knows about every customer, without calling Graph.

This module holds the figures (:func:`load_report`), the labels every form shares, and the JSON
document (:func:`report_data`). The two other forms build on it: Rich tables for the terminal
(:mod:`cspgraph.fleet.report_terminal`) and a self-contained HTML page
(:mod:`cspgraph.fleet.report_html`). Customers with failed syncs or non-compliant devices come
first in all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cspgraph.fleet.outcomes import SETTLED, CustomerStatus
from cspgraph.fleet.store import Store
from cspgraph.fleet.summaries import CustomerSummary, FleetTotals, totals_of

STATUS_LABELS: dict[str | None, str] = {
    CustomerStatus.OK: "OK",
    CustomerStatus.RUNNING: "Running",
    CustomerStatus.PROPAGATING: "Propagating",
    CustomerStatus.NEEDS_PERSON: "Needs a person",
    CustomerStatus.FAILED: "Failed",
    None: "Never synced",
}


@dataclass(frozen=True, slots=True)
class FleetReport:
    """The figures of one report, read from the store in one go."""

    customers: list[CustomerSummary]
    totals: FleetTotals
    generated_at: datetime


def load_report(store: Store) -> FleetReport:
    customers = store.customer_summaries()
    return FleetReport(customers, totals_of(customers), datetime.now(UTC))


def status_label(status: str | None) -> str:
    return STATUS_LABELS.get(status, status or "Never synced")


def problems_of(report: FleetReport) -> list[CustomerSummary]:
    """Customers whose sync a person should look at (never synced ones included)."""
    return [c for c in report.customers if c.status not in SETTLED]


def ago(when: datetime | None, now: datetime) -> str:
    """'3 h ago' style age, coarse on purpose: a report is read later than it is made."""
    if when is None:
        return "never"
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def top_counts(counts: dict[str, int], limit: int = 3) -> str:
    """'Windows 6 · iOS 1' for the largest entries of a count mapping."""
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = " · ".join(f"{name} {n:,}" for name, n in ordered[:limit])
    rest = len(ordered) - limit
    return f"{shown} · +{rest}" if rest > 0 else shown


def compliant_share(summary: CustomerSummary) -> float | None:
    if not summary.managed_devices:
        return None
    return summary.compliance.get("compliant", 0) / summary.managed_devices


# --- JSON ---------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def customer_data(summary: CustomerSummary) -> dict[str, Any]:
    return {
        "tenant_id": summary.tenant_id,
        "display_name": summary.display_name,
        "domain": summary.domain,
        "region": summary.region,
        "status": summary.status,
        "status_reason": summary.status_reason,
        "error_class": summary.error_class,
        "status_at": _iso(summary.status_at),
        "last_sync_at": _iso(summary.last_sync_at),
        "needs_attention": summary.needs_attention,
        "users": summary.users,
        "users_enabled": summary.users_enabled,
        "users_disabled": summary.users_disabled,
        "guests": summary.guests,
        "admins": summary.admins,
        "groups": summary.groups,
        "devices": summary.devices,
        "managed_devices": summary.managed_devices,
        "noncompliant": summary.noncompliant,
        "managed_by_os": summary.managed_by_os,
        "compliance": summary.compliance,
    }


def totals_data(totals: FleetTotals) -> dict[str, Any]:
    return {
        "customers": totals.customers,
        "users": totals.users,
        "users_enabled": totals.users_enabled,
        "users_disabled": totals.users_disabled,
        "guests": totals.guests,
        "admins": totals.admins,
        "groups": totals.groups,
        "devices": totals.devices,
        "managed_devices": totals.managed_devices,
        "noncompliant": totals.noncompliant,
        "customers_noncompliant": totals.customers_noncompliant,
        "compliance": totals.compliance,
        "os_mix": totals.os_mix,
        "sync_health": totals.sync_health,
        "last_sync_at": _iso(totals.last_sync_at),
        "oldest_sync_at": _iso(totals.oldest_sync_at),
    }


def report_data(store: Store) -> dict[str, Any]:
    """The report as plain JSON-ready data (what ``cspgraph report --json`` prints)."""
    return data_of(load_report(store))


def data_of(report: FleetReport) -> dict[str, Any]:
    return {
        "generated_at": report.generated_at.isoformat(),
        "fleet": totals_data(report.totals),
        "customers": [customer_data(c) for c in report.customers],
    }
