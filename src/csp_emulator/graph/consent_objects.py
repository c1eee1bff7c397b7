"""``oauth2PermissionGrants``: delegated consent as a directory object of the customer.

Partner Center's consent call, a customer administrator's ``/adminconsent`` and a partner agent's
own Graph calls all leave these grants (world/consent.py). A grant made here reaches the token
service ``settings.consent_delay`` later, like every other consent. A second tenant-wide grant for
the same client and resource answers 400 "Permission entry already exists." (the text partners'
tools match on; the status is what public scripts report).
"""

from __future__ import annotations

import uuid
from typing import Any

from csp_emulator.graph import directory, odata
from csp_emulator.graph.directory_writes import created, json_body, no_content
from csp_emulator.graph.errors import bad_request, not_found, required_property
from csp_emulator.graph.listing import collection_fragment
from csp_emulator.graph.request import Call, GraphResponse
from csp_emulator.world.consent import permission_grant_json, tenant_wide_grant

RESOURCE = "oauth2PermissionGrants"


def list_grants(call: Call) -> GraphResponse:
    return directory.collection(call, RESOURCE)


def get_grant(call: Call) -> GraphResponse:
    grant = directory.get_object(call, RESOURCE, call.params[0])
    select = directory.select_of(call, RESOURCE)
    return directory.entity(
        call, collection_fragment(RESOURCE, select), odata.project(grant, select, RESOURCE)
    )


def sp_grants(call: Call) -> GraphResponse:
    sp = directory.find_by_key(call, "servicePrincipals", call.params[0])
    grants = [g for g in call.tenant.objects[RESOURCE].values() if g.get("clientId") == sp["id"]]
    return directory.static_collection(call, RESOURCE, RESOURCE, grants)


def _scopes(value: Any) -> list[str]:
    if not isinstance(value, str):
        raise bad_request(
            "Invalid value specified for property 'scope' of resource 'OAuth2PermissionGrant'."
        )
    return [s for s in value.split() if s]


def create_grant(call: Call) -> GraphResponse:
    body = json_body(call)
    for name in ("clientId", "consentType", "resourceId"):
        if not body.get(name):
            raise required_property(name, "OAuth2PermissionGrant")
    tenant = call.tenant
    client = tenant.get("servicePrincipals", str(body["clientId"]).lower())
    resource = tenant.get("servicePrincipals", str(body["resourceId"]).lower())
    if client is None:
        raise not_found(str(body["clientId"]))
    if resource is None:
        raise not_found(str(body["resourceId"]))
    consent_type = body["consentType"]
    if consent_type not in ("AllPrincipals", "Principal"):
        raise bad_request("Invalid value specified for property 'consentType'.")
    principal = body.get("principalId")
    if consent_type == "Principal" and tenant.get("users", str(principal or "").lower()) is None:
        raise bad_request("A principalId of a user is required when consentType is 'Principal'.")
    if consent_type == "AllPrincipals" and tenant_wide_grant(tenant, client["id"], resource["id"]):
        raise bad_request("Permission entry already exists.")
    effective = call.now + call.world.settings.consent_delay
    grant = permission_grant_json(client, resource, _scopes(body.get("scope", "")), effective)
    grant["consentType"] = consent_type
    grant["principalId"] = principal if consent_type == "Principal" else None
    if consent_type == "Principal":
        grant["id"] = str(uuid.uuid4())  # one per user: the tenant-wide grant's id is per pair
    tenant.add(RESOURCE, grant)
    client.pop("_dap_preconsent", None)  # consented now (identity/csp_rules.py)
    return created(call, RESOURCE, odata.project(grant, None, RESOURCE))


def update_grant(call: Call) -> GraphResponse:
    grant = directory.get_object(call, RESOURCE, call.params[0])
    body = json_body(call)
    if set(body) - {"scope"}:
        raise bad_request("Only the property 'scope' of an OAuth2PermissionGrant can be updated.")
    # A change of scopes counts from now (a simplification: no second propagation delay).
    call.tenant.update(RESOURCE, grant["id"], {"scope": " ".join(_scopes(body.get("scope")))})
    return no_content()


def delete_grant(call: Call) -> GraphResponse:
    grant = directory.get_object(call, RESOURCE, call.params[0])
    call.tenant.remove(RESOURCE, grant["id"], reason="deleted")
    return no_content()
