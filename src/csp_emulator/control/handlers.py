"""The control API's handlers, one per method and path (the table is in routes.py).

A bad request raises :class:`ControlError`, which routes.py renders as ``{"error": message}``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from csp_emulator.context import EmulatorContext
from csp_emulator.control.model import apply_settings, public, settings_json, tenant_summary
from csp_emulator.faults import check_fault
from csp_emulator.graph.directory_writes import key_credentials
from csp_emulator.graph.errors import GraphError
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


# -- the world, the clock, settings, tokens, reset ------------------------------------------------


async def health(ctx: EmulatorContext, request: Request) -> Response:
    return json_response({"status": "ok", "now": iso(ctx.world.clock.now())})


async def world_view(ctx: EmulatorContext, request: Request) -> Response:
    world = ctx.world
    return json_response(
        {
            "now": iso(world.clock.now()),
            "settings": settings_json(world),
            "tenants": [tenant_summary(world, t) for t in world.tenants.values()],
        }
    )


async def partner_apps(ctx: EmulatorContext, request: Request) -> Response:
    """Each partner tenant with its multi-tenant apps, their newest secret included: what
    `cspgraph config init --from-emulator` writes a configuration from. The secrets are the
    world file's own (a test world's), and the control API can already mint any token."""
    world = ctx.world
    now = world.clock.now()
    partners = []
    for tenant in world.partners():
        agents = tenant.group_by_name("AdminAgents")
        agent_ids = set(tenant.member_ids(agents["id"])) if agents else set()
        apps = []
        for app in tenant.objects["applications"].values():
            if app.get("signInAudience") == "AzureADMyOrg":
                continue  # a single-tenant app cannot reach a customer
            sp = tenant.service_principal_by_app_id(str(app["appId"]))
            live = [s for s in app.get("_secrets") or [] if s.get("end", now + 1) > now]
            apps.append(
                {
                    "client_id": app["appId"],
                    "display_name": app.get("displayName"),
                    "admin_agents": sp is not None and sp["id"] in agent_ids,
                    "client_secret": live[-1]["secretText"] if live else None,
                    "certificates": len(app.get("_certificates") or []),
                }
            )
        partners.append(
            {
                "id": tenant.id,
                "domain": tenant.default_domain,
                "display_name": tenant.display_name,
                "region": tenant.region,
                "apps": apps,
            }
        )
    return json_response({"partners": partners})


async def tenant_view(ctx: EmulatorContext, request: Request) -> Response:
    return json_response(tenant_summary(ctx.world, _tenant(ctx.world, request.path_params["t"])))


def _clock_json(ctx: EmulatorContext) -> Response:
    clock = ctx.world.clock
    return json_response({"now": iso(clock.now()), "epoch": clock.now(), "offset": clock.offset})


async def read_clock(ctx: EmulatorContext, request: Request) -> Response:
    return _clock_json(ctx)


async def advance_clock(ctx: EmulatorContext, request: Request) -> Response:
    body = await _body(request)
    try:
        ctx.world.clock.advance(parse_duration(body.get("seconds", body.get("by", 0))))
    except ValueError as exc:
        raise ControlError(400, str(exc)) from None
    return _clock_json(ctx)


async def read_settings(ctx: EmulatorContext, request: Request) -> Response:
    return json_response(settings_json(ctx.world))


async def change_settings(ctx: EmulatorContext, request: Request) -> Response:
    body = await _body(request)
    try:
        apply_settings(ctx.world, body)
    except (ValueError, TypeError) as exc:
        raise ControlError(400, str(exc)) from None
    return json_response(settings_json(ctx.world))


async def tokens(ctx: EmulatorContext, request: Request) -> Response:
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


async def reset(ctx: EmulatorContext, request: Request) -> Response:
    ctx.reset()
    return json_response({"status": "reset", "tenants": len(ctx.world.tenants)})


# -- faults ---------------------------------------------------------------------------------------


async def list_faults(ctx: EmulatorContext, request: Request) -> Response:
    return json_response({"value": [dataclasses.asdict(f) for f in ctx.world.settings.faults]})


async def add_fault(ctx: EmulatorContext, request: Request) -> Response:
    body = await _body(request)
    try:
        fault = Fault(**{k: v for k, v in body.items() if k not in ("id", "latency")})
        if "latency" in body:
            fault.latency = parse_duration(body["latency"])
        check_fault(fault)
    except (TypeError, ValueError) as exc:
        raise ControlError(400, f"bad fault: {exc}") from None
    ctx.world.settings.faults.append(fault)
    return json_response(dataclasses.asdict(fault), 201)


async def clear_faults(ctx: EmulatorContext, request: Request) -> Response:
    ctx.world.settings.faults.clear()
    return Response(status_code=204)


async def remove_fault(ctx: EmulatorContext, request: Request) -> Response:
    faults = ctx.world.settings.faults
    before = len(faults)
    faults[:] = [f for f in faults if f.id != request.path_params["id"]]
    if len(faults) == before:
        raise ControlError(404, "no such fault")
    return Response(status_code=204)


# -- directory objects behind Graph's back --------------------------------------------------------


async def list_objects(ctx: EmulatorContext, request: Request) -> Response:
    tenant = _tenant(ctx.world, request.path_params["t"])
    resource = _resource(request.path_params["resource"])
    return json_response({"value": [public(o) for o in tenant.objects[resource].values()]})


async def add_object(ctx: EmulatorContext, request: Request) -> Response:
    tenant = _tenant(ctx.world, request.path_params["t"])
    resource = _resource(request.path_params["resource"])
    body = _properties(await _body(request), resource)
    if resource == "users":
        upn = body.pop("userPrincipalName", None)
        if not isinstance(upn, str) or upn.count("@") != 1 or not all(upn.split("@")):
            raise ControlError(400, "a user needs a userPrincipalName like 'someone@domain.com'")
        password = body.pop("password", None)
        if password is not None and not isinstance(password, str):
            raise ControlError(400, "password: expected a string")
        obj = user_json(tenant, upn, password=password)
        obj.update(body)
    else:
        if "id" not in body:
            raise ControlError(400, f"a new {resource} object needs an id")
        obj = _with_certificates(resource, {}, body)
    if tenant.get(resource, obj["id"]) is not None:
        raise ControlError(409, f"{resource}/{obj['id']} exists")
    return json_response(public(tenant.add(resource, obj)), 201)


# Object ids: what Graph's ids look like (GUIDs, and the longer ids of some Intune objects), never
# a number or a path (an id is a URL segment and the key of every index the tenant keeps).
_OBJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _properties(body: dict[str, Any], resource: str) -> dict[str, Any]:
    """An object's properties from a control-API body: never the emulator's own ``_`` keys (a
    password hash, members, the change sequence), and a string ``id`` shaped like Graph's."""
    own = sorted(k for k in body if k.startswith("_"))
    if own:
        raise ControlError(400, f"{', '.join(own)}: keys starting with _ are the emulator's own")
    if "id" in body and not (isinstance(body["id"], str) and _OBJECT_ID.fullmatch(body["id"])):
        raise ControlError(
            400, f"id {body['id']!r}: expected a string id like a GUID (letters, digits, -, _, .)"
        )
    return body


