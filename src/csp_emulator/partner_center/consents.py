"""Partner Center's per-customer app consent (``applicationconsents``) and the reseller
relationship request link (``relationshiprequests``).

``POST /v1/customers/{id}/applicationconsents`` (Partner Center docs: control panel vendor APIs;
wire-facts §4.4) creates the app's service principal in the customer and grants the listed
**delegated** scopes tenant-wide (an ``oauth2PermissionGrant``, ``consentType``
``AllPrincipals``) — never app roles, which need an administrator's consent or a partner agent's
``appRoleAssignedTo`` (GDAP FAQ). It reaches the customer ``consent_delay`` later
(world/consent.py). A second consent of the same app answers 409 "Permission entry already
exists." (the text partners' tools match); ``DELETE …/applicationconsents/{appId}`` removes the
service principal with its grants.

Who may call: the caller (the user of an app+user token, or the app's service principal) must be
in the partner's ``AdminAgents``, and the partner must hold in that customer either DAP in effect
or, for a user, Global Administrator, Application Administrator or Cloud Application
Administrator through GDAP (wire-facts §4.4). An app-only caller has no GDAP roles: "an app SP
placed in a GDAP group does not act as an agent" (wire-facts §5), so it consents only where DAP
applies. Refusals are 403 with Partner Center's error shape (code *unverified*).

``GET /v1/customers/relationshiprequests`` (Partner Center docs: "Retrieve a relationship request
URL", App+User credentials only) answers ``{url, attributes}``: the invitation a stand-alone
tenant's administrator accepts on the emulator's admin-portal page (admin_portal.py). The URL
follows admin.microsoft.com's shape on the emulator's login origin; its query
(``invType``, ``partnerId``, ``msppId``, ``DAP``) is *unverified*; ``DAP=true`` when the world's
``new_customer_access`` is ``"dap"``.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from csp_emulator import roles, wellknown
from csp_emulator.context import EmulatorContext
from csp_emulator.http import json_response, loads
from csp_emulator.identity.gdap_access import gdap_roles
from csp_emulator.partner_center.auth import Caller
from csp_emulator.partner_center.auth import _is_user_token as is_user_token
from csp_emulator.partner_center.errors import MEDIA_TYPE, PartnerCenterError, invalid_input
from csp_emulator.world.consent import grant_consent, revoke_consent, tenant_wide_grant
from csp_emulator.world.model import Tenant

# GDAP roles that may consent an app in a customer (wire-facts §4.4).
CONSENTING_ROLES = frozenset(
    {
        roles.GLOBAL_ADMINISTRATOR,
        roles.APPLICATION_ADMINISTRATOR,
        roles.CLOUD_APPLICATION_ADMINISTRATOR,
    }
)
ALREADY_EXISTS = "Permission entry already exists."


def _denied(why: str) -> PartnerCenterError:
    return PartnerCenterError(403, "403", f"Access denied. {why}")


def _customer(ctx: EmulatorContext, request: Request) -> Tenant:
    raw = request.path_params["customer_id"]
    try:
        customer_id = str(uuid.UUID(raw))
    except ValueError:
        raise invalid_input(f"the customer id must be a GUID, got {raw!r}") from None
    tenant = ctx.world.tenants.get(customer_id)
    if tenant is None or tenant.kind != "customer":
        raise PartnerCenterError(404, "60003", "Tenant not found")
    return tenant


def _caller_object(caller: Caller) -> tuple[str | None, dict[str, Any] | None]:
    """The caller's object id in the partner tenant, and the user object for app+user calls."""
    oid = caller.claims.get("oid")
    if not isinstance(oid, str):
        return None, None
    return oid, caller.partner.get("users", oid) if is_user_token(caller.claims) else None


def _may_consent(ctx: EmulatorContext, caller: Caller, customer: Tenant) -> None:
    world, partner = ctx.world, caller.partner
    now = world.clock.now()
    oid, user = _caller_object(caller)
    agents = partner.group_by_name("AdminAgents")
    if oid is None or agents is None or oid not in agents.get("_members", ()):
        raise _denied("The caller must be a member of the partner's AdminAgents group.")
    rel = world.relationship(partner.id, customer.id)
    if rel is not None and rel.dap and rel.in_effect(now):
        return
    if user is not None and CONSENTING_ROLES & set(gdap_roles(world, partner, user, customer, now)):
        return
    if rel is None and not any(
        r.partner_id == partner.id and r.grants_access(now)
        for r in world.gdap.with_customer(customer.id, now)
    ):
        raise PartnerCenterError(
            403,
            "20002",
            f"The partner ID {partner.id} has no commerce relationship with the customer ID "
            f"{customer.id}.",
        )
    raise _denied(
        "The caller holds no Global Administrator, Application Administrator or Cloud "
        "Application Administrator role in this customer (through GDAP), and the partner has no "
        "delegated admin privileges (DAP) there."
    )


