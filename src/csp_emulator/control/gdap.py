"""The control API's GDAP shortcuts: look at relationships, approve or decline one as the
customer would on the approval page, accept a reseller invitation as a stand-alone tenant would.

Each goes through world/customer_side.py, the code the customer's pages run, so a test that
approves here sees exactly what a person approving in the browser causes.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from csp_emulator.context import EmulatorContext
from csp_emulator.control.handlers import ControlError
from csp_emulator.control.handlers import _body as read_body  # shared rather than copied
from csp_emulator.control.handlers import _tenant as tenant_of
from csp_emulator.http import json_response
from csp_emulator.world import gdap
from csp_emulator.world.customer_side import DecisionError, accept_reseller, decide
from csp_emulator.world.model import Tenant, World


def relationship_summary(rel: gdap.Relationship, now: float) -> dict[str, Any]:
    rel.settle(now)
    return {
        "id": rel.id,
        "partner_id": rel.partner_id,
        "customer_id": rel.customer_id,
        "display_name": rel.display_name,
        "status": rel.status(now),
        "roles": list(rel.roles),
        "end": gdap.timestamp(rel.end()),
        "assignments": [
            {"group_id": a.group_id, "roles": list(a.roles), "status": a.status(now)}
            for a in rel.assignments.values()
        ],
    }


async def list_relationships(ctx: EmulatorContext, request: Request) -> Response:
    world = ctx.world
    now = world.clock.now()
    items = [relationship_summary(r, now) for r in world.gdap.relationships.values()]
    return json_response({"value": items})


def _customer(world: World, rel_id: str, body: dict[str, Any]) -> Tenant:
    ref = body.get("customer")
    if ref:
        return tenant_of(world, str(ref))
    rel = world.gdap.relationships.get(rel_id.lower())
    if rel is None or rel.customer_id is None:
        raise ControlError(400, 'name the approving customer: {"customer": domain or id}')
    return tenant_of(world, rel.customer_id)


async def _decide(ctx: EmulatorContext, request: Request, *, approve: bool) -> Response:
    world = ctx.world
    rel_id = request.path_params["id"]
    if world.gdap.relationships.get(rel_id.lower()) is None:
        raise ControlError(404, f"no GDAP relationship {rel_id!r}")
    customer = _customer(world, rel_id, await read_body(request))
    try:
        rel = decide(world, rel_id, customer, approve=approve)
    except DecisionError as exc:
        raise ControlError(409, str(exc)) from None
    return json_response(relationship_summary(rel, world.clock.now()))


async def approve(ctx: EmulatorContext, request: Request) -> Response:
    return await _decide(ctx, request, approve=True)


async def decline(ctx: EmulatorContext, request: Request) -> Response:
    return await _decide(ctx, request, approve=False)


async def accept_invitation(ctx: EmulatorContext, request: Request) -> Response:
    body = await read_body(request)
    world = ctx.world
    partner = tenant_of(world, str(body.get("partner", "")))
    customer = tenant_of(world, str(body.get("customer", "")))
    try:
        accept_reseller(world, partner, customer, dap=bool(body.get("dap", False)))
    except DecisionError as exc:
        raise ControlError(409, str(exc)) from None
    return Response(status_code=204)
