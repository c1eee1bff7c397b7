"""The fleet report as one HTML page a partner can mail to a colleague.

Self-contained by design: the CSS is inline and the charts are SVG drawn here in Python, so the
page opens offline, in a mail client's preview, or years later, with nothing to fetch. The page
is a Jinja2 template (``templates/fleet_report.html``) over the macros it shares with the
dashboard (``templates/parts.html``); every value is escaped by the template environment. It
opens with **needs action**; the cards, charts and tables follow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from markupsafe import Markup

from cspgraph.config import write_private_file
from cspgraph.fleet.checks import Severity
from cspgraph.fleet.html import environment, render, stylesheet
from cspgraph.fleet.outcomes import CustomerStatus
from cspgraph.fleet.report import (
    FleetReport,
    access_label,
    ago,
    compliant_share,
    gdap_label,
    grouped_problems,
    load_report,
    status_label,
    top_counts,
)
from cspgraph.fleet.store import Store
from cspgraph.fleet.summaries import NEVER_SYNCED, CustomerSummary, FleetTotals

# Intune's compliance states, in the order a reader scans them: good, pending, bad, unknown.
COMPLIANCE_COLORS = {
    "compliant": "#2e7d32",
    "inGracePeriod": "#f9a825",
    "noncompliant": "#c62828",
    "conflict": "#8e24aa",
    "error": "#6d1b1b",
    "configManager": "#1565c0",
    "unknown": "#9e9e9e",
}
STATUS_COLORS: dict[str, str] = {
    CustomerStatus.OK: "#2e7d32",
    CustomerStatus.RUNNING: "#0288d1",
    CustomerStatus.PROPAGATING: "#5c6bc0",
    CustomerStatus.NEEDS_PERSON: "#f9a825",
    CustomerStatus.FAILED: "#c62828",
    NEVER_SYNCED: "#9e9e9e",
}
PALETTE = ("#1565c0", "#2e7d32", "#f9a825", "#8e24aa", "#00838f", "#ef6c00", "#6d4c41", "#546e7a")
OTHER_COLOR = "#bdbdbd"
COMPLIANCE_CHART_ROWS = 30
DONUT_SLICES = 7  # more slices than this are folded into "Other"


def render_html(store: Store, path: Path) -> Path:
    """Write the report for ``store`` to ``path``; returns the path."""
    return write_html(load_report(store), path)


def write_html(report: FleetReport, path: Path) -> Path:
    path = Path(path)
    # Tenant data: readable by its owner only, like the store; a link at the path is replaced,
    # never followed (the file it points to is left alone).
    write_private_file(path, html_page(report))
    return path


# The most urgent items and the customers shown open; more are folded (the page stays short at
# a thousand customers; `cspgraph check` and the dashboard list everything).
SHOWN_ACTIONS = 100
SHOWN_CUSTOMERS = 60


def html_page(report: FleetReport) -> str:
    # Not named report.html: .gitignore ignores generated reports by that name.
    totals = report.totals
    generated = f"{report.generated_at:%Y-%m-%d %H:%M} UTC"
    checks = report.checks
    counts = {s.label: 0 for s in Severity}
    for finding in checks.findings if checks else ():
        counts[finding.severity.label] += 1
    return render(
        environment(),
        "fleet_report.html",
        style=built(stylesheet()),
        generated=generated,
        now=report.generated_at,
        totals=totals,
        counts=counts,
        actions=report.actions,
        shown_actions=SHOWN_ACTIONS,
        changes=checks.changes if checks else [],
        name_of=checks.name_of if checks else (lambda t: t or "Fleet"),
        change_words=change_words,
        cards=cards(report),
        compliance_chart=built(compliance_chart(report.customers)),
        os_chart=built(donut_chart(totals.os_mix, "Managed devices by operating system", PALETTE)),
        health_chart=built(health_chart(totals)),
        problems=grouped_problems(report),
        customers=report.customers,
        shown_customers=SHOWN_CUSTOMERS,
        worst_of=report.worst,
        findings_of=report.findings_of,
        top_counts=top_counts,
        access_label=access_label,
        gdap_label=gdap_label,
    )


def built(html: str) -> Markup:
    """Markup this module built itself: the stylesheet shipped with cspgraph and the SVG charts,
    whose every piece of text went through ``escape()`` on the way in."""
    return Markup(html)  # noqa: S704 - escaped where it was built, see above


def health_chart(totals: FleetTotals) -> str:
    return donut_chart(
        {status_label(None if k == NEVER_SYNCED else k): n for k, n in totals.sync_health.items()},
        "Customers by sync status",
        [STATUS_COLORS.get(k, OTHER_COLOR) for k in totals.sync_health],
    )


def change_words(change: Any) -> str:
    kind = {
        "global_admin": "Global Administrator",
        "privileged_role": "privileged role",
        "guest": "guest",
        "noncompliant_device": "non-compliant device",
        "licence": "licence",
    }.get(change.kind, change.kind)
    verb = {"added": "new", "removed": "removed", "changed": "changed"}.get(change.change, "")
    return f"{verb} {kind}"


# --- page parts -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Card:
    label: str
    value: str
    note: str = ""


def cards(report: FleetReport) -> list[Card]:
    """The fleet's totals. Unknown is said, never added as 0: admins over the customers whose
    admins are known, managed devices over those with Intune."""
    t = report.totals
    admins_note = f"{t.guests:,} guest users"
    if t.admins_unknown:
        admins_note = f"unknown at {t.admins_unknown:,} customers · " + admins_note
    managed_note = f"{t.managed_devices:,} managed by Intune"
    if t.without_intune:
        managed_note += f" · {t.without_intune:,} without Intune"
    problems_note = f"oldest sync {ago(t.oldest_sync_at, report.generated_at)}"
    if t.never_synced:
        problems_note = f"{t.never_synced:,} never synced · " + problems_note
    return [
        Card("Customers", f"{t.customers:,}"),
        Card(
            "Users", f"{t.users:,}", f"{t.users_enabled:,} enabled · {t.users_disabled:,} disabled"
        ),
        Card(
            "Global admins",
            f"{t.admins:,}" if t.admins or not t.admins_unknown else "—",
            admins_note,
        ),
        Card("Devices", f"{t.devices:,}", managed_note),
        Card("Non-compliant", f"{t.noncompliant:,}", f"at {t.customers_noncompliant:,} customers"),
        Card("Sync problems", f"{t.sync_problems:,}", problems_note),
    ]


# --- charts ---------------------------------------------------------------------------------------


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compliance_chart(customers: Sequence[CustomerSummary]) -> str:
    """One 100% bar per customer, split by compliance state; the customers with the most
    non-compliant devices, so the chart shows where to act even for a large fleet."""
    managed = [c for c in customers if c.managed_devices]
    if not managed:
        return '<p class="empty">No managed devices in the store.</p>'
    managed.sort(
        key=lambda c: (-c.noncompliant, compliant_share(c) or 0.0, c.display_name.casefold())
    )
    shown = managed[:COMPLIANCE_CHART_ROWS]
    states = [s for s in COMPLIANCE_COLORS if any(c.compliance.get(s) for c in shown)]
    states += sorted({s for c in shown for s in c.compliance} - set(states))

    label_w, bar_w, count_w, row_h, legend_h = 190, 480, 190, 22, 30
    width = label_w + bar_w + count_w
    height = legend_h + row_h * len(shown) + 6
    parts = [_svg_open(width, height, "Compliance of managed devices by customer")]
    x = 0
    for state in states:
        color = COMPLIANCE_COLORS.get(state, OTHER_COLOR)
        parts.append(
            f'<rect x="{x}" y="6" width="12" height="12" fill="{color}"/>'
            f'<text x="{x + 16}" y="16" class="legend">{escape(state)}</text>'
        )
        x += 24 + 7 * len(state)
    for i, c in enumerate(shown):
        y = legend_h + i * row_h
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="label">'
            f"<title>{escape(c.display_name)}</title>{escape(_shorten(c.display_name, 26))}</text>"
        )
        offset = 0.0
        for state in states:
            n = c.compliance.get(state, 0)
            if not n:
                continue
            w = bar_w * n / c.managed_devices
            color = COMPLIANCE_COLORS.get(state, OTHER_COLOR)
            parts.append(
                f'<rect x="{label_w + offset:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}"'
                f' fill="{color}"><title>{escape(c.display_name)}: {n:,} {escape(state)}</title>'
                "</rect>"
            )
            offset += w
        note = f"{c.noncompliant:,} of {c.managed_devices:,} non-compliant"
        parts.append(
            f'<text x="{label_w + bar_w + 8}" y="{y + 15}" class="count">{escape(note)}</text>'
        )
    parts.append("</svg>")
    caption = ""
    if len(managed) > len(shown):
        caption = (
            f'<p class="caption">The {len(shown)} customers with the most non-compliant devices, '
            f"of {len(managed):,} with managed devices.</p>"
        )
    return "".join(parts) + caption


def donut_chart(counts: Mapping[str, int], title: str, colors: Sequence[str]) -> str:
    """A ring of shares with a legend; the total in the middle. Small slices beyond
    DONUT_SLICES fold into "Other" so the legend stays readable."""
    items = [(k, n) for k, n in counts.items() if n > 0]
    if not items:
        return '<p class="empty">Nothing to show yet.</p>'
    paired = list(zip(items, colors, strict=False))
    paired += [(item, PALETTE[i % len(PALETTE)]) for i, item in enumerate(items[len(paired) :])]
    if len(paired) > DONUT_SLICES:
        rest = sum(n for (_, n), _ in paired[DONUT_SLICES - 1 :])
        paired = [*paired[: DONUT_SLICES - 1], (("Other", rest), OTHER_COLOR)]
    total = sum(n for (_, n), _ in paired)

    size, radius, ring = 180, 62, 26
    width = size + 200
    parts = [_svg_open(width, size, title)]
    center = size / 2
    # The dash trick draws each slice as a stretch of one circle's stroke: pathLength=100 makes
    # lengths percentages, and a full circle needs no special case.
    parts.append(
        f'<circle cx="{center}" cy="{center}" r="{radius}" fill="none" stroke="#eeeeee" '
        f'stroke-width="{ring}"/>'
    )
    start = 0.0
    for (name, n), color in paired:
        share = 100 * n / total
        parts.append(
            f'<circle cx="{center}" cy="{center}" r="{radius}" fill="none" stroke="{color}" '
            f'stroke-width="{ring}" pathLength="100" stroke-dasharray="{share:.3f} '
            f'{100 - share:.3f}" stroke-dashoffset="{-start:.3f}" '
            f'transform="rotate(-90 {center} {center})"><title>{escape(name)}: {n:,} '
            f"({share:.0f}%)</title></circle>"
        )
        start += share
    parts.append(
        f'<text x="{center}" y="{center + 6}" text-anchor="middle" class="total">{total:,}</text>'
    )
    for i, ((name, n), color) in enumerate(paired):
        y = 24 + i * 22
        parts.append(
            f'<rect x="{size + 10}" y="{y - 11}" width="12" height="12" fill="{color}"/>'
            f'<text x="{size + 28}" y="{y}" class="legend">{escape(_shorten(name, 18))} '
            f"{n:,} ({100 * n / total:.0f}%)</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _svg_open(width: int, height: int, label: str) -> str:
    return (
        f'<svg role="img" aria-label="{escape(label)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f"<title>{escape(label)}</title>"
    )
