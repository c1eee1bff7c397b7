"""The CSP rules of the identity platform: who gets a token for which tenant, with what claims.

A partner-managed app is *pre-consented* in a customer tenant T when all of these hold (seed
description; wire-facts §5): the app is multi-tenant; its service principal is a member of its home
(partner) tenant H's ``AdminAgents`` group; H has an active relationship with T that carries
delegated admin privileges (DAP); H and T are in the same region and the same cloud. A partner
agent (a user of H) may act in T when H has such a relationship with T and the agent is in
``AdminAgents`` (Global Administrator in T) or ``HelpdeskAgents`` (Helpdesk Administrator).

A relationship reaches the customer only at ``effective_at`` (the propagation delay). Before that
Entra still issues tokens, but without the pre-consented claims: no ``roles`` for an app, no
``scp``/``wids`` for an agent. Claims are frozen at issue, so a token from before the relationship
took effect stays empty until it expires; only a new token carries the grants.

Refusals, and why each code was chosen (the wire form is in identity_errors):

=====================================================  =========  ====================  ======
case                                                   AADSTS     error                 status
=====================================================  =========  ====================  ======
client_id unknown anywhere                             700016     unauthorized_client   400
app-only, app single-tenant, T != H                    700016     unauthorized_client   400
app-only, no pre-consent in T (no relationship, DAP    700016     unauthorized_client   400
  off, SP not in AdminAgents, other region or cloud)
app-only, T == H but the app's SP was deleted          7000229    invalid_client        400
user, single-tenant app used at T != H                 700016     unauthorized_client   400
user of another tenant who is not an eligible agent    50020      invalid_grant         400
  (no DAP relationship, SalesAgents, no agent group)
agent eligible, app not pre-consented in T             90099      invalid_grant         400
T's own user, partner app not pre-consented in T       65001      invalid_grant         400
                                                                  (consent_required)
Partner Center for anyone but a partner tenant's own   500011     invalid_resource      400
  users and apps at that partner tenant
Partner Center with an app not registered in T         65001      invalid_grant         400
=====================================================  =========  ====================  ======

GDAP (identity/gdap_access.py, world/consent.py): in a customer without DAP, a partner user
acts through the roles of active GDAP access assignments (none → 50020), and the app needs its
own consent in that customer — a service principal and a tenant-wide delegated grant (none → 90099
for an agent, 65001 for the customer's own user); app-only tokens carry the Graph app roles
assigned to that service principal. Each consent object counts from its ``_effective_at``
(``consent_delay``); until the service principal arrives an app-only request is answered 700016,
the "not in the directory" answer the client already treats as "not there yet" (*unverified*:
partners' tools also report 650051 and 7000229 in this window). DAP and GDAP add up in a customer
that has both.

Why these codes: a customer tenant without pre-consent has no service principal for the app, and
that is exactly what 700016 says ("not found in the directory"), so every app-only pre-consent
failure reads the same way a real tenant answers. For a partner agent Entra has a dedicated
message, 90099 ("applications must be authorized ... before partner delegated administrators can
use them"), and a customer's own user is asked for consent (65001). A user who is neither a member
of T nor an eligible agent is simply unknown to T: 50020, the guest-not-found answer. At the sign-in
page these show on the page (the form is shown again so another account can be tried); at the
token endpoint (code, refresh token, device code) they come back as JSON errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from csp_emulator import wellknown
from csp_emulator.identity import errors, gdap_access
from csp_emulator.identity.clients import Client
from csp_emulator.identity.scopes import ARM, GRAPH, PARTNER_CENTER, PC_SCOPE, ScopeRequest
from csp_emulator.world.consent import consented_roles, consented_scopes, in_effect
from csp_emulator.world.model import Relationship, Tenant, World

ADMIN_AGENTS = "AdminAgents"
DAP_ONLY = "_dap_preconsent"  # a service principal DAP's pre-consent made, and nothing else


@dataclass(frozen=True)
class AppGrant:
    roles: tuple[str, ...]
    service_principal: dict[str, Any]


@dataclass(frozen=True)
class UserGrant:
    scopes: tuple[str, ...]  # scp
    wids: tuple[str, ...]
    # The agent's partner tenant when a partner agent acts in a customer tenant, else None.
    partner: Tenant | None
    agent_groups: tuple[str, ...]


def _app_label(client: Client) -> str:
    return f"'{client.app_id}'({client.display_name})"


def preconsent(world: World, client: Client, target: Tenant) -> Relationship | None:
    """The relationship that pre-consents ``client`` in ``target``, or None if nothing does."""
    home = client.home
    if home is None or home.kind != "partner" or not client.multi_tenant:
        return None
    sp = home.service_principal_by_app_id(client.app_id)
    admin_agents = home.group_by_name(ADMIN_AGENTS)
    if sp is None or admin_agents is None or sp["id"] not in admin_agents.get("_members", ()):
        return None
    rel = world.relationship(home.id, target.id)
    if rel is None or not rel.dap:
        return None
    if home.region.upper() != target.region.upper() or home.cloud != target.cloud:
        # CSP engagement is single-region (seed: "the partner-managed app will not work").
        return None
    return rel


def _assigned_roles(tenant: Tenant, sp: dict[str, Any], resource_app_id: str) -> tuple[str, ...]:
    resource_sp = tenant.service_principal_by_app_id(resource_app_id)
    if resource_sp is None:
        return ()
    values = {r["id"]: r.get("value") for r in resource_sp.get("appRoles", [])}
    names: list[str] = []
    for assignment in tenant.objects["appRoleAssignments"].values():
        if assignment.get("principalId") != sp["id"]:
            continue
        if assignment.get("resourceId") != resource_sp["id"]:
            continue
        role_id = assignment.get("appRoleId", "")
        permission = wellknown.PERMISSIONS_BY_ID.get(role_id)
        name = values.get(role_id) or (permission.name if permission else None)
        if name and name not in names:
            names.append(name)
    return tuple(names)


def app_only_grant(
    world: World, client: Client, target: Tenant, request: ScopeRequest, now: float
) -> AppGrant:
    label = target.display_name
    at_home = client.home is not None and client.home.id == target.id
    if request.resource is PARTNER_CENTER and not (at_home and target.kind == "partner"):
        raise errors.resource_not_found(PARTNER_CENTER.uri, label)
    if at_home:
        sp = target.service_principal_by_app_id(client.app_id)
        if sp is None:
            raise errors.missing_service_principal(client.app_id, target.id)
        assigned = _assigned_roles(target, sp, request.resource.app_id)
        return AppGrant(assigned if request.resource is GRAPH else (), sp)
    if client.first_party or not client.multi_tenant:
        raise errors.app_not_found(client.app_id, label)
    rel = preconsent(world, client, target)
    if rel is None:
        # No DAP pre-consent: the app's own consent in this tenant, once it has arrived.
        consented = target.service_principal_by_app_id(client.app_id)
        if consented is None or consented.get(DAP_ONLY) or not in_effect(consented, now):
            raise errors.app_not_found(client.app_id, label)
        granted = tuple(consented_roles(target, consented, now))
        return AppGrant(granted if request.resource is GRAPH else (), consented)
    existed = target.service_principal_by_app_id(client.app_id) is not None
    sp = target.ensure_service_principal(client.registration, client.home_tenant_id)
    if not existed:
        # There only because DAP pre-consents the app: gone with DAP, unlike a real consent.
        sp[DAP_ONLY] = True
    roles: tuple[str, ...] = ()
    if rel.in_effect(now) and request.resource is GRAPH:  # an ARM token carries no Graph roles
        roles = tuple(client.required_permissions(wellknown.GRAPH_APP_ID, "Role"))
    return AppGrant(roles, sp)


@dataclass(frozen=True)
class AgentAccess:
    """How a partner's user may act in a customer: DAP agent groups and GDAP roles."""

    groups: tuple[str, ...]  # DAP agent groups that count (AdminAgents, HelpdeskAgents)
    dap: Relationship | None  # the DAP relationship they count through
    gdap_roles: tuple[str, ...]  # role template ids from GDAP, in effect now


