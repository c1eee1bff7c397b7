"""The checks' results as Rich tables for a terminal (``cspgraph check``); JSON never loads Rich."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from cspgraph.fleet.checks import CheckResults
from cspgraph.fleet.checks.model import Check, Finding, Severity
from cspgraph.fleet.safe_console import safe_text
from cspgraph.fleet.terminal_text import printable

SEVERITY_STYLES = {
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
SHOWN_OBJECTS = 3
CHANGE_WORDS = {"added": "new", "removed": "removed", "changed": "changed"}
KIND_WORDS = {
    "global_admin": "Global Administrator",
    "privileged_role": "privileged role",
    "guest": "guest",
    "noncompliant_device": "non-compliant device",
    "licence": "licence",
}


def severity_text(severity: Severity) -> Text:
    return Text(severity.label, SEVERITY_STYLES[severity])


def objects_line(finding: Finding, limit: int = SHOWN_OBJECTS) -> str:
    names = [o.name or o.id for o in finding.objects[:limit]]
    rest = len(finding.objects) - limit
    return ", ".join(names) + (f", +{rest} more" if rest > 0 else "")


def results_view(results: CheckResults, width: int = 150) -> Group:
    counts = {s: 0 for s in Severity}
    for finding in results.findings:
        counts[finding.severity] += 1
    head = Text.assemble(
        ("Checks", "bold"),
        f" · {len(results.findings):,} findings · ",
        *(
            part
            for s in sorted(Severity, reverse=True)
            for part in ((f"{s.label} {counts[s]:,}", SEVERITY_STYLES[s]), ("  ", ""))
        ),
        f"· {results.evaluated_at:%Y-%m-%d %H:%M} UTC",
    )
    parts: list[Table | Text] = [head]
    if results.findings:
        table = Table(box=box.SIMPLE_HEAVY, title="Findings (worst first)", title_justify="left")
        table.add_column("Severity", no_wrap=True)
        table.add_column("Customer", max_width=28, overflow="fold")
        table.add_column("Finding", overflow="fold")
        if width >= 120:
            table.add_column("Next step", overflow="fold", max_width=max(40, width // 3))
        for finding in results.findings:
            what = safe_text(finding.summary)
            if finding.objects:
                what.append("\n" + printable(objects_line(finding)), "dim")
            row: list[Text | str] = [
                severity_text(finding.severity),
                safe_text(results.name_of(finding.tenant_id)),
                what,
            ]
            if width >= 120:
                row.append(safe_text(finding.fix))
            table.add_row(*row)
        parts.append(table)
    else:
        parts.append(Text("No findings.", "green"))
    if results.unknowns:
        parts.append(_unknowns(results))
    if results.changes:
        parts.append(_changes(results))
    return Group(*parts)


def _unknowns(results: CheckResults) -> Table:
    """Unknowns grouped by check and reason: "admins.none: 12 customers — the app lacks …"."""
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for unknown in results.unknowns:
        grouped[unknown.check_id, unknown.reason].append(results.name_of(unknown.tenant_id))
    table = Table(box=box.SIMPLE, title="Unknown (not counted as fine)", title_justify="left")
    table.add_column("Check", no_wrap=True)
    table.add_column("Customers", overflow="fold")
    table.add_column("Why", overflow="fold")
    for (check_id, reason), names in sorted(grouped.items()):
        shown = ", ".join(sorted(names)[:SHOWN_OBJECTS])
        more = len(names) - SHOWN_OBJECTS
        table.add_row(
            check_id, safe_text(shown + (f", +{more} more" if more > 0 else "")), safe_text(reason)
        )
    return table


def _changes(results: CheckResults) -> Table:
    table = Table(box=box.SIMPLE, title="Changed since the sync before", title_justify="left")
    table.add_column("Customer")
    table.add_column("Change")
    table.add_column("What", overflow="fold")
    for change in results.changes:
        kind = KIND_WORDS.get(change.kind, change.kind)
        table.add_row(
            safe_text(results.name_of(change.tenant_id)),
            f"{CHANGE_WORDS.get(change.change, change.change)} {kind}",
            safe_text(change.text),
        )
    return table


def checks_view(checks: Iterable[Check], gaps: Mapping[str, str]) -> Group:
    table = Table(box=box.SIMPLE_HEAVY, title="Checks", title_justify="left")
    table.add_column("Id", no_wrap=True)
    table.add_column("Severity", no_wrap=True)
    table.add_column("Title")
    table.add_column("Why it matters", overflow="fold")
    for check in checks:
        table.add_row(check.id, severity_text(check.severity), check.title, check.why)
    parts: list[Table | Text] = [table]
    for gap_id, why in gaps.items():
        parts.append(Text(f"Not yet: {gap_id}: {why}", "dim"))
    return Group(*parts)
