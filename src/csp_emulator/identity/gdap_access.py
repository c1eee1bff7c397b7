"""What a partner user may do in a customer tenant through GDAP, and the refusal when nothing.

A partner user signing in at a customer's authority holds, through GDAP, the roles of every
*active* access assignment of a security group they belong to — directly or through nested
groups — in every relationship of their partner with that customer that grants access now
(``active`` or ``expiring``; world/gdap.py). ``AdminAgents`` alone grants nothing in a GDAP
customer: it is DAP's group (wire-facts §5). Roles are read when a token is issued, so a token
issued before an assignment became active, or before a relationship expired or was terminated,
keeps what it had until it expires; only a new token changes.

A user with neither DAP nor a GDAP role there is refused with AADSTS50020, the answer partners'
tools report for an account outside the right groups (wire-facts §8). Entra's text for this case
is the guest-not-found sentence; the emulator appends a bracketed note saying what GDAP found
(*unverified*: the note is the emulator's own, as other emulator hints are).
"""

from __future__ import annotations

from typing import Any

from csp_emulator.identity import errors
from csp_emulator.identity.errors import AADError
from csp_emulator.world.model import Tenant, World


def transitive_groups(tenant: Tenant, object_id: str) -> set[str]:
    """Ids of the groups ``object_id`` is in, directly or through nested groups."""
    found: set[str] = set()
    frontier = [object_id]
    while frontier:
        member = frontier.pop()
        for group in tenant.groups_of(member):
            if group["id"] not in found:
                found.add(group["id"])
                frontier.append(group["id"])
    return found


def gdap_roles(
    world: World, home: Tenant, user: dict[str, Any], target: Tenant, now: float
) -> tuple[str, ...]:
    """Role template ids ``user`` of partner ``home`` holds in ``target`` through GDAP now."""
    if home.kind != "partner" or home.id == target.id:
        return ()
    groups = transitive_groups(home, str(user["id"]))
    return tuple(world.gdap.roles_for(home.id, target.id, groups, now))


def no_access(
    world: World, home: Tenant, user: dict[str, Any], target: Tenant, app: str, now: float
) -> AADError:
    """AADSTS50020 for a user of another tenant who may not act in ``target``; for a partner's
    user, a note on what GDAP has (or lacks) between the partner and the customer."""
    err = errors.user_not_in_tenant(
        str(user["userPrincipalName"]), home.id, target.display_name, app
    )
    if home.kind != "partner":
        return err
    relationships = [r for r in world.gdap.with_customer(target.id, now) if r.partner_id == home.id]
    if not relationships:
        note = "there is no GDAP relationship between the partner and this customer"
    elif not any(r.grants_access(now) for r in relationships):
        statuses = ", ".join(sorted({r.status(now) for r in relationships}))
        note = f"the partner's GDAP relationships with this customer are {statuses}, not active"
    else:
        note = (
            "no active access assignment of a security group this user belongs to grants a role "
            "in an active GDAP relationship with this customer (AdminAgents alone grants nothing "
            "without DAP)"
        )
    err.message += f" [cspgraph emulator: {note}.]"
    return err
