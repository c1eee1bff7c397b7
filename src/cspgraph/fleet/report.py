"""The fleet report: what the store knows about every customer, without calling Graph.

This module holds the figures (:func:`load_report`: the summaries, the checks and who needs
action), the labels every form shares, and the JSON document (:func:`report_data`). The two other
forms build on it: Rich tables for the terminal (:mod:`cspgraph.fleet.report_terminal`) and a
self-contained HTML page (:mod:`cspgraph.fleet.report_html`). All of them open with **needs
action** (:mod:`cspgraph.fleet.needs_action`): the customers ordered by the severity of their
findings and their sync status, each with its next step; the charts and tables come after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cspgraph.fleet.checks import CheckResults, Severity, run_checks
from cspgraph.fleet.needs_action import ActionItem, needs_action
from cspgraph.fleet.outcomes import SETTLED, CustomerStatus
from cspgraph.fleet.store import Store
from cspgraph.fleet.summaries import CustomerSummary, FleetTotals, totals_of
from cspgraph.gdap.calendar import days_between

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

    customers: list[CustomerSummary]  # in needs-action order
    totals: FleetTotals
    generated_at: datetime
    checks: CheckResults | None = None
    actions: list[ActionItem] = field(default_factory=list)

    def worst(self, tenant_id: str) -> Severity | None:
        """The customer's worst finding's severity (None: no finding)."""
        severities = [f.severity for f in self.findings_of(tenant_id)]
        return max(severities, default=None)

    def findings_of(self, tenant_id: str) -> list[Any]:
        return (
            []
            if self.checks is None
            else [f for f in self.checks.findings if f.tenant_id == tenant_id]
        )


def load_report(store: Store) -> FleetReport:
    now = datetime.now(UTC)
    checks = run_checks(store, now=now)
    actions = needs_action(checks)
    customers = in_action_order(store.customer_summaries(), actions)
    return FleetReport(customers, totals_of(customers), now, checks, actions)


def in_action_order(
    customers: list[CustomerSummary], actions: list[ActionItem]
) -> list[CustomerSummary]:
    """Customers in the order of the first action item naming them; the others after, in the
    summaries' own order (sync problems, non-compliant devices, then the rest)."""
    rank: dict[str, int] = {}
    for index, item in enumerate(actions):
        for tenant in item.tenant_ids:
            rank.setdefault(tenant, index)
    position = {c.tenant_id: i for i, c in enumerate(customers)}
    return sorted(
        customers, key=lambda c: (rank.get(c.tenant_id, len(actions)), position[c.tenant_id])
    )


def status_label(status: str | None) -> str:
    return STATUS_LABELS.get(status, status or "Never synced")


def problems_of(report: FleetReport) -> list[CustomerSummary]:
    """Customers whose sync a person should look at (never synced ones included)."""
    return [c for c in report.customers if c.status not in SETTLED]


@dataclass(frozen=True, slots=True)
class Problem:
    names: list[str]
    status: str | None
    since: str
    reason: str
    error_class: str | None


def grouped_problems(report: FleetReport) -> list[Problem]:
    """Customers whose sync did not end "ok", one row per status and reason: a region-wide
    cause (one bad secret, 31 customers) is one row naming them, not 31 paragraphs."""
    rows: dict[tuple[str | None, str, str | None], list[CustomerSummary]] = {}
    for c in problems_of(report):
        key = (c.status, _cause(c.status_reason), c.error_class)
        rows.setdefault(key, []).append(c)
    out = []
    for (status, reason, error_class), members in rows.items():
        since = min((c.status_at for c in members if c.status_at), default=None)
        out.append(
            Problem(
                sorted(c.display_name for c in members),
                status,
                ago(since, report.generated_at) if status else "—",
                reason,
                error_class,
            )
        )
    return out


def _cause(reason: str | None) -> str:
    """A failure's reason without what differs per customer (tenant ids, request ids, times),
    so that one cause reads the same for every customer it stopped."""
    text = reason or ""
    text = re.sub(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "…", text, flags=re.I
    )
    text = re.sub(
        r"Trace ID:.*?(?=Correlation|$)|Correlation ID:.*?(?=Timestamp|$)|Timestamp:.*$", "", text
    )
    return " ".join(text.split())


def counted(summary: CustomerSummary, value: int | None) -> int | None:
    """A customer's count as the report shows it: unknown (None) before its first sync."""
    return value if summary.synced else None


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