def _scopes(grants: Any) -> list[str]:
    if not isinstance(grants, list) or not grants:
        raise invalid_input("applicationGrants must list at least one grant")
    scopes: list[str] = []
    for grant in grants:
        if not isinstance(grant, dict):
            raise invalid_input("each applicationGrant is an object")
        lowered = {str(k).lower(): v for k, v in grant.items()}
        if str(lowered.get("enterpriseapplicationid", "")).lower() != wellknown.GRAPH_APP_ID:
            # The emulator serves one resource: Microsoft Graph.
            raise invalid_input(
                f"enterpriseApplicationId must be Microsoft Graph ({wellknown.GRAPH_APP_ID})"
            )
        for name in str(lowered.get("scope") or "").split(","):
            name = name.strip()
            if not name:
                continue
            known = {n.lower(): n for n in wellknown.DELEGATED_PERMISSIONS}
            if name.lower() not in known:
                raise invalid_input(f"unknown Microsoft Graph delegated permission {name!r}")
            if known[name.lower()] not in scopes:
                scopes.append(known[name.lower()])
    if not scopes:
        raise invalid_input("applicationGrants name no scope")
    return scopes


def consent_json(customer: Tenant, sp: dict[str, Any]) -> dict[str, Any]:
    graph = customer.service_principal_by_app_id(wellknown.GRAPH_APP_ID)
    grant = tenant_wide_grant(customer, sp["id"], graph["id"]) if graph else None
    scope = ",".join(str(grant.get("scope") or "").split()) if grant else ""
    return {
        "applicationId": sp["appId"],
        "displayName": sp.get("displayName", ""),
        "applicationGrants": [{"enterpriseApplicationId": wellknown.GRAPH_APP_ID, "scope": scope}],
        "attributes": {"objectType": "ApplicationConsent"},
    }


async def create_consent(ctx: EmulatorContext, request: Request, caller: Caller) -> Response:
    customer = _customer(ctx, request)
    _may_consent(ctx, caller, customer)
    raw = await request.body()
    try:
        body = loads(raw) if raw else None
    except ValueError:
        raise invalid_input("the body is not JSON") from None
    if not isinstance(body, dict):
        raise invalid_input("the body must be a JSON object")
    lowered = {str(k).lower(): v for k, v in body.items()}
    app_id = str(lowered.get("applicationid") or "").lower()
    found = ctx.world.application(app_id) if app_id else None
    if found is None or found[1].get("signInAudience") == "AzureADMyOrg":
        raise invalid_input(f"applicationId {app_id or '(missing)'} is not a multi-tenant app")
    home, app = found
    scopes = _scopes(lowered.get("applicationgrants"))
    existing = customer.service_principal_by_app_id(app_id)
    graph = customer.service_principal_by_app_id(wellknown.GRAPH_APP_ID)
    if existing is not None and graph and tenant_wide_grant(customer, existing["id"], graph["id"]):
        raise PartnerCenterError(409, "409", ALREADY_EXISTS)
    world = ctx.world
    sp = grant_consent(
        customer, app, home.id, scopes=scopes, app_roles=[], now=world.clock.now(),
        delay=world.settings.consent_delay,
    )  # fmt: skip
    return json_response(consent_json(customer, sp), 201, media_type=MEDIA_TYPE)


def _consented(customer: Tenant, world_apps: set[str]) -> list[dict[str, Any]]:
    return [
        sp
        for sp in customer.objects["servicePrincipals"].values()
        if sp.get("appId") in world_apps and not sp.get("_dap_preconsent")
    ]


async def list_consents(ctx: EmulatorContext, request: Request, caller: Caller) -> Response:
    customer = _customer(ctx, request)
    _may_consent(ctx, caller, customer)
    apps = {
        str(app["appId"])
        for tenant in ctx.world.tenants.values()
        if tenant.id != customer.id
        for app in tenant.objects["applications"].values()
    }
    items = [consent_json(customer, sp) for sp in _consented(customer, apps)]
    body = {"totalCount": len(items), "items": items, "attributes": {"objectType": "Collection"}}
    return json_response(body, media_type=MEDIA_TYPE)


async def delete_consent(ctx: EmulatorContext, request: Request, caller: Caller) -> Response:
    customer = _customer(ctx, request)
    _may_consent(ctx, caller, customer)
    if not revoke_consent(customer, request.path_params["app_id"].lower()):
        # Code and wording unverified.
        raise PartnerCenterError(404, "404", "No consent of this application in the customer.")
    return Response(status_code=204)


async def relationship_request(ctx: EmulatorContext, request: Request, caller: Caller) -> Response:
    if not is_user_token(caller.claims):
        raise _denied("This API supports App+User credentials only.")
    partner = caller.partner
    dap = "true" if ctx.world.settings.new_customer_access == "dap" else "false"
    url = (
        f"{ctx.endpoints.authority_host}/AdminPortal/Home?invType=ResellerRelationship"
        f"&partnerId={partner.id}&msppId=0&DAP={dap}#/BillingAccounts/partner-invitation"
    )
    body = {"url": url, "attributes": {"objectType": "RelationshipRequest"}}
    return json_response(body, media_type=MEDIA_TYPE)