def _object(ctx: EmulatorContext, request: Request) -> tuple[Tenant, str, str]:
    """The tenant, resource and id a ``/tenants/{t}/{resource}/{id}`` path names; 404 if absent."""
    tenant = _tenant(ctx.world, request.path_params["t"])
    resource = _resource(request.path_params["resource"])
    object_id = request.path_params["id"]
    if tenant.get(resource, object_id) is None:
        raise ControlError(404, f"no {resource}/{object_id} in {tenant.default_domain}")
    return tenant, resource, object_id


async def get_object(ctx: EmulatorContext, request: Request) -> Response:
    tenant, resource, object_id = _object(ctx, request)
    return json_response(public(tenant.objects[resource][object_id]))


async def update_object(ctx: EmulatorContext, request: Request) -> Response:
    tenant, resource, object_id = _object(ctx, request)
    changes = _properties(await _body(request), resource)
    if "id" in changes and changes["id"] != object_id:
        raise ControlError(400, "id: an object's id cannot change; delete it and add another")
    if "userPrincipalName" in changes and not isinstance(changes["userPrincipalName"], str):
        raise ControlError(400, "userPrincipalName: expected a string")
    changes = _with_certificates(resource, tenant.objects[resource][object_id], changes)
    return json_response(public(tenant.update(resource, object_id, changes)))


