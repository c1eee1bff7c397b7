"""What a customer's administrator does with a partner's invitations: approve or decline a GDAP
relationship, accept a reseller relationship. The approval pages (admin_portal.py) and the
control API's shortcuts (control/gdap.py) both come here, so a test that approves through the
control API sees exactly what a person approving in the browser would cause.
"""

from __future__ import annotations

from csp_emulator import wellknown
from csp_emulator.world.gdap import Relationship
from csp_emulator.world.model import Tenant, World


class DecisionError(ValueError):
    """The invitation cannot be acted on; the message says why, for the person at the page."""


def is_global_admin(tenant: Tenant, user_id: str) -> bool:
    return wellknown.ROLE_GLOBAL_ADMIN in tenant.roles_of(user_id)


def pending_relationship(world: World, relationship_id: str) -> Relationship:
    rel = world.gdap.relationships.get(relationship_id.lower())
    if rel is None:
        raise DecisionError(f"There is no relationship request {relationship_id}.")
    return rel


def decide(world: World, relationship_id: str, customer: Tenant, *, approve: bool) -> Relationship:
    """Approve (or decline) a relationship waiting for approval, as ``customer``."""
    now = world.clock.now()
    rel = pending_relationship(world, relationship_id)
    rel.settle(now)
    status = rel.status(now)
    if status != "approvalPending":
        raise DecisionError(f"This relationship is '{status}', not waiting for approval.")
    if rel.customer_id is not None and rel.customer_id != customer.id:
        raise DecisionError("This relationship request was made for another organization.")
    if customer.kind != "customer":
        raise DecisionError("A partner tenant cannot approve a relationship with a partner.")
    if approve:
        # Activation takes the time a relationship takes to reach a tenant (world/gdap.py).
        rel.approve(customer.id, customer.display_name, now, world.settings.propagation_delay)
    else:
        rel.decline(now)
    return rel


def accept_reseller(world: World, partner: Tenant, customer: Tenant, *, dap: bool) -> None:
    """A stand-alone tenant accepts a partner's reseller invitation: the relationship (and DAP
    when the invitation asked for it) takes ``propagation_delay`` to reach the tenant, exactly
    like a new customer's (the original description)."""
    if partner.kind != "partner":
        raise DecisionError("The invitation does not come from a partner.")
    if customer.kind != "customer":
        raise DecisionError("A partner tenant cannot become another partner's customer.")
    if world.relationship(partner.id, customer.id) is not None:
        raise DecisionError(f"{customer.display_name} is already a customer of this partner.")
    if partner.region.upper() != customer.region.upper() or partner.cloud != customer.cloud:
        raise DecisionError("This partner cannot serve an organization in your region.")
    rel = world.add_relationship(partner, customer, in_effect=False)
    rel.dap = dap
