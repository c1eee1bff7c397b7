"""The fleet report as Rich tables for a terminal (the figures are :mod:`cspgraph.fleet.report`'s).

Only ``cspgraph report`` on a terminal and the demo draw these; ``--json`` and the HTML page never
load Rich.
"""

from __future__ import annotations

from datetime import datetime

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from cspgraph.fleet.outcomes import CustomerStatus
from cspgraph.fleet.report import (
    FleetReport,
    ago,
    compliant_share,
    load_report,
    problems_of,
    status_label,
    top_counts,
)
from cspgraph.fleet.store import Store
from cspgraph.fleet.summaries import NEVER_SYNCED, CustomerSummary, FleetTotals

STATUS_STYLES: dict[str | None, str] = {
    CustomerStatus.OK: "green",
    CustomerStatus.RUNNING: "cyan",
    CustomerStatus.PROPAGATING: "blue",
    CustomerStatus.NEEDS_PERSON: "yellow",
    CustomerStatus.FAILED: "bold red",
    None: "dim",
}

# Below this width the customer table keeps only the columns that answer "who needs attention"
# (the rest stays in --json and --html): 14 columns wrapped into 80 are unreadable.
WIDE_TABLE = 150


def render_terminal(store: Store, console: Console) -> None:
    """Print the report as Rich tables."""
    console.print(terminal_view(load_report(store), console.width))


def terminal_view(report: FleetReport, width: int = WIDE_TABLE) -> Group:
    """The report as Rich renderables; ``width`` (the console's) picks the customer columns."""
    parts: list[Table | Text] = [
        Text.assemble(
            ("Fleet report", "bold"),
            f" · {report.totals.customers:,} customers · generated "
            f"{report.generated_at:%Y-%m-%d %H:%M} UTC",
        ),
        _totals_table(report.totals, width),
        _customers_table(report, width),
    ]
    problems = problems_of(report)
    if problems:
        parts.append(_problems_table(problems, report.generated_at))
    if report.totals.managed_devices:
        parts.append(_mix_table(report.totals))
    return Group(*parts)


def _totals_table(t: FleetTotals, width: int) -> Table:
    health = Text()
    for status, n in sorted(t.sync_health.items(), key=lambda kv: -kv[1]):
        key = None if status == NEVER_SYNCED else status
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
