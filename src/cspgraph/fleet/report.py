"""The fleet report: what the store knows about every customer, without calling Graph.

Three forms of the same figures: Rich tables for the terminal, a JSON document (``report_data``)
and a self-contained HTML page (``render_html``, in :mod:`cspgraph.fleet.report_html`). Customers
with failed syncs or non-compliant devices come first in all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cspgraph.fleet.store import Store
from cspgraph.fleet.summaries import CustomerSummary, FleetTotals, totals_of

# Rich is imported by the functions that draw tables: `cspgraph report --json` and the HTML page
# use the figures only.
if TYPE_CHECKING:
    from rich.console import Console, Group
    from rich.table import Table
    from rich.text import Text

STATUS_LABELS = {
    "ok": "OK",
    "running": "Running",
    "propagating": "Propagating",
    "needs_person": "Needs a person",
    "failed": "Failed",
    None: "Never synced",
}
STATUS_STYLES = {
    "ok": "green",
    "running": "cyan",
    "propagating": "blue",
    "needs_person": "yellow",
    "failed": "bold red",
    None: "dim",
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


# --- terminal -----------------------------------------------------------------------------------


# Below this width the customer table keeps only the columns that answer "who needs attention"
# (the rest stays in --json and --html): 14 columns wrapped into 80 are unreadable.
WIDE_TABLE = 150


def render_terminal(store: Store, console: Console) -> None:
    """Print the report as Rich tables."""
    console.print(terminal_view(load_report(store), console.width))


def terminal_view(report: FleetReport, width: int = WIDE_TABLE) -> Group:
    """The report as Rich renderables; ``width`` (the console's) picks the customer columns."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Table | Text] = [
        Text.assemble(
            ("Fleet report", "bold"),
            f" · {report.totals.customers:,} customers · generated "
            f"{report.generated_at:%Y-%m-%d %H:%M} UTC",
        ),
        _totals_table(report.totals, width),
        _customers_table(report, width),
    ]
    problems = [c for c in report.customers if c.status not in ("ok", "running")]
    if problems:
        parts.append(_problems_table(problems, report.generated_at))
    if report.totals.managed_devices:
        parts.append(_mix_table(report.totals))
    return Group(*parts)


def _totals_table(t: FleetTotals, width: int) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    health = Text()
    for status, n in sorted(t.sync_health.items(), key=lambda kv: -kv[1]):
        key = None if status == "never" else status
        if health:
            health.append(" · ")
        health.append(f"{status_label(key)} {n:,}", STATUS_STYLES.get(key, ""))
    cells: list[tuple[str, str | Text]] = [
        ("Customers", f"{t.customers:,}"),
        ("Users", f"{t.users:,}"),
        ("Enabled", f"{t.users_enabled:,}"),
        ("Disabled", f"{t.users_disabled:,}"),
        ("Admins", f"{t.admins:,}"),
        ("Groups", f"{t.groups:,}"),
        ("Devices", f"{t.devices:,}"),
        ("Managed", f"{t.managed_devices:,}"),
        ("Non-compliant", Text(f"{t.noncompliant:,}", "bold red" if t.noncompliant else "")),
        ("Sync health", health),
    ]
    table = Table(title="Fleet", box=box.SIMPLE_HEAVY, title_justify="left")
    if width >= WIDE_TABLE:
        for name, _ in cells:
            table.add_column(name, justify="left" if name == "Sync health" else "right")
        table.add_row(*(value for _, value in cells))
    else:  # one line per figure: ten columns do not fit a narrow terminal
        table.show_header = False
        table.add_column("figure")
        table.add_column("value", justify="right")
        for name, value in cells:
            table.add_row(name, value)
    return table


def _customers_table(report: FleetReport, width: int) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    wide = width >= WIDE_TABLE
    table = Table(
        title="Customers (failed syncs and non-compliant devices first)",
        box=box.SIMPLE_HEAVY,
        title_justify="left",
        pad_edge=wide,
    )
    table.add_column(
        "Customer", overflow="ellipsis", no_wrap=not wide, max_width=None if wide else 18
    )
    table.add_column("Status", no_wrap=True, min_width=6)
    names = ["Users", "Enabled", "Disabled", "Admins", "Groups", "Devices", "Managed"]
    if wide:
        table.add_column("Last sync", justify="right")
    else:
        names = ["Users", "Admins", "Devices", "Managed"]
    for name in names:
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    table.add_column("Non-compl.", justify="right", no_wrap=True, min_width=10)
    if wide:
        table.add_column("Compliant", justify="right")
        table.add_column("OS mix")
    for c in report.customers:
        customer = Text(c.display_name)
        if wide and c.domain and c.domain != c.display_name:
            customer.append(f"\n{c.domain}", "dim")
        admins = "—" if c.admins is None else f"{c.admins:,}"
        counts = {
            "Users": f"{c.users:,}",
            "Enabled": f"{c.users_enabled:,}",
            "Disabled": f"{c.users_disabled:,}",
            "Admins": admins,
            "Groups": f"{c.groups:,}",
            "Devices": f"{c.devices:,}",
            "Managed": f"{c.managed_devices:,}",
        }
        row: list[str | Text] = [
            customer,
            Text(status_label(c.status), STATUS_STYLES.get(c.status, "")),
        ]
        if wide:
            row.append(ago(c.last_sync_at, report.generated_at))
        row += [counts[name] for name in names]
        row.append(Text(f"{c.noncompliant:,}", "bold red" if c.noncompliant else "dim"))
        if wide:
            share = compliant_share(c)
            row += ["—" if share is None else f"{share:.0%}", top_counts(c.managed_by_os)]
        table.add_row(*row)
    return table


def _problems_table(problems: list[CustomerSummary], now: datetime) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Sync problems", box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column("Customer")
    table.add_column("Status")
    table.add_column("Since", justify="right")
    table.add_column("Reason", overflow="fold")
    for c in problems:
        reason = c.status_reason or ""
        if c.error_class:
            reason = f"{reason} ({c.error_class})" if reason else c.error_class
        table.add_row(
            c.display_name,
            Text(status_label(c.status), STATUS_STYLES.get(c.status, "")),
            ago(c.status_at, now) if c.status else "—",
            reason,
        )
    return table


def _mix_table(t: FleetTotals) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Managed devices", box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column("Operating system")
    table.add_column("Devices", justify="right")
    table.add_column("Compliance state")
    table.add_column("Devices", justify="right")
    os_rows = list(t.os_mix.items())
    state_rows = list(t.compliance.items())
    for i in range(max(len(os_rows), len(state_rows))):
        os_name, os_n = os_rows[i] if i < len(os_rows) else ("", None)
        state, state_n = state_rows[i] if i < len(state_rows) else ("", None)
        table.add_row(
            os_name,
            "" if os_n is None else f"{os_n:,}",
            Text(state, "red" if state == "noncompliant" else ""),
            "" if state_n is None else f"{state_n:,}",
        )
    return table


# --- HTML ---------------------------------------------------------------------------------------


def render_html(store: Store, path: Path) -> Path:
    """Write the report as one self-contained HTML page (inline CSS and SVG); returns the path."""
    # Imported here: report_html builds on this module's helpers, so it imports this module.
    from cspgraph.fleet.report_html import write_html

    return write_html(load_report(store), path)
