"""One Graph request from route to answer: resolve, authorize, throttle, handle.

The same steps serve a top-level request and every ``$batch`` item, in Graph's order: a path
Graph does not know (400) or that leaves the CSP scope (403) before permissions (403) before
throttling (429) before the handler. A refused request consumes no throttling budget.
"""

from __future__ import annotations

from csp_emulator import limits
from csp_emulator.context import EmulatorContext
from csp_emulator.graph import authz, routes
from csp_emulator.graph.caller import Caller
from csp_emulator.graph.errors import GraphError, inner_error_date
from csp_emulator.graph.request import (
    ERROR_CONTENT_TYPE,
    Call,
    GraphRequest,
    GraphResponse,
)

ME_NEEDS_USER = "/me request is only valid with delegated authentication flow."


def execute(ctx: EmulatorContext, request: GraphRequest, caller: Caller) -> GraphResponse:
    world = ctx.world
    now = world.clock.now()
    tenant = world.tenants[caller.tenant_id]
    charged: dict[str, str] = {}
    try:
        route, ids = routes.resolve(request.method, request.segments)
        call = Call(ctx, request, caller, tenant, ids, now)
        if route.delegated_only and not caller.delegated:
            raise GraphError(400, "BadRequest", ME_NEEDS_USER)
        authz.require(caller, route.operation_for(call))
        verdict = ctx.state.graph.throttle.charge(
            caller.app_id, tenant, route.family, _cost(request, route), route.write
        )
        if not verdict.allowed:
            return throttled(request, now, verdict.headers)
        charged = verdict.headers
        response = route.handler(call)
    except GraphError as exc:
        response = error_response(exc, request, now)
    response.headers.update(charged)
    return response


def _cost(request: GraphRequest, route: routes.Route) -> int:
    top_text = request.query.get("$top", "")
    top = int(top_text) if top_text.isdigit() else None
    return limits.resource_cost(
        request.method,
        route.path_kind,
        has_select="$select" in request.query,
        top=top,
        expand="$expand" in request.query,
    )


def error_response(exc: GraphError, request: GraphRequest, now: float) -> GraphResponse:
    body = exc.body(
        request_id=request.request_id, client_request_id=request.client_request_id, now=now
    )
    return GraphResponse(
        status=exc.status, body=body, headers=dict(exc.headers), content_type=ERROR_CONTENT_TYPE
    )


def throttled(request: GraphRequest, now: float, headers: dict[str, str]) -> GraphResponse:
    body = limits.throttled_response_body(
        request.request_id, request.client_request_id, inner_error_date(now)
    )
    return GraphResponse(
        status=429, body=body, headers=dict(headers), content_type=ERROR_CONTENT_TYPE
    )
