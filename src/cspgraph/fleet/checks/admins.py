"""Who holds the keys: no Global Administrator, too many, and disabled accounts holding roles."""

from __future__ import annotations

from collections.abc import Iterable

from cspgraph.fleet import inventory
from cspgraph.fleet.checks.facts import Facts
from cspgraph.fleet.checks.model import Check, FoundObject, Outcome, Severity, plural
from cspgraph.fleet.resources import ADMIN_ROLES

# Microsoft's guidance: fewer than five Global Administrators ("Best practices for Microsoft
# Entra roles"), and at least two so that one leaving does not lock the tenant.
MAX_GLOBAL_ADMINS = 4


def _holders(
    facts: Facts, check: Check
) -> tuple[dict[str, list[inventory.RoleHolder]], list[Outcome]]:
    """Role holders per checkable customer whose roles are known; the others as unknowns."""
    by_tenant: dict[str, list[inventory.RoleHolder]] = {}
    unknowns: list[Outcome] = []
    known = set()
    for customer in facts.checkable():
        why = facts.unknown_reason(customer.tenant_id, ADMIN_ROLES)
        if why is None:
            known.add(customer.tenant_id)
            by_tenant[customer.tenant_id] = []
        else:
            unknowns.append(check.unknown(customer.tenant_id, why))
    for holder in facts.memo("role_holders", lambda: inventory.role_holders(facts.conn)):
        if holder.tenant_id in known:
            by_tenant[holder.tenant_id].append(holder)
    return by_tenant, unknowns


def _admin(h: inventory.RoleHolder) -> FoundObject:
    return FoundObject(h.holder_id, h.label, h.role)


def no_global_admin(facts: Facts, check: Check) -> Iterable[Outcome]:
    by_tenant, unknowns = _holders(facts, check)
    yield from unknowns
    for tenant, holders in by_tenant.items():
        if not inventory.global_admins(holders):
            disabled = [h for h in holders if h.is_global_admin]
            summary = "No enabled Global Administrator"
            if disabled:
                summary += f" ({plural(len(disabled), 'disabled account')} hold the role)"
            yield check.finding(tenant, summary, [_admin(h) for h in disabled])


def too_many_global_admins(facts: Facts, check: Check) -> Iterable[Outcome]:
    by_tenant, unknowns = _holders(facts, check)
    yield from unknowns
    for tenant, holders in by_tenant.items():
        admins = inventory.global_admins(holders)
        if len(admins) > MAX_GLOBAL_ADMINS:
            yield check.finding(
                tenant,
                f"{len(admins)} Global Administrators (Microsoft recommends fewer than "
                f"{MAX_GLOBAL_ADMINS + 1})",
                [_admin(h) for h in admins.values()],
            )


def disabled_admins(facts: Facts, check: Check) -> Iterable[Outcome]:
    by_tenant, unknowns = _holders(facts, check)
    yield from unknowns
    for tenant, holders in by_tenant.items():
        disabled = [h for h in holders if h.enabled is False]
        if disabled:
            accounts = {h.holder_id for h in disabled}
            yield check.finding(
                tenant,
                f"{plural(len(accounts), 'disabled account')} still "
                f"{'holds' if len(accounts) == 1 else 'hold'} a privileged role",
                [_admin(h) for h in disabled],
            )


CHECKS = (
    Check(
        "admins.none",
        "No Global Administrator",
        Severity.HIGH,
        "Nobody in the customer can administer the tenant: a lost partner relationship or an "
        "expired GDAP role leaves it without anyone able to recover it.",
        "Assign Global Administrator to two named accounts of the customer (a break-glass account "
        "among them) in the Entra admin center.",
        no_global_admin,
    ),
    Check(
        "admins.too_many",
        "Too many Global Administrators",
        Severity.MEDIUM,
        "Every Global Administrator can take over the whole tenant; each extra one is another "
        "account whose phishing costs everything.",
        "Keep two to four Global Administrators; give the others the least privileged role for "
        "their work (User, Helpdesk, Intune Administrator).",
        too_many_global_admins,
    ),
    Check(
        "admins.disabled",
        "Disabled accounts holding privileged roles",
        Severity.MEDIUM,
        "A disabled account keeps its roles: re-enabled by mistake or by an attacker, it is an "
        "administrator again, and it hides who really administers the tenant.",
        "Remove the role assignments of the disabled accounts (or delete the accounts).",
        disabled_admins,
    ),
)
