"""The fleet report as Rich tables for a terminal (the figures are :mod:`cspgraph.fleet.report`'s).

Every string a customer wrote (names, domains, reasons, OS names) goes in as a
:func:`~cspgraph.fleet.safe_console.safe_text` cell: never read as markup, control characters
shown as escapes, whatever console prints it.

Only ``cspgraph report`` on a terminal and the demo draw these; ``--json`` and the HTML page never
load Rich.
"""

from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from cspgraph.fleet.check_view import severity_text
from cspgraph.fleet.outcomes import CustomerStatus
from cspgraph.fleet.report import (
    FleetReport,
    Problem,
    access_label,
    ago,
    compliant_share,
    gdap_label,
    grouped_problems,
    load_report,
    status_label,
    top_counts,
)
from cspgraph.fleet.safe_console import safe_text
from cspgraph.fleet.store import Store
from cspgraph.fleet.summaries import NEVER_SYNCED, CustomerSummary, FleetTotals
from cspgraph.fleet.terminal_text import printable

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


# The most urgent items shown on a terminal (`cspgraph check` lists every finding).
SHOWN_ACTIONS = 25


def terminal_view(report: FleetReport, width: int = WIDE_TABLE) -> Group:
    """The report as Rich renderables; ``width`` (the console's) picks the customer columns."""
    parts: list[Table | Text] = [
        Text.assemble(
            ("Fleet report", "bold"),
            f" · {report.totals.customers:,} customers · generated "
            f"{report.generated_at:%Y-%m-%d %H:%M} UTC",
        ),
        _actions_table(report, width),
        _totals_table(report.totals, width),
        _customers_table(report, width),
    ]
    problems = grouped_problems(report)
    if problems:
        parts.append(_problems_table(problems))
    if report.totals.managed_devices:
        parts.append(_mix_table(report.totals))
    return Group(*parts)


def _actions_table(report: FleetReport, width: int) -> Table | Text:
    if not report.actions:
        return Text("Needs action: nothing.", "green")
    shown = report.actions[:SHOWN_ACTIONS]
    more = len(report.actions) - len(shown)
    title = "Needs action (worst first)" + (f" · {more:,} more: cspgraph check" if more else "")
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column("Severity", no_wrap=True)
    table.add_column("Who", max_width=30 if width >= WIDE_TABLE else 18, overflow="fold")
    table.add_column("What", overflow="fold")
    if width >= 110:
        table.add_column("Next step", overflow="fold", max_width=max(30, width // 3))
    for item in shown:
        who = safe_text(item.title)
        if item.shared:
            who.append("\n" + printable(", ".join(item.names[:5])), "dim")
        row: list[Text | str] = [severity_text(item.severity), who, safe_text(item.headline)]
        if width >= 110:
            row.append(safe_text(item.next_step))
        table.add_row(*row)
    return table


def _count(c: CustomerSummary, value: int | None) -> str:
    return "—" if value is None or not c.synced else f"{value:,}"


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
        ("Admins", f"{t.admins:,}" + (f" (? {t.admins_unknown})" if t.admins_unknown else "")),
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
        title="Customers (in needs-action order)",
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
        table.add_column("Access", no_wrap=True)
        table.add_column("GDAP ends", no_wrap=True)
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
        customer = safe_text(c.display_name)
        if wide and c.domain and c.domain != c.display_name:
            customer.append("\n" + printable(c.domain), "dim")
        no_intune = c.intune_unknown is not None
        counts = {
            "Users": _count(c, c.users),
            "Enabled": _count(c, c.users_enabled),
            "Disabled": _count(c, c.users_disabled),
            "Admins": _count(c, c.admins),
            "Groups": _count(c, c.groups),
            "Devices": _count(c, c.devices),
            "Managed": "no Intune" if no_intune else _count(c, c.managed_devices),
        }
        row: list[str | Text] = [
            customer,
            # A customer Partner Center no longer lists is not "OK", whatever its last sync said.
            Text("gone", "dim")
            if c.gone_since is not None
            else Text(status_label(c.status), STATUS_STYLES.get(c.status, "")),
        ]
        if wide:
            row.append(access_label(c))
            row.append(gdap_label(c, report.generated_at))
            row.append(ago(c.last_sync_at, report.generated_at))
        row += [counts[name] for name in names]
        noncompliant = "—" if no_intune else _count(c, c.noncompliant)
        row.append(Text(noncompliant, "bold red" if c.noncompliant and not no_intune else "dim"))
        if wide:
            share = compliant_share(c)
            row += [
                "—" if share is None else f"{share:.0%}",
                safe_text(top_counts(c.managed_by_os)),
            ]
        table.add_row(*row)
    return table


def _problems_table(problems: list[Problem]) -> Table:
    """One row per status and cause: a region-wide bad secret is one row naming its customers."""
    table = Table(title="Sync problems", box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column("Customers", overflow="fold")
    table.add_column("Status")
    table.add_column("Since", justify="right")
    table.add_column("Reason", overflow="fold")
    for p in problems:
        reason = p.reason
        if p.error_class:
            reason = f"{reason} ({p.error_class})" if reason else p.error_class
        names = ", ".join(p.names[:6]) + (f", +{len(p.names) - 6} more" if len(p.names) > 6 else "")
        table.add_row(
            safe_text(names),
            Text(status_label(p.status), STATUS_STYLES.get(p.status, "")),
            p.since,
            safe_text(reason or ""),
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
            safe_text(os_name),
            "" if os_n is None else f"{os_n:,}",
            safe_text(state, "red" if state == "noncompliant" else ""),
            "" if state_n is None else f"{state_n:,}",
        )
    return table