def agent_access(
    world: World, client: Client, home: Tenant, user: dict[str, Any], target: Tenant, now: float
) -> AgentAccess | None:
    """How ``user`` acts in ``target`` (None for ``target``'s own users); raises 50020 when a
    user of another tenant may not act there."""
    if home.id == target.id:
        return None
    rel = world.relationship(home.id, target.id)
    groups: list[str] = []
    for name in wellknown.AGENT_GROUP_ROLES:
        group = home.group_by_name(name)
        if group is not None and user["id"] in group.get("_members", ()):
            groups.append(name)
    dap = rel if home.kind == "partner" and rel is not None and rel.dap and groups else None
    gdap_roles = gdap_access.gdap_roles(world, home, user, target, now)
    if dap is None and not gdap_roles:
        raise gdap_access.no_access(world, home, user, target, _app_label(client), now)
    return AgentAccess(tuple(groups) if dap else (), dap, gdap_roles)


@dataclass(frozen=True)
class Consent:
    effective: bool  # in effect now (else tokens carry no scp yet)
    scopes: tuple[str, ...] | None  # what the tenant granted; None: what the app asks for (DAP)


def app_consent(
    world: World, client: Client, target: Tenant, *, agent: bool, now: float
) -> Consent:
    """The app's consent in ``target`` for delegated tokens; raises when there is none."""
    if client.first_party or (client.home is not None and client.home.id == target.id):
        return Consent(True, None)
    if not client.multi_tenant:
        raise errors.app_not_found(client.app_id, target.display_name)
    rel = preconsent(world, client, target)
    if rel is not None:
        return Consent(rel.in_effect(now), None)
    sp = target.service_principal_by_app_id(client.app_id)
    scopes = consented_scopes(target, sp, now) if sp is not None else None
    if scopes is None:
        if agent:
            raise errors.partner_app_not_authorized(
                client.app_id, client.display_name, target.display_name
            )
        raise errors.consent_required(client.app_id, client.display_name)
    return Consent(bool(scopes), tuple(scopes))