def _with_certificates(
    resource: str, app: dict[str, Any], changes: dict[str, Any]
) -> dict[str, Any]:
    """An application's ``keyCredentials`` taken as Graph takes them (the base64 DER ``key`` of
    each certificate, or the ``keyId`` of one the app has), so a certificate added here signs
    client assertions as one added through Graph or the world file does."""
    if resource != "applications" or "keyCredentials" not in changes:
        return changes
    try:
        public_entries, private = key_credentials(app, changes["keyCredentials"])
    except GraphError as exc:
        raise ControlError(400, exc.message) from None
    return {**changes, "keyCredentials": public_entries, "_certificates": private}


async def delete_object(ctx: EmulatorContext, request: Request) -> Response:
    tenant, resource, object_id = _object(ctx, request)
    reason = request.query_params.get("reason", "changed")
    tenant.remove(resource, object_id, reason=reason)
    return Response(status_code=204)


async def _membership(ctx: EmulatorContext, request: Request) -> tuple[Tenant, str, str]:
    """The tenant, the group and the member id of a ``…/groups/{group}/members`` request."""
    tenant = _tenant(ctx.world, request.path_params["t"])
    group_id = request.path_params["group"]
    if tenant.get("groups", group_id) is None:
        raise ControlError(404, "no such group")
    body = await _body(request)
    member = body.get("id")
    if not isinstance(member, str) or not member:
        raise ControlError(400, f"id {member!r}: expected the member's object id, a string")
    return tenant, group_id, member


async def add_member(ctx: EmulatorContext, request: Request) -> Response:
    tenant, group_id, member = await _membership(ctx, request)
    if tenant.find(member) is None:
        raise ControlError(404, "no such member")
    return json_response({"changed": tenant.add_member(group_id, member)})


async def remove_member(ctx: EmulatorContext, request: Request) -> Response:
    tenant, group_id, member = await _membership(ctx, request)
    return json_response({"changed": tenant.remove_member(group_id, member)})


# -- partner relationships ------------------------------------------------------------------------


async def list_relationships(ctx: EmulatorContext, request: Request) -> Response:
    return json_response({"value": [dataclasses.asdict(r) for r in ctx.world.relationships]})


async def _pair(ctx: EmulatorContext, request: Request) -> tuple[dict[str, Any], Tenant, Tenant]:
    """The body, partner and customer of a relationship request (404 for either unknown)."""
    body = await _body(request)
    for key in ("partner", "customer"):
        if not isinstance(body.get(key), str):
            raise ControlError(400, f"{key}: expected a tenant's domain or id, a string")
    for key in ("in_effect", "dap"):
        if key in body and not isinstance(body[key], bool):
            raise ControlError(400, f"{key}: expected true or false, not {body[key]!r}")
    partner = _tenant(ctx.world, body["partner"])
    customer = _tenant(ctx.world, body["customer"])
    return body, partner, customer


async def add_relationship(ctx: EmulatorContext, request: Request) -> Response:
    body, partner, customer = await _pair(ctx, request)
    world = ctx.world
    if partner.kind != "partner":
        raise ControlError(400, f"{partner.default_domain} is not a partner tenant")
    if world.relationship(partner.id, customer.id) is not None:
        raise ControlError(409, "the relationship exists")
    rel = world.add_relationship(partner, customer, in_effect=bool(body.get("in_effect")))
    rel.dap = bool(body.get("dap", True))
    return json_response(dataclasses.asdict(rel), 201)


async def end_relationship(ctx: EmulatorContext, request: Request) -> Response:
    _, partner, customer = await _pair(ctx, request)
    existing = ctx.world.relationship(partner.id, customer.id)
    if existing is None:
        raise ControlError(404, "no such relationship")
    existing.active = False
    return Response(status_code=204)
