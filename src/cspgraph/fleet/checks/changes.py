"""What the last sync changed that nobody may have meant: new Global Administrators and new
holders of the other privileged roles."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from cspgraph.fleet import security_state
from cspgraph.fleet.checks.facts import Facts
from cspgraph.fleet.checks.model import Check, FoundObject, Outcome, Severity, plural


def _added(facts: Facts, kind: str) -> dict[str, list[security_state.Change]]:
    latest = facts.memo("latest_changes", lambda: security_state.latest_changes(facts.conn))
    found: dict[str, list[security_state.Change]] = defaultdict(list)
    for change in latest:
        if change.kind == kind and change.change == security_state.ADDED:
            found[change.tenant_id].append(change)
    return found


def new_global_admins(facts: Facts, check: Check) -> Iterable[Outcome]:
    for tenant, added in _added(facts, security_state.GLOBAL_ADMIN).items():
        yield check.finding(
            tenant,
            f"{plural(len(added), 'new Global Administrator')} since the sync before",
            [FoundObject(c.item_id, c.label, f"seen {c.at:%Y-%m-%d %H:%M} UTC") for c in added],
        )


def new_privileged(facts: Facts, check: Check) -> Iterable[Outcome]:
    for tenant, added in _added(facts, security_state.PRIVILEGED_ROLE).items():
        yield check.finding(
            tenant,
            f"{plural(len(added), 'new privileged role assignment')} since the sync before",
            [FoundObject(c.item_id, c.label, f"seen {c.at:%Y-%m-%d %H:%M} UTC") for c in added],
        )


CHECKS = (
    Check(
        "changes.new_global_admin",
        "New Global Administrator",
        Severity.HIGH,
        "Taking Global Administrator is what an attacker in a tenant does first; a new one "
        "nobody asked for is an incident.",
        "Confirm with the customer that the new administrator is expected; if not, remove the "
        "role, disable the account and look at the sign-in and audit logs.",
        new_global_admins,
    ),
    Check(
        "changes.new_privileged_role",
        "New privileged role assignment",
        Severity.MEDIUM,
        "Privileged roles (User, Exchange, Security, Privileged Role Administrator, …) can reset "
        "passwords or grant themselves more; new assignments deserve a second look.",
        "Confirm the assignment is expected; remove it if not.",
        new_privileged,
    ),
)