def check_sign_in(
    world: World, client: Client, home: Tenant, user: dict[str, Any], target: Tenant, now: float
) -> None:
    """What the sign-in page checks before it hands out a code."""
    access = agent_access(world, client, home, user, target, now)
    app_consent(world, client, target, agent=access is not None, now=now)


def _granted_scopes(
    client: Client, request: ScopeRequest, consented: tuple[str, ...] | None
) -> tuple[str, ...]:
    if request.resource is PARTNER_CENTER:
        return (PC_SCOPE,)
    if request.resource is ARM:
        # ARM has one delegated permission; first-party tools (azure-cli, Graph CLI) hold it.
        # A partner's own app would need it in requiredResourceAccess, which the world file
        # cannot express: it gets a token without `scp` (unverified: Entra may ask for consent).
        return (wellknown.ARM_SCOPE,) if client.first_party else ()
    known = {
        name.lower(): name
        for name in wellknown.DELEGATED_PERMISSIONS
        if name not in wellknown.OIDC_SCOPES
    }
    if client.first_party:
        # The first-party tool is consented for whatever Graph scope it asks for.
        if request.permissions:
            return tuple(known.get(p.lower(), p) for p in request.permissions)
        return tuple(known.values()) if request.default else ()
    asked = (
        consented
        if consented is not None
        else client.required_permissions(wellknown.GRAPH_APP_ID, "Scope")
    )
    allowed = [p for p in asked if p not in wellknown.OIDC_SCOPES]
    if request.default:
        return tuple(allowed)
    wanted = {p.lower() for p in request.permissions}
    return tuple(p for p in allowed if p.lower() in wanted)


def user_grant(
    world: World,
    client: Client,
    home: Tenant,
    user: dict[str, Any],
    target: Tenant,
    request: ScopeRequest,
    now: float,
) -> UserGrant:
    if request.resource is PARTNER_CENTER:
        if target.kind != "partner" or home.id != target.id:
            raise errors.resource_not_found(PARTNER_CENTER.uri, target.display_name)
        if client.home is None or client.home.id != target.id:
            raise errors.consent_required(client.app_id, client.display_name)
    access = agent_access(world, client, home, user, target, now)
    consent = app_consent(world, client, target, agent=access is not None, now=now)
    if access is not None:
        dap_effective = access.dap is not None and access.dap.in_effect(now)
        dap_wids = [r for g in access.groups for r in wellknown.AGENT_GROUP_ROLES[g]]
        wids = (*(dap_wids if dap_effective else ()), *access.gdap_roles)
        relationship_effective = dap_effective or bool(access.gdap_roles)
    else:
        relationship_effective = True
        wids = (*target.roles_of(user["id"]), wellknown.ROLE_USER_TEMPLATE)
    effective = consent.effective and relationship_effective
    scopes = _granted_scopes(client, request, consent.scopes) if effective else ()
    return UserGrant(
        scopes,
        tuple(dict.fromkeys(wids)),
        home if access is not None else None,
        access.groups if access is not None else (),
    )
