"""The sync itself: customers whose sync fails, data that is old, customers never synced or no
longer listed, regions whose customer list could not be read."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import select

from cspgraph.fleet.checks.facts import CustomerFacts, Facts
from cspgraph.fleet.checks.model import Check, FoundObject, Outcome, Severity, day, plural
from cspgraph.fleet.history_schema import runs
from cspgraph.fleet.outcomes import CustomerStatus

FAILING_RUNS = 3  # failing this many runs in a row is no passing hiccup
STALE_DATA = timedelta(days=7)
PROPAGATION_PATIENCE = timedelta(days=1)
_CODE = re.compile(r"AADSTS\d+")
# Failures that are the partner's app, not the customer: every customer of the region fails
# the same way, and one fix mends them all.
PARTNER_SIDE: dict[str, str] = {
    "AADSTS7000215": "The region's partner-managed app presents a wrong client secret: put the "
    "current secret in the configuration, or give the app a new credential with "
    "`cspgraph setup --region REGION`.",
    "AADSTS7000222": "The region's partner-managed app's client secret has expired: give it a "
    "new credential with `cspgraph setup --region REGION` (a certificate unless --secret).",
    "AADSTS700027": "The certificate the region's app signs with is not registered on the app: "
    "register it with `cspgraph setup --region REGION`, or configure the one that is.",
    "AADSTS700016": "Entra does not know the app in these tenants: the relationship or its "
    "consent has not reached them yet, or it has ended. Wait and sync again; if it lasts, check "
    "the relationships in Partner Center.",
}
_LABEL = {
    CustomerStatus.FAILED: "failed",
    CustomerStatus.NEEDS_PERSON: "needs a person",
    CustomerStatus.PROPAGATING: "is propagating",
    CustomerStatus.RUNNING: "did not finish",
}


def code_of(customer: CustomerFacts) -> str | None:
    found = _CODE.search(customer.status_reason or "")
    return found.group(0) if found else None


def _reason(customer: CustomerFacts) -> str:
    reason = (customer.status_reason or "no reason recorded").strip()
    return reason if len(reason) <= 240 else reason[:239] + "…"


def failing(facts: Facts, check: Check) -> Iterable[Outcome]:
    for c in facts.failing():
        status = CustomerStatus(c.status) if c.status in set(CustomerStatus) else None
        if status is None or status is CustomerStatus.RUNNING:
            continue
        runs_failing = max(c.failing_runs, 1)
        long = runs_failing >= FAILING_RUNS
        since = c.failing_since or c.status_at
        if status is CustomerStatus.NEEDS_PERSON:
            severity = Severity.HIGH
            fix = "Somebody must act on the reason given; then sync again."
        elif status is CustomerStatus.PROPAGATING:
            young = since is not None and facts.now - since < PROPAGATION_PATIENCE
            severity = Severity.LOW if young and not long else Severity.HIGH
            fix = (
                "A new relationship or consent takes minutes to reach the customer: sync again "
                "later. If it lasts, the relationship may have ended: check it in Partner Center."
            )
        else:
            severity = Severity.HIGH if long else Severity.MEDIUM
            fix = "Read the error; running the sync again resumes where it stopped."
        code = code_of(c)
        group = f"{c.region or 'no region'}|{code or c.error_class or c.status}"
        if status is CustomerStatus.NEEDS_PERSON and code == "AADSTS700016":
            # The GDAP-aware table made Entra's "app not in the tenant" a person's job for this
            # customer (its consent, its relationship): its own next step, not the region's.
            group = c.tenant_id
        else:
            fix = PARTNER_SIDE.get(code or "", fix)
        streak = f" ({plural(runs_failing, 'run')} in a row since {day(since)})"
        yield check.finding(
            c.tenant_id,
            f"The sync {_LABEL.get(status, str(c.status))}{streak}: {_reason(c)}",
            severity=severity,
            fix=fix,
            group=group,
        )


def stale_data(facts: Facts, check: Check) -> Iterable[Outcome]:
    for c in facts.checkable():
        if c.status not in (CustomerStatus.OK, None) or c.last_sync_at is None:
            continue
        age = facts.now - c.last_sync_at
        if age > STALE_DATA:
            yield check.finding(
                c.tenant_id, f"Last synced {age.days} days ago ({day(c.last_sync_at)})"
            )


def never_synced(facts: Facts, check: Check) -> Iterable[Outcome]:
    for c in facts.customers.values():
        if c.last_sync_at is None and c.gone_since is None and c.status in (None, "running"):
            yield check.finding(c.tenant_id, "Not synced yet")


def gone(facts: Facts, check: Check) -> Iterable[Outcome]:
    for c in facts.customers.values():
        if c.gone_since is not None:
            yield check.finding(
                c.tenant_id, f"Partner Center no longer lists it (since {day(c.gone_since)})"
            )


def listing_failed(facts: Facts, check: Check) -> Iterable[Outcome]:
    r = runs.c
    latest = facts.conn.execute(
        select(r.run_id, r.listing_errors, r.started_at)
        .where(r.listed.is_not(None))
        .order_by(r.started_at.desc())
        .limit(1)
    ).first()
    if latest is None or not latest.listing_errors:
        return
    for region, why in sorted(latest.listing_errors.items()):
        yield check.finding(
            None,
            f"Region {region}: Partner Center's customer list could not be read",
            [FoundObject(region, region, str(why))],
            subject=region,
        )


CHECKS = (
    Check(
        "sync.failing",
        "Sync failing",
        Severity.HIGH,
        "While a customer's sync fails, everything the store says about it is out of date and "
        "nothing new is checked.",
        "Read the reason; running the sync again resumes where it stopped.",
        failing,
    ),
    Check(
        "sync.listing",
        "Customer list not read",
        Severity.HIGH,
        "Customers of a region whose list cannot be read are not synced at all, and new "
        "customers are not noticed.",
        "Read the error: usually the region's partner identity (its app, secret or Partner "
        "Center access); fix it and sync again.",
        listing_failed,
    ),
    Check(
        "sync.stale",
        "Data older than a week",
        Severity.MEDIUM,
        "Findings about a customer last synced long ago may no longer hold, and new problems "
        "are not seen.",
        "Sync it (`cspgraph sync --customers …`), or schedule the sync (docs/scheduling.md).",
        stale_data,
    ),
    Check(
        "sync.never",
        "Never synced",
        Severity.INFO,
        "Nothing is known about a customer before its first sync.",
        "Run `cspgraph sync`.",
        never_synced,
    ),
    Check(
        "customers.gone",
        "No longer listed by Partner Center",
        Severity.INFO,
        "The relationship has ended or the customer left; its data is still in the store.",
        "If it is expected, delete its data with `cspgraph sync --prune`.",
        gone,
    ),
)
