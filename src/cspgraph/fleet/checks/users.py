"""Accounts from outside: guests."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from cspgraph.fleet import inventory
from cspgraph.fleet.checks.facts import Facts
from cspgraph.fleet.checks.model import Check, FoundObject, Outcome, Severity, day, plural


def guests(facts: Facts, check: Check) -> Iterable[Outcome]:
    known = set()
    for customer in facts.checkable():
        why = facts.unknown_reason(customer.tenant_id, "users")
        if why is None:
            known.add(customer.tenant_id)
        else:
            yield check.unknown(customer.tenant_id, why)
    found: dict[str, list[FoundObject]] = defaultdict(list)
    for user in inventory.guests(facts.conn):
        if user.tenant_id in known:
            state = "enabled" if user.enabled is not False else "disabled"
            found[user.tenant_id].append(
                FoundObject(
                    user.id, user.upn or user.display_name, f"{state}, added {day(user.created_at)}"
                )
            )
    for tenant, objects in found.items():
        yield check.finding(tenant, f"{plural(len(objects), 'guest account')}", objects)


CHECKS = (
    Check(
        "users.guests",
        "Guest accounts",
        Severity.LOW,
        "Guests are people from other organizations with access to the customer's data; "
        "nobody notices when their project ends.",
        "Review the guests with the customer; remove those no longer needed, and set up an "
        "access review in Entra ID Governance if the customer has it.",
        guests,
    ),
)
