"""Consent of a multi-tenant app in a customer tenant, as real directory objects there.

However the consent is given — Partner Center's ``applicationconsents`` (delegated scopes only),
a customer administrator at ``/adminconsent`` (what the app asks for), a partner agent writing
``appRoleAssignedTo`` and ``oauth2PermissionGrants`` through Graph, or a world file — it leaves
the same objects in the customer: the app's service principal, an ``oauth2PermissionGrant``
(``consentType`` ``AllPrincipals``) for delegated scopes, and ``appRoleAssignments`` for app
roles. Each carries ``_effective_at``, the moment it reaches the token service
(``settings.consent_delay`` after it was made); objects without it (a world file's, or the
pre-consent of DAP) are in effect from the start. Tokens read these objects when they are issued,
so a token issued before a consent arrived never gains it.
"""

from __future__ import annotations

from typing import Any

from csp_emulator import wellknown
from csp_emulator.world.model import Tenant, iso, service_principal_json, stable_id

EFFECTIVE = "_effective_at"


def in_effect(obj: dict[str, Any], now: float) -> bool:
    return float(obj.get(EFFECTIVE, 0.0)) <= now


def grant_app_role(
    tenant: Tenant, sp: dict[str, Any], resource_sp: dict[str, Any], app_role_id: str, now: float
) -> dict[str, Any]:
    """An app role assignment of ``resource_sp``'s role to ``sp`` (the existing one if any)."""
    assignment_id = stable_id(tenant.id, "appRoleAssignment", sp["id"], app_role_id)
    existing = tenant.get("appRoleAssignments", assignment_id)
    if existing is not None:
        return existing
    return tenant.add(
        "appRoleAssignments",
        {
            "id": assignment_id,
            "appRoleId": app_role_id,
            "principalId": sp["id"],
            "principalType": "ServicePrincipal",
            "principalDisplayName": sp["displayName"],
            "resourceId": resource_sp["id"],
            "resourceDisplayName": resource_sp["displayName"],
            "createdDateTime": iso(now),
        },
    )


def permission_grant_json(
    client_sp: dict[str, Any], resource_sp: dict[str, Any], scopes: list[str], effective: float
) -> dict[str, Any]:
    """An ``oauth2PermissionGrant`` for every user of the tenant (``AllPrincipals``)."""
    return {
        # One tenant-wide grant per client and resource: a stable id keeps worlds reproducible.
        "id": stable_id(client_sp["id"], "oauth2PermissionGrant", resource_sp["id"]),
        "clientId": client_sp["id"],
        "consentType": "AllPrincipals",
        "principalId": None,
        "resourceId": resource_sp["id"],
        "scope": " ".join(scopes),
        EFFECTIVE: effective,
    }


def tenant_wide_grant(
    tenant: Tenant, client_sp_id: str, resource_sp_id: str
) -> dict[str, Any] | None:
    for grant in tenant.objects["oauth2PermissionGrants"].values():
        if (
            grant.get("clientId") == client_sp_id
            and grant.get("resourceId") == resource_sp_id
            and grant.get("consentType") == "AllPrincipals"
        ):
            return grant
    return None


def consented_scopes(tenant: Tenant, client_sp: dict[str, Any], now: float) -> list[str] | None:
    """The delegated Graph scopes granted to every user for this app, once in effect; None when
    there is no grant at all, [] while it is still on its way."""
    graph = tenant.service_principal_by_app_id(wellknown.GRAPH_APP_ID)
    grant = tenant_wide_grant(tenant, client_sp["id"], graph["id"]) if graph else None
    if grant is None:
        return None
    if not in_effect(grant, now) or not in_effect(client_sp, now):
        return []
    return [s for s in str(grant.get("scope") or "").split() if s]


def consented_roles(tenant: Tenant, client_sp: dict[str, Any], now: float) -> list[str]:
    """Graph application permissions assigned to the app's service principal, in effect now."""
    graph = tenant.service_principal_by_app_id(wellknown.GRAPH_APP_ID)
    if graph is None or not in_effect(client_sp, now):
        return []
    names = {r["id"]: r.get("value") for r in graph.get("appRoles", [])}
    roles: list[str] = []
    for assignment in tenant.objects["appRoleAssignments"].values():
        if assignment.get("principalId") != client_sp["id"]:
            continue
        if assignment.get("resourceId") != graph["id"] or not in_effect(assignment, now):
            continue
        name = names.get(assignment.get("appRoleId", ""))
        if name and name not in roles:
            roles.append(str(name))
    return roles


def grant_consent(
    tenant: Tenant,
    app: dict[str, Any],
    home_tenant_id: str,
    *,
    scopes: list[str],
    app_roles: list[str],
    now: float,
    delay: float,
) -> dict[str, Any]:
    """Consent ``app`` in ``tenant``: its service principal (created if missing), a tenant-wide
    grant of ``scopes`` (Graph delegated permissions; merged into an existing grant) and
    ``app_roles`` (Graph application permissions). Returns the service principal."""
    effective = now + delay
    sp = tenant.service_principal_by_app_id(app["appId"])
    if sp is None:
        sp = service_principal_json(
            stable_id(tenant.id, "sp", app["appId"]),
            app["appId"],
            app.get("displayName", ""),
            home_tenant_id,
        )
        sp[EFFECTIVE] = effective
        sp = tenant.add("servicePrincipals", sp)
    # Consented now, whatever DAP pre-consent made it for (identity/csp_rules.py).
    sp.pop("_dap_preconsent", None)
    graph = tenant.service_principal_by_app_id(wellknown.GRAPH_APP_ID)
    assert graph is not None  # seed_directory gives every tenant Microsoft Graph's principal
    if scopes:
        grant = tenant_wide_grant(tenant, sp["id"], graph["id"])
        if grant is None:
            tenant.add(
                "oauth2PermissionGrants", permission_grant_json(sp, graph, scopes, effective)
            )
        else:
            known = str(grant.get("scope") or "").split()
            merged = [*known, *(s for s in scopes if s not in known)]
            tenant.update(
                "oauth2PermissionGrants",
                grant["id"],
                {"scope": " ".join(merged), EFFECTIVE: max(float(grant.get(EFFECTIVE, 0)), now)},
            )
    for name in app_roles:
        permission = wellknown.APPLICATION_PERMISSIONS[name]
        before = len(tenant.objects["appRoleAssignments"])
        assignment = grant_app_role(tenant, sp, graph, permission.id, now)
        if len(tenant.objects["appRoleAssignments"]) > before:
            tenant.update("appRoleAssignments", assignment["id"], {EFFECTIVE: effective})
    return sp


def revoke_consent(tenant: Tenant, app_id: str) -> bool:
    """Remove the app's service principal with its grants and role assignments (Partner Center's
    DELETE …/applicationconsents/{appId}); False when the app was not there."""
    sp = tenant.service_principal_by_app_id(app_id)
    if sp is None:
        return False
    for grant in list(tenant.objects["oauth2PermissionGrants"].values()):
        if grant.get("clientId") == sp["id"]:
            tenant.remove("oauth2PermissionGrants", grant["id"], reason="deleted")
    for assignment in list(tenant.objects["appRoleAssignments"].values()):
        if sp["id"] in (assignment.get("principalId"), assignment.get("resourceId")):
            tenant.remove("appRoleAssignments", assignment["id"], reason="deleted")
    tenant.remove("servicePrincipals", sp["id"], reason="changed")
    return True
