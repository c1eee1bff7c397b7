"""The emulator's own control API, under ``/_emulator`` on the control origin.

It lets tests and users inspect the world, move the clock, change settings, inject faults, change
directory objects behind Graph's back (so delta queries have something to report), create and end
partner relationships, list issued tokens (never the tokens themselves), and reset. It listens on
loopback only and asks for no credentials: it is a test fixture, not a cloud.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from csp_emulator.context import EmulatorContext
from csp_emulator.faults import check_fault
from csp_emulator.http import json_response, loads
from csp_emulator.world.model import RESOURCES, Fault, Tenant, World, iso, parse_duration
from csp_emulator.world.objects import user_json


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _tenant(world: World, ref: str) -> Tenant:
    tenant = world.tenant(ref)
    if tenant is None:
        raise ControlError(404, f"no tenant {ref!r} in this world")
    return tenant


def _resource(name: str) -> str:
    if name not in RESOURCES:
        raise ControlError(404, f"no resource {name!r}; expected one of {', '.join(RESOURCES)}")
    return name


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        value = loads(raw)
    except ValueError:
        raise ControlError(400, "the body is not JSON") from None
    if not isinstance(value, dict):
        raise ControlError(400, "the body must be a JSON object")
    return value


def tenant_summary(world: World, tenant: Tenant) -> dict[str, Any]:
    now = world.clock.now()
    return {
        "id": tenant.id,
        "domain": tenant.default_domain,
        "domains": tenant.domains,
        "display_name": tenant.display_name,
        "region": tenant.region,
        "cloud": tenant.cloud,
        "kind": tenant.kind,
        "counts": {r: len(objs) for r, objs in tenant.objects.items()},
        "partners": [
            {
                "partner_id": rel.partner_id,
                "created_at": iso(rel.created_at),
                "effective_at": iso(rel.effective_at),
                "in_effect": rel.in_effect(now),
                "dap": rel.dap,
            }
            for rel in world.relationships
            if rel.customer_id == tenant.id and rel.active
        ],
    }


def settings_json(world: World) -> dict[str, Any]:
    s = world.settings
    return {
        "propagation_delay": s.propagation_delay,
        "token_lifetime": s.token_lifetime,
        "refresh_token_lifetime": s.refresh_token_lifetime,
        "page_size": s.page_size,
        "throttling": dataclasses.asdict(s.throttling),
        "faults": [dataclasses.asdict(f) for f in s.faults],
    }


def build_app(ctx: EmulatorContext) -> Starlette:
    async def health(request: Request) -> Response:
        return json_response({"status": "ok", "now": iso(ctx.world.clock.now())})

    async def world_view(request: Request) -> Response:
        world = ctx.world
        return json_response(
            {
                "now": iso(world.clock.now()),
                "settings": settings_json(world),
                "tenants": [tenant_summary(world, t) for t in world.tenants.values()],
            }
        )

    async def tenant_view(request: Request) -> Response:
        return json_response(
            tenant_summary(ctx.world, _tenant(ctx.world, request.path_params["t"]))
        )

    async def clock(request: Request) -> Response:
        clock = ctx.world.clock
        if request.method == "POST":
            body = await _body(request)
            try:
                clock.advance(parse_duration(body.get("seconds", body.get("by", 0))))
            except ValueError as exc:
                raise ControlError(400, str(exc)) from None
        return json_response(
            {"now": iso(clock.now()), "epoch": clock.now(), "offset": clock.offset}
        )

    async def settings(request: Request) -> Response:
        world = ctx.world
        if request.method in ("PUT", "PATCH"):
            body = await _body(request)
            try:
                apply_settings(world, body)
            except (ValueError, TypeError) as exc:
                raise ControlError(400, str(exc)) from None
        return json_response(settings_json(world))

    async def tokens(request: Request) -> Response:
        tenant = request.query_params.get("tenant")
        client_id = request.query_params.get("client_id")
        tenant_id = _tenant(ctx.world, tenant).id if tenant else None
        items = [
            dataclasses.asdict(t)
            for t in ctx.world.issued_tokens
            if (tenant_id is None or t.tenant_id == tenant_id)
            and (client_id is None or t.client_id == client_id)
        ]
        return json_response({"value": items, "count": len(items)})

    async def reset(request: Request) -> Response:
        ctx.reset()
        return json_response({"status": "reset", "tenants": len(ctx.world.tenants)})

    async def faults(request: Request) -> Response:
        world = ctx.world
        if request.method == "POST":
            body = await _body(request)
            try:
                fault = Fault(**{k: v for k, v in body.items() if k != "id"})
                if "latency" in body:
                    fault.latency = parse_duration(body["latency"])
                check_fault(fault)
            except (TypeError, ValueError) as exc:
                raise ControlError(400, f"bad fault: {exc}") from None
            world.settings.faults.append(fault)
            return json_response(dataclasses.asdict(fault), 201)
        if request.method == "DELETE":
            world.settings.faults.clear()
            return Response(status_code=204)
        return json_response({"value": [dataclasses.asdict(f) for f in world.settings.faults]})

    async def fault_item(request: Request) -> Response:
        faults = ctx.world.settings.faults
        before = len(faults)
        faults[:] = [f for f in faults if f.id != request.path_params["id"]]
        if len(faults) == before:
            raise ControlError(404, "no such fault")
        return Response(status_code=204)

    async def objects(request: Request) -> Response:
        tenant = _tenant(ctx.world, request.path_params["t"])
        resource = _resource(request.path_params["resource"])
        if request.method == "POST":
            body = await _body(request)
            if resource == "users":
                if "userPrincipalName" not in body:
                    raise ControlError(400, "a user needs userPrincipalName")
                obj = user_json(
                    tenant,
                    body.pop("userPrincipalName"),
                    password=body.pop("password", None),
                )
                obj.update(body)
            else:
                if "id" not in body:
                    raise ControlError(400, f"a new {resource} object needs an id")
                obj = body
            if tenant.get(resource, obj["id"]) is not None:
                raise ControlError(409, f"{resource}/{obj['id']} exists")
            return json_response(_public(tenant.add(resource, obj)), 201)
        return json_response({"value": [_public(o) for o in tenant.objects[resource].values()]})

    async def object_item(request: Request) -> Response:
        tenant = _tenant(ctx.world, request.path_params["t"])
        resource = _resource(request.path_params["resource"])
        object_id = request.path_params["id"]
        if tenant.get(resource, object_id) is None:
            raise ControlError(404, f"no {resource}/{object_id} in {tenant.default_domain}")
        if request.method == "DELETE":
            reason = request.query_params.get("reason", "changed")
            tenant.remove(resource, object_id, reason=reason)
            return Response(status_code=204)
        if request.method == "PATCH":
            changes = await _body(request)
            return json_response(_public(tenant.update(resource, object_id, changes)))
        return json_response(_public(tenant.objects[resource][object_id]))

    async def members(request: Request) -> Response:
        tenant = _tenant(ctx.world, request.path_params["t"])
        group_id = request.path_params["group"]
        if tenant.get("groups", group_id) is None:
            raise ControlError(404, "no such group")
        body = await _body(request)
        member = str(body.get("id", ""))
        if request.method == "POST":
            if tenant.find(member) is None:
                raise ControlError(404, "no such member")
            changed = tenant.add_member(group_id, member)
        else:
            changed = tenant.remove_member(group_id, member)
        return json_response({"changed": changed})

    async def relationships(request: Request) -> Response:
        world = ctx.world
        if request.method == "GET":
            return json_response({"value": [dataclasses.asdict(r) for r in world.relationships]})
        body = await _body(request)
        partner = _tenant(world, str(body.get("partner", "")))
        customer = _tenant(world, str(body.get("customer", "")))
        existing = world.relationship(partner.id, customer.id)
        if request.method == "DELETE":
            if existing is None:
                raise ControlError(404, "no such relationship")
            existing.active = False
            return Response(status_code=204)
        if partner.kind != "partner":
            raise ControlError(400, f"{partner.default_domain} is not a partner tenant")
        if existing is not None:
            raise ControlError(409, "the relationship exists")
        rel = world.add_relationship(partner, customer, in_effect=bool(body.get("in_effect")))
        rel.dap = bool(body.get("dap", True))
        return json_response(dataclasses.asdict(rel), 201)

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ControlError)
        return json_response({"error": exc.message}, exc.status)

    prefix = "/_emulator"
    return Starlette(
        routes=[
            Route(f"{prefix}/health", health),
            Route(f"{prefix}/world", world_view),
            Route(f"{prefix}/tenants/{{t}}", tenant_view),
            Route(f"{prefix}/clock", clock, methods=["GET", "POST"]),
            Route(f"{prefix}/settings", settings, methods=["GET", "PUT", "PATCH"]),
            Route(f"{prefix}/tokens", tokens),
            Route(f"{prefix}/reset", reset, methods=["POST"]),
            Route(f"{prefix}/faults", faults, methods=["GET", "POST", "DELETE"]),
            Route(f"{prefix}/faults/{{id}}", fault_item, methods=["DELETE"]),
            Route(f"{prefix}/relationships", relationships, methods=["GET", "POST", "DELETE"]),
            Route(
                f"{prefix}/tenants/{{t}}/groups/{{group}}/members",
                members,
                methods=["POST", "DELETE"],
            ),
            Route(f"{prefix}/tenants/{{t}}/{{resource}}", objects, methods=["GET", "POST"]),
            Route(
                f"{prefix}/tenants/{{t}}/{{resource}}/{{id}}",
                object_item,
                methods=["GET", "PATCH", "DELETE"],
            ),
        ],
        exception_handlers={ControlError: on_error},
    )


def apply_settings(world: World, body: dict[str, Any]) -> None:
    """Change settings at run time; unknown keys are refused by name."""
    s = world.settings
    known = {"propagation_delay", "token_lifetime", "page_size", "throttling"}
    unknown = set(body) - known
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; expected some of {sorted(known)}")
    if "propagation_delay" in body:
        s.propagation_delay = parse_duration(body["propagation_delay"])
        # A relationship not yet in effect takes the new delay from its creation.
        now = world.clock.now()
        for rel in world.relationships:
            if not rel.in_effect(now):
                rel.effective_at = rel.created_at + s.propagation_delay
    if "token_lifetime" in body:
        lifetime = parse_duration(body["token_lifetime"])
        if lifetime <= 300:
            raise ValueError("token_lifetime must be over 5 minutes (MSAL's expiry margin)")
        s.token_lifetime = lifetime
    if "page_size" in body:
        size = int(body["page_size"])
        if not 1 <= size <= 999:
            raise ValueError("page_size must be between 1 and 999")
        s.page_size = size
    if "throttling" in body:
        throttling = body["throttling"]
        keys = {"enabled", "scale", "partner_center_scale"}
        if not isinstance(throttling, dict) or set(throttling) - keys:
            raise ValueError(
                "throttling takes {'enabled': bool, 'scale': number (Graph's budgets), "
                "'partner_center_scale': number (Partner Center's limit)}"
            )
        # Every value is checked before any is applied: a refused body changes nothing.
        enabled = throttling.get("enabled", s.throttling.enabled)
        if not isinstance(enabled, bool):
            raise ValueError(f"throttling.enabled must be true or false, not {enabled!r}")
        scale = _scale(throttling, "scale", s.throttling.scale)
        pc_scale = _scale(throttling, "partner_center_scale", s.throttling.partner_center_scale)
        s.throttling.enabled = enabled
        s.throttling.scale = scale
        s.throttling.partner_center_scale = pc_scale


def _scale(throttling: dict[str, Any], key: str, current: float) -> float:
    """A budget factor from the control API: a positive, finite number."""
    value = throttling.get(key, current)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"throttling.{key} must be a positive number, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"throttling.{key} must be a positive number, not {value!r}")
    return float(value)


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}
