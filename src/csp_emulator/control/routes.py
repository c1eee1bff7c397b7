"""The control API's route table (``/_emulator/…``) and the one place its refusals are rendered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from csp_emulator.context import EmulatorContext
from csp_emulator.control import gdap, latency_log
from csp_emulator.control import handlers as h
from csp_emulator.control.handlers import ControlError
from csp_emulator.http import json_response
from csp_emulator.routing import Route, context_app

Handler = Callable[[EmulatorContext, Request], Awaitable[Response]]
PREFIX = "/_emulator"


def _route(path: str, **methods: Handler) -> Route[Handler]:
    return Route(PREFIX + path, methods)


ROUTES: tuple[Route[Handler], ...] = (
    _route("/health", GET=h.health),
    _route("/world", GET=h.world_view),
    _route("/tenants/{t}", GET=h.tenant_view),
    _route("/partner-apps", GET=h.partner_apps),
    _route("/clock", GET=h.read_clock, POST=h.advance_clock),
    _route("/settings", GET=h.read_settings, PUT=h.change_settings, PATCH=h.change_settings),
    _route("/tokens", GET=h.tokens),
    _route("/reset", POST=h.reset),
    _route("/faults", GET=h.list_faults, POST=h.add_fault, DELETE=h.clear_faults),
    _route("/faults/{id}", DELETE=h.remove_fault),
    _route("/latency/log", GET=latency_log.read_log, DELETE=latency_log.clear_log),
    _route(
        "/relationships",
        GET=h.list_relationships,
        POST=h.add_relationship,
        DELETE=h.end_relationship,
    ),
    _route("/gdap", GET=gdap.list_relationships),
    _route("/gdap/{id}/approve", POST=gdap.approve),
    _route("/gdap/{id}/decline", POST=gdap.decline),
    _route("/invitations/accept", POST=gdap.accept_invitation),
    _route("/tenants/{t}/groups/{group}/members", POST=h.add_member, DELETE=h.remove_member),
    _route("/tenants/{t}/{resource}", GET=h.list_objects, POST=h.add_object),
    _route(
        "/tenants/{t}/{resource}/{id}",
        GET=h.get_object,
        PATCH=h.update_object,
        DELETE=h.delete_object,
    ),
)


async def _refusal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ControlError)
    return json_response({"error": exc.message}, exc.status)


def build_app(ctx: EmulatorContext) -> Starlette:
    return context_app(ctx, ROUTES, exception_handlers={ControlError: _refusal})
