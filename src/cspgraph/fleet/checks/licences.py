"""Money left on the table: seats bought and never assigned, and seats on disabled accounts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select

from cspgraph.fleet import inventory
from cspgraph.fleet.checks.facts import Facts
from cspgraph.fleet.checks.model import Check, FoundObject, Outcome, Severity, plural
from cspgraph.fleet.schema import users

# Unused seats worth a look: at least this many, and at least this share of those bought. Free
# and trial offers come with thousands of seats (10,000 is common): they cost nothing unused.
MIN_UNUSED = 3
MIN_UNUSED_SHARE = 0.10
FREE_SEATS = 10_000
LICENCES = "subscribedSkus"


def unused_licences(facts: Facts, check: Check) -> Iterable[Outcome]:
    known = set()
    for customer in facts.checkable():
        why = facts.unknown_reason(customer.tenant_id, LICENCES)
        if why is None:
            known.add(customer.tenant_id)
        else:
            yield check.unknown(customer.tenant_id, why)
    unused: dict[str, list[inventory.LicenceRow]] = defaultdict(list)
    for sku in inventory.licences(facts.conn):
        if sku.tenant_id not in known or sku.unused is None or sku.bought is None:
            continue
        if sku.status not in (None, "Enabled") or sku.bought >= FREE_SEATS:
            continue
        if sku.unused >= MIN_UNUSED and sku.unused >= sku.bought * MIN_UNUSED_SHARE:
            unused[sku.tenant_id].append(sku)
    for tenant, skus in unused.items():
        seats = sum(s.unused or 0 for s in skus)
        yield check.finding(
            tenant,
            f"{plural(seats, 'seat')} bought and not assigned",
            [
                FoundObject(s.sku_id, s.part_number, f"{s.unused} of {s.bought} unused")
                for s in skus
            ],
        )


def licences_on_disabled_users(facts: Facts, check: Check) -> Iterable[Outcome]:
    # Users synced before licences were (a store upgraded and not synced since) cannot tell.
    u = users.c
    unknown_licences = set(
        facts.conn.execute(
            select(u.tenant_id).where(u.licenses.is_(None)).group_by(u.tenant_id)
        ).scalars()
    )
    known = set()
    for customer in facts.checkable():
        if customer.tenant_id in unknown_licences:
            yield check.unknown(
                customer.tenant_id, "licences not synced since the store was upgraded"
            )
        else:
            known.add(customer.tenant_id)
    holders: dict[str, list[inventory.UserRow]] = defaultdict(list)
    for user in inventory.disabled_with_licences(facts.conn):
        if user.tenant_id in known:
            holders[user.tenant_id].append(user)
    for tenant, accounts in holders.items():
        yield check.finding(
            tenant,
            f"{plural(len(accounts), 'disabled account')} "
            f"{'holds' if len(accounts) == 1 else 'hold'} "
            f"{plural(sum(len(a.licenses or ()) for a in accounts), 'licence')}",
            [
                FoundObject(a.id, a.upn or a.display_name, f"{len(a.licenses or ())} licence(s)")
                for a in accounts
            ],
        )


CHECKS = (
    Check(
        "licences.unused",
        "Licences bought but unused",
        Severity.LOW,
        "Seats nobody uses are paid for every month.",
        "Assign the seats or reduce the subscription's quantity at its next renewal (Partner "
        "Center, or the customer's Microsoft 365 admin center).",
        unused_licences,
    ),
    Check(
        "licences.disabled_users",
        "Disabled accounts holding licences",
        Severity.LOW,
        "A disabled account cannot use its licence, but the seat is still paid for.",
        "Remove the licences from disabled accounts (or convert the mailboxes to shared ones "
        "first, if they must stay readable).",
        licences_on_disabled_users,
    ),
)