def access_label(summary: CustomerSummary) -> str:
    """The access mode as the report shows it ("unknown" until a sync found it out)."""
    return summary.access_mode or "unknown"


def gdap_days_left(summary: CustomerSummary, now: datetime) -> int | None:
    """Calendar days from today to the nearest GDAP end, as `cspgraph gdap status` counts
    them (cspgraph.gdap.calendar.days_between)."""
    if summary.gdap_end is None:
        return None
    return days_between(now, summary.gdap_end)


def gdap_label(summary: CustomerSummary, now: datetime) -> str:
    """The nearest GDAP end: "unknown" when the relationships could not be read, "—" without a
    relationship, else its date with the days left (or how it ended)."""
    if not summary.gdap_known:
        return "unknown"
    if summary.gdap_status is None:
        return "—"
    end = summary.gdap_end.date().isoformat() if summary.gdap_end else "no end date"
    days = gdap_days_left(summary, now)
    if summary.gdap_status in ("active", "expiring") and days is not None:
        return f"{end} ({days} d)"
    return f"{end} ({summary.gdap_status})"


def gdap_data(summary: CustomerSummary, now: datetime) -> dict[str, Any] | None:
    if not summary.gdap_known:
        return None  # unknown, not "no relationship"
    return {
        "relationship": summary.gdap_relationship,
        "status": summary.gdap_status,
        "end": _iso(summary.gdap_end),
        "days_left": gdap_days_left(summary, now),
    }


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
        "synced": summary.synced,
        "gone_since": _iso(summary.gone_since),
        "users": counted(summary, summary.users),
        "users_enabled": counted(summary, summary.users_enabled),
        "users_disabled": counted(summary, summary.users_disabled),
        "guests": counted(summary, summary.guests),
        "admins": summary.admins,
        "groups": counted(summary, summary.groups),
        "devices": counted(summary, summary.devices),
        # Unknown without Intune (the reason says why), never 0.
        "managed_devices": None
        if summary.intune_unknown
        else counted(summary, summary.managed_devices),
        "noncompliant": None if summary.intune_unknown else counted(summary, summary.noncompliant),
        "managed_unknown_reason": summary.intune_unknown,
        "managed_by_os": summary.managed_by_os,
        "compliance": summary.compliance,
        "licences_bought": summary.licences_bought,
        "licences_unused": summary.licences_unused,
        "access_mode": summary.access_mode,
        "access_reason": summary.access_reason,
    }


def totals_data(totals: FleetTotals) -> dict[str, Any]:
    return {
        "customers": totals.customers,
        "users": totals.users,
        "users_enabled": totals.users_enabled,
        "users_disabled": totals.users_disabled,
        "guests": totals.guests,
        "admins": totals.admins,
        "admins_unknown_customers": totals.admins_unknown,
        "groups": totals.groups,
        "devices": totals.devices,
        "managed_devices": totals.managed_devices,
        "noncompliant": totals.noncompliant,
        "customers_noncompliant": totals.customers_noncompliant,
        "compliance": totals.compliance,
        "os_mix": totals.os_mix,
        "sync_health": totals.sync_health,
        "sync_problems": totals.sync_problems,
        "customers_without_intune": totals.without_intune,
        "customers_never_synced": totals.never_synced,
        "last_sync_at": _iso(totals.last_sync_at),
        "oldest_sync_at": _iso(totals.oldest_sync_at),
    }


def report_data(store: Store) -> dict[str, Any]:
    """The report as plain JSON-ready data (what ``cspgraph report --json`` prints)."""
    return data_of(load_report(store))


def data_of(report: FleetReport) -> dict[str, Any]:
    checks = report.checks.as_dict() if report.checks is not None else {}
    return {
        "generated_at": report.generated_at.isoformat(),
        "needs_action": [item.as_dict() for item in report.actions],
        "fleet": totals_data(report.totals),
        "customers": [
            {
                **customer_data(c),
                "gdap": gdap_data(c, report.generated_at),
                "worst_finding": (w.label if (w := report.worst(c.tenant_id)) else None),
                "findings": len(report.findings_of(c.tenant_id)),
            }
            for c in report.customers
        ],
        "findings": checks.get("counts", {}),
        "unknown": checks.get("unknown", []),
        "changes": checks.get("changes", []),
    }
