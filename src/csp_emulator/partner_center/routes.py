"""Partner Center's route table, and what every route does around its handler: authenticate the
caller, count the request against the partner's limit, render a refusal, and add the ids Partner
Center puts on every answer."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from csp_emulator.context import EmulatorContext
from csp_emulator.partner_center import consents, handlers
from csp_emulator.partner_center.auth import Caller, authenticate
from csp_emulator.partner_center.errors import PartnerCenterError
from csp_emulator.partner_center.model import rate_limit
from csp_emulator.routing import Endpoint, Route, starlette_routes

Handler = Callable[[EmulatorContext, Request, Caller], Awaitable[Response]]


@dataclass(frozen=True)
class Operation:
    handler: Handler
    rate_limited: bool = True  # counts against the 500 requests a minute (model.rate_limit)


ROUTES: tuple[Route[Operation], ...] = (
    Route(
        "/v1/customers",
        {"GET": Operation(handlers.list_customers), "POST": Operation(handlers.create_customer)},
    ),
    # Before /v1/customers/{customer_id}: Starlette matches in order.
    Route(
        "/v1/customers/relationshiprequests",
        {"GET": Operation(consents.relationship_request)},
    ),
    Route("/v1/customers/{customer_id}", {"GET": Operation(handlers.get_customer)}),
    # App consent has its own limit (50 per second per application; not emulated).
    Route(
        "/v1/customers/{customer_id}/applicationconsents",
        {
            "GET": Operation(consents.list_consents, rate_limited=False),
            "POST": Operation(consents.create_consent, rate_limited=False),
        },
    ),
    Route(
        "/v1/customers/{customer_id}/applicationconsents/{app_id}",
        {"DELETE": Operation(consents.delete_consent, rate_limited=False)},
    ),
    Route("/v1/domains/{domain}", {"GET": Operation(handlers.check_domain, rate_limited=False)}),
)


def build_app(ctx: EmulatorContext) -> Starlette:
    def endpoint(route: Route[Operation]) -> Endpoint:
        async def serve(request: Request) -> Response:
            operation = route.handler(request.method)
            try:
                caller = authenticate(ctx, request)
                if operation.rate_limited:
                    rate_limit(ctx.state.partner_center, ctx.world, caller.partner)
                response = await operation.handler(ctx, request, caller)
            except PartnerCenterError as exc:
                response = exc.response()
            # Partner Center echoes the caller's ids and adds its own correlation vector.
            for name in ("MS-CorrelationId", "MS-RequestId"):
                response.headers[name] = request.headers.get(name) or str(uuid.uuid4())
            response.headers["MS-CV"] = base64.b64encode(secrets.token_bytes(12)).decode() + ".0"
            return response

        return serve

    return Starlette(routes=starlette_routes(ROUTES, endpoint))
