"""The Rich display of a fleet sync on a terminal: the live progress line and the end-of-run table.

:class:`RichSyncProgress` is a :class:`~cspgraph.fleet.progress.SyncProgress` that shows tenants
done/total, objects per second, requests, 429s and an ETA, redrawn by Rich's own refresh thread
from counters that the event loop only bumps. :func:`summary_view` is the table printed after a
run. Only a terminal needs this module (``cspgraph sync`` and the demo load it there).
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from cspgraph.fleet.customers import CustomerRef
from cspgraph.fleet.outcomes import CustomerStatus, SyncSummary, TenantResult
from cspgraph.fleet.safe_console import SafeConsole, safe_text

if TYPE_CHECKING:
    from cspgraph.graph.client import GraphStats


class _LiveStats(ProgressColumn):
    """objects/s, requests and 429s, read from the counters at each redraw."""

    def __init__(self, owner: RichSyncProgress) -> None:
        super().__init__()
        self._owner = owner

    def render(self, task: Task) -> Text:
        owner = self._owner
        elapsed = max(time.monotonic() - owner.started_at, 1e-6)
        stats = owner.stats
        requests = stats.requests if stats else 0
        throttled = stats.throttled if stats else 0
        text = Text()
        text.append(f"{owner.objects:,} objects", "bold")
        text.append(f" ({owner.objects / elapsed:,.0f}/s)  ")
        text.append(f"{requests:,} requests  ")
        text.append(f"{throttled:,} × 429", "yellow" if throttled else "dim")
        if owner.problems:
            text.append(f"  {owner.problems} not ok", "bold red")
        return text


class RichSyncProgress:
    """A one-line live display for terminals; use as a context manager around the sync."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or SafeConsole(stderr=True)
        self.stats: GraphStats | None = None
        self.objects = 0
        self.problems = 0
        self.started_at = time.monotonic()
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]sync[/bold]"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("tenants"),
            _LiveStats(self),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
            refresh_per_second=4,
        )
        self._task = self._progress.add_task("sync", total=None)

    def __enter__(self) -> RichSyncProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    # -- SyncProgress ------------------------------------------------------------------------------
    def started(self, stats: GraphStats) -> None:
        self.stats = stats
        self.started_at = time.monotonic()
        self._progress.reset(self._task, total=0)

    def customers_found(self, count: int) -> None:
        total = self._progress.tasks[0].total or 0
        self._progress.update(self._task, total=total + count)

    def tenant_started(self, customer: CustomerRef) -> None:
        pass

    def page_written(self, tenant_id: str, resource: str, objects: int) -> None:
        self.objects += objects

    def tenant_finished(self, result: TenantResult) -> None:
        if result.status is not CustomerStatus.OK:
            self.problems += 1
        self._progress.advance(self._task)

    def finished(self, summary: SyncSummary) -> None:
        self._progress.refresh()


# -- the summary at the end ------------------------------------------------------------------------

STATUS_STYLES = {
    CustomerStatus.OK: "green",
    CustomerStatus.RUNNING: "cyan",
    CustomerStatus.PROPAGATING: "blue",
    CustomerStatus.NEEDS_PERSON: "yellow",
    CustomerStatus.FAILED: "bold red",
}
# Above this many customers the table lists only those that are not ok.
ALL_ROWS_UP_TO = 40
MAX_PROBLEM_ROWS = 50


def summary_view(summary: SyncSummary, *, all_rows_up_to: int = ALL_ROWS_UP_TO) -> Group:
    """Totals, then the customers: all of them in a fleet of up to ``all_rows_up_to``, else
    only those that are not ok."""
    totals = summary.totals()
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    statuses = Text()
    for status, n in sorted(totals["status"].items(), key=lambda kv: kv[0] != CustomerStatus.OK):
        statuses.append(f"{n:,} {status}  ", STATUS_STYLES.get(CustomerStatus(status), ""))
    head.add_row("customers", Text(f"{totals['customers']:,}  ").append_text(statuses))
    received = ", ".join(f"{n:,} {_LABELS.get(r, r)}" for r, n in totals["received"].items() if n)
    head.add_row("objects", f"{totals['objects']:,} received ({received or 'none'})")
    if totals["removed"]:
        head.add_row("removed", f"{totals['removed']:,} (deleted in Graph since the last run)")
    rate = totals["objects"] / summary.wall_time if summary.wall_time > 0 else 0.0
    head.add_row(
        "graph",
        f"{summary.requests:,} requests, {summary.throttled:,} × 429, "
        f"{summary.graph.get('retries', 0):,} retries",
    )
    head.add_row("time", f"{summary.wall_time:,.1f} s ({rate:,.0f} objects/s)")
    for region, why in summary.listing_errors.items():
        head.add_row(Text("listing", "bold red"), safe_text(f"region {region}: {why}"))

    shown = summary.tenants
    title = "customers"
    if len(shown) > all_rows_up_to:
        shown = [t for t in shown if t.status is not CustomerStatus.OK][:MAX_PROBLEM_ROWS]
        title = "customers not ok" if shown else ""
    parts: list[Any] = [head]
    if shown:
        table = Table(title=title, title_justify="left", expand=False)
        for column in ("customer", "region", "status", "users", "groups", "devices", "managed"):
            table.add_column(column, justify="right" if column in _COUNTED else "left")
        table.add_column("how / why", overflow="fold", max_width=70)
        for t in sorted(shown, key=_problem_first):
            name = t.customer.display_name or t.customer.domain or t.customer.reference
            table.add_row(
                safe_text(name),
                t.region or "",
                Text(t.status.value, STATUS_STYLES.get(t.status, "")),
                *(_count(t, r) for r in ("users", "groups", "devices", "managedDevices")),
                safe_text(t.reason or _modes(t)),
            )
        parts.append(table)
    return Group(*parts)


_COUNTED = {"users", "groups", "devices", "managed"}
_LABELS = {"managedDevices": "managed devices", "directoryRoles": "admin role members"}


def _problem_first(result: TenantResult) -> tuple[bool, str]:
    name = result.customer.display_name or result.customer.reference
    return (result.status is CustomerStatus.OK, name.casefold())


def _count(result: TenantResult, resource: str) -> str:
    if resource not in result.received:
        return ""
    removed = result.removed.get(resource, 0)
    text = f"{result.received[resource]:,}"
    return f"{text} (−{removed:,})" if removed else text


def _modes(result: TenantResult) -> str:
    """ "delta" when every resource ran as a delta round, else each resource's way."""
    ways = {mode for mode in result.modes.values() if not mode.startswith("skipped")}
    text = (
        ", ".join(sorted(ways))
        if len(ways) == 1
        else ", ".join(f"{r} {m}" for r, m in result.modes.items() if not m.startswith("skipped"))
    )
    if result.notes:
        text += "; " + "; ".join(result.notes)
    return text
