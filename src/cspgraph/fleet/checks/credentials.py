"""The partner side: each region's partner-managed app and the credential it signs in with."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import select

from cspgraph.fleet.checks.facts import Facts
from cspgraph.fleet.checks.model import Check, FoundObject, Outcome, Severity, day
from cspgraph.fleet.history_schema import partner_apps

EXPIRY_WARNING = timedelta(days=30)


def expiring_credentials(facts: Facts, check: Check) -> Iterable[Outcome]:
    rows = facts.conn.execute(select(partner_apps).order_by(partner_apps.c.region)).all()
    if not rows:
        yield check.unknown(None, "no sync has recorded the partner apps' credentials yet")
        return
    for app in rows:
        what = f"region {app.region}'s app ({app.credential or 'credential'})"
        if app.expires_at is None:
            yield check.unknown(None, f"{what}: {app.unknown_reason or 'end date unknown'}")
            continue
        left = app.expires_at - facts.now
        if left > EXPIRY_WARNING:
            continue
        when = (
            f"ended on {day(app.expires_at)}" if left.total_seconds() <= 0
            else f"ends on {day(app.expires_at)}, in {max(left.days, 0)} days"
        )  # fmt: skip
        yield check.finding(
            None,
            f"Region {app.region}: the partner app's {app.credential or 'credential'} {when}",
            [FoundObject(app.client_id, f"{app.region} partner app", app.partner_tenant)],
            subject=app.region,
            fix=check.fix.replace("REGION", app.region),
        )


CHECKS = (
    Check(
        "partner.credential_expiring",
        "Partner app credential ending",
        Severity.HIGH,
        "When the partner-managed app's secret or certificate ends, every customer of its "
        "region stops syncing at once (AADSTS7000222).",
        "Give the app a new credential before the old one ends: `cspgraph setup --region REGION` "
        "(a certificate unless --secret), then remove the old one from the app.",
        expiring_credentials,
    ),
)
