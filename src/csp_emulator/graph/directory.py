"""Reads of directory resources: users, groups, devices, organization, domains, directory roles,
applications, service principals, directory objects, /me, contracts and subscribed SKUs."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from csp_emulator.graph import authz, odata
from csp_emulator.graph.directory_objects import READ_OPERATIONS, find, typed
from csp_emulator.graph.directory_objects import lookup as any_object
from csp_emulator.graph.errors import GraphError, access_denied, bad_request, not_found
from csp_emulator.graph.listing import (
    ListOptions,
    Render,
    collection_fragment,
    context_url,
    match,
    page,
    projector,
    read_options,
    sorted_ids,
    typed_projector,
)
from csp_emulator.graph.odata_schema import ODataError, unknown_property
from csp_emulator.graph.request import TEXT_CONTENT_TYPE, Call, GraphResponse
from csp_emulator.graph.state import Matches
from csp_emulator.world.model import Tenant, stable_id
from csp_emulator.world.objects import assigned_units, domains_json, organization_json

# Graph caps an expanded navigation at 20 objects.
EXPAND_LIMIT = 20
GROUP_EXPANDABLE = frozenset({"members"})


# -- helpers shared by the handlers ---------------------------------------------------------------


def select_of(call: Call, resource: str) -> list[str] | None:
    try:
        return odata.parse_select(call.request.query.get("$select"), resource)
    except ODataError as exc:
        raise GraphError.from_odata(exc) from None


def entity(call: Call, fragment: str, item: dict[str, Any]) -> GraphResponse:
    """One object, as ``GET /{collection}/{id}`` answers it."""
    body: dict[str, Any] = {"@odata.context": context_url(call, f"{fragment}/$entity")}
    body.update(item)
    return GraphResponse(body=body)


def get_object(call: Call, resource: str, object_id: str) -> dict[str, Any]:
    obj = call.tenant.get(resource, object_id)
    if obj is None:
        raise not_found(object_id)
    return obj


def collection(
    call: Call,
    resource: str,
    *,
    expandable: frozenset[str] = frozenset(),
    intune: bool = False,
    context: str | None = None,
) -> GraphResponse:
    """``GET /{resource}``: every object of a tenant collection, filtered, sorted and paged."""
    options = read_options(call, resource, expandable=expandable)
    objects = call.tenant.objects[resource]
    base = sorted_ids(call, resource, lambda: list(objects))
    matches = match(call, resource, base, objects.get, resource, options)
    render = projector(call, resource)
    if options.expand == "members":
        render = _with_members(call, render)
    return page(
        call,
        matches=matches,
        lookup=objects.get,
        options=options,
        render=render,
        context=collection_fragment(context or resource, options.select),
        intune_tokens=intune,
        always_count=intune,  # Intune lists send @odata.count unasked (wire-facts §2.4)
    )


def static_collection(
    call: Call, name: str, resource: str, items: list[dict[str, Any]]
) -> GraphResponse:
    """A small collection built per request (organization, domains, contracts, SKUs)."""
    options = read_options(call, resource)
    by_id = {item["id"]: item for item in items}
    base = Matches(sorted(by_id), by_id=True)
    # Not cached: these are built from tenant settings and relationships, which the tenant's
    # change sequence does not cover.
    matches = match(call, name, base, by_id.get, resource, options, use_cache=False)
    return page(
        call,
        matches=matches,
        lookup=by_id.get,
        options=options,
        render=projector(call, resource),
        context=collection_fragment(name, options.select),
    )


def mixed_collection(
    call: Call, source: str, ids: Callable[[], list[str]], context: str
) -> GraphResponse:
    """A collection of directory objects of several types (members, memberOf)."""
    options = read_options(call, "directoryObjects")
    get = any_object(call.tenant)
    base = Matches(sorted(set(ids())), by_id=True)
    matches = match(call, source, base, get, "directoryObjects", options)
    return page(
        call,
        matches=matches,
        lookup=get,
        options=options,
        render=typed_projector(call),
        context=collection_fragment(context, options.select),
    )


def count(
    call: Call,
    resource: str,
    navigation: tuple[str, Callable[[], list[str]]] | None = None,
) -> GraphResponse:
    """``GET /{collection}/$count``: text/plain, and only with ``ConsistencyLevel: eventual``.

    ``navigation``: (a name for the cache, the ids) when counting a navigation such as members.
    """
    if not call.request.eventual:
        raise bad_request("$count is not currently supported.")
    options = read_options(call, resource, counting=True)
    if navigation is None:
        objects = call.tenant.objects[resource]
        base = sorted_ids(call, resource, lambda: list(objects))
        lookup: Callable[[str], dict[str, Any] | None] = objects.get
        source = resource
    else:
        source, ids = navigation
        base = Matches(sorted(set(ids())), by_id=True)
        lookup = any_object(call.tenant)
    matches = match(call, source, base, lookup, resource, options)
    return GraphResponse(body=str(len(matches.ids)), content_type=TEXT_CONTENT_TYPE)


def expanded_members(tenant: Tenant, group: dict[str, Any]) -> list[dict[str, Any]]:
    """``$expand=members``: the first members, each with its type, id and display name."""
    members = []
    for member_id in group.get("_members", [])[:EXPAND_LIMIT]:
        found = find(tenant, member_id)
        if found is not None:
            members.append(typed(tenant, found[1], ["id", "displayName"]))
    return members


def _with_members(call: Call, render: Render) -> Render:
    tenant = call.tenant

    def with_members(obj: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
        # A copy: what render returns may be a shared, memoized projection.
        return {**render(obj, select), "members": expanded_members(tenant, obj)}

    return with_members


def _entity_with_expand(call: Call, resource: str, obj: dict[str, Any]) -> GraphResponse:
    select = select_of(call, resource)
    item = odata.project(obj, select, resource)
    expand = call.request.query.get("$expand")
    if expand is not None:
        name = expand.split("(", 1)[0].strip()
        if resource != "groups" or name not in GROUP_EXPANDABLE:
            raise GraphError.from_odata(unknown_property(resource, name))
        item["members"] = expanded_members(call.tenant, obj)
    return entity(call, collection_fragment(resource, select), item)


# -- users ----------------------------------------------------------------------------------------


def find_user(call: Call, ref: str) -> dict[str, Any]:
    """A user by object id or by userPrincipalName, as ``/users/{id | userPrincipalName}``."""
    user = call.tenant.get("users", ref) or call.tenant.user_by_upn(ref)
    if user is None:
        raise not_found(ref)
    return user


def list_users(call: Call) -> GraphResponse:
    return collection(call, "users")


def count_users(call: Call) -> GraphResponse:
    return count(call, "users")


def get_user(call: Call) -> GraphResponse:
    user = find_user(call, call.params[0])
    select = select_of(call, "users")
    return entity(call, collection_fragment("users", select), odata.project(user, select, "users"))


def member_of_ids(call: Call, object_id: str, *, transitive: bool = False) -> list[str]:
    tenant = call.tenant
    groups = {g["id"] for g in tenant.groups_of(object_id)}
    if transitive:
        frontier = list(groups)
        while frontier:
            parents = {g["id"] for g in tenant.groups_of(frontier.pop())} - groups
            groups |= parents
            frontier.extend(parents)
    roles = [
        r["id"]
        for r in tenant.objects["directoryRoles"].values()
        if object_id in r.get("_members", ())
    ]
    return [*groups, *roles]


def user_member_of(call: Call) -> GraphResponse:
    user = find_user(call, call.params[0])
    return mixed_collection(
        call, f"memberOf:{user['id']}", lambda: member_of_ids(call, user["id"]), "directoryObjects"
    )


def user_transitive_member_of(call: Call) -> GraphResponse:
    user = find_user(call, call.params[0])
    return mixed_collection(
        call,
        f"transitiveMemberOf:{user['id']}",
        lambda: member_of_ids(call, user["id"], transitive=True),
        "directoryObjects",
    )


# -- /me ------------------------------------------------------------------------------------------


def _me(call: Call) -> dict[str, Any]:
    oid = call.caller.object_id
    user = call.tenant.get("users", oid) if oid else None
    if user is None:
        # A partner agent has no user object in the customer tenant.
        raise not_found(oid or "me")
    return user


def get_me(call: Call) -> GraphResponse:
    user = _me(call)
    select = select_of(call, "users")
    return entity(call, collection_fragment("users", select), odata.project(user, select, "users"))


def me_member_of(call: Call) -> GraphResponse:
    user = _me(call)
    return mixed_collection(
        call, f"memberOf:{user['id']}", lambda: member_of_ids(call, user["id"]), "directoryObjects"
    )


def me_transitive_member_of(call: Call) -> GraphResponse:
    user = _me(call)
    return mixed_collection(
        call,
        f"transitiveMemberOf:{user['id']}",
        lambda: member_of_ids(call, user["id"], transitive=True),
        "directoryObjects",
    )


# -- groups ---------------------------------------------------------------------------------------


def list_groups(call: Call) -> GraphResponse:
    return collection(call, "groups", expandable=GROUP_EXPANDABLE)


def count_groups(call: Call) -> GraphResponse:
    return count(call, "groups")


def get_group(call: Call) -> GraphResponse:
    return _entity_with_expand(call, "groups", get_object(call, "groups", call.params[0]))


def group_members(call: Call) -> GraphResponse:
    group = get_object(call, "groups", call.params[0])
    return mixed_collection(
        call, f"members:{group['id']}", lambda: list(group.get("_members", [])), "directoryObjects"
    )


def group_members_count(call: Call) -> GraphResponse:
    group = get_object(call, "groups", call.params[0])
    return count(
        call,
        "directoryObjects",
        (f"members:{group['id']}", lambda: list(group.get("_members", []))),
    )


def transitive_member_ids(call: Call, group_id: str) -> list[str]:
    tenant = call.tenant
    seen: set[str] = set()
    frontier = [group_id]
    visited_groups = {group_id}
    while frontier:
        group = tenant.get("groups", frontier.pop())
        for member_id in group.get("_members", []) if group else []:
            seen.add(member_id)
            if member_id in tenant.objects["groups"] and member_id not in visited_groups:
                visited_groups.add(member_id)
                frontier.append(member_id)
    return list(seen)


def group_transitive_members(call: Call) -> GraphResponse:
    group = get_object(call, "groups", call.params[0])
    return mixed_collection(
        call,
        f"transitiveMembers:{group['id']}",
        lambda: transitive_member_ids(call, group["id"]),
        "directoryObjects",
    )


def group_transitive_members_count(call: Call) -> GraphResponse:
    group = get_object(call, "groups", call.params[0])
    return count(
        call,
        "directoryObjects",
        (f"transitiveMembers:{group['id']}", lambda: transitive_member_ids(call, group["id"])),
    )


def group_member_of(call: Call) -> GraphResponse:
    group = get_object(call, "groups", call.params[0])
    return mixed_collection(
        call,
        f"memberOf:{group['id']}",
        lambda: member_of_ids(call, group["id"]),
        "directoryObjects",
    )


# -- devices --------------------------------------------------------------------------------------


def list_devices(call: Call) -> GraphResponse:
    return collection(call, "devices")


def count_devices(call: Call) -> GraphResponse:
    return count(call, "devices")


def get_device(call: Call) -> GraphResponse:
    device = get_object(call, "devices", call.params[0])
    select = select_of(call, "devices")
    return entity(
        call, collection_fragment("devices", select), odata.project(device, select, "devices")
    )


# -- organization, domains, contracts, SKUs -------------------------------------------------------


def list_organization(call: Call) -> GraphResponse:
    return static_collection(
        call, "organization", "organization", [organization_json(call.tenant, call.world)]
    )


def get_organization(call: Call) -> GraphResponse:
    if call.params[0].lower() != call.tenant.id:
        raise not_found(call.params[0])
    select = select_of(call, "organization")
    org = organization_json(call.tenant, call.world)
    return entity(
        call,
        collection_fragment("organization", select),
        odata.project(org, select, "organization"),
    )


def list_domains(call: Call) -> GraphResponse:
    return static_collection(call, "domains", "domains", domains_json(call.tenant))


def get_domain(call: Call) -> GraphResponse:
    wanted = call.params[0].lower()
    for domain in domains_json(call.tenant):
        if domain["id"].lower() == wanted:
            select = select_of(call, "domains")
            return entity(
                call,
                collection_fragment("domains", select),
                odata.project(domain, select, "domains"),
            )
    raise not_found(call.params[0])


def contracts_of(call: Call) -> list[dict[str, Any]]:
    """A partner tenant's contracts: one per active customer relationship (wire-facts §2.7)."""
    world, tenant = call.world, call.tenant
    kinds = {"reseller": "ResellerPartner", "syndication": "SyndicationPartner"}
    out = []
    for rel in world.relationships:
        customer = world.tenants.get(rel.customer_id)
        if rel.partner_id != tenant.id or not rel.active or customer is None:
            continue
        out.append(
            {
                "id": stable_id(tenant.id, "contract", customer.id),
                "contractType": kinds.get(rel.kind, "ResellerPartner"),
                "customerId": customer.id,
                "defaultDomainName": customer.default_domain,
                "displayName": customer.display_name,
            }
        )
    return out


def list_contracts(call: Call) -> GraphResponse:
    return static_collection(call, "contracts", "contracts", contracts_of(call))


def get_contract(call: Call) -> GraphResponse:
    for contract in contracts_of(call):
        if contract["id"] == call.params[0].lower():
            select = select_of(call, "contracts")
            return entity(
                call,
                collection_fragment("contracts", select),
                odata.project(contract, select, "contracts"),
            )
    raise not_found(call.params[0])


def subscribed_skus(call: Call) -> list[dict[str, Any]]:
    """The licences the tenant bought, each with the users it is assigned to counted."""
    tenant = call.tenant
    skus = sorted(tenant.objects["subscribedSkus"].values(), key=lambda sku: sku["id"])
    return [{**sku, "consumedUnits": assigned_units(tenant, sku["skuId"])} for sku in skus]


def list_subscribed_skus(call: Call) -> GraphResponse:
    return static_collection(call, "subscribedSkus", "subscribedSkus", subscribed_skus(call))


# -- directory roles ------------------------------------------------------------------------------


def list_directory_roles(call: Call) -> GraphResponse:
    # No paging and no query options here (wire-facts §2.4); $top gets Graph's refusal.
    if "$top" in call.request.query:
        try:
            odata.check_top(call.request.query["$top"], "directoryRoles")
        except ODataError as exc:
            raise GraphError.from_odata(exc) from None
    roles = sorted(call.tenant.objects["directoryRoles"].values(), key=lambda r: r["id"])
    return GraphResponse(
        body={
            "@odata.context": context_url(call, "directoryRoles"),
            "value": [odata.project(r, None, "directoryRoles") for r in roles],
        }
    )


def get_directory_role(call: Call) -> GraphResponse:
    role = get_object(call, "directoryRoles", call.params[0])
    return entity(call, "directoryRoles", odata.project(role, None, "directoryRoles"))


def directory_role_members(call: Call) -> GraphResponse:
    role = get_object(call, "directoryRoles", call.params[0])
    tenant = call.tenant
    members = [found[1] for m in sorted(role.get("_members", [])) if (found := find(tenant, m))]
    return GraphResponse(
        body={
            "@odata.context": context_url(call, "directoryObjects"),
            "value": [typed(tenant, m, None) for m in members],
        }
    )


# -- applications and service principals ----------------------------------------------------------


def find_by_key(call: Call, resource: str, ref: str) -> dict[str, Any]:
    """By object id, or by ``appId=…`` (the ``/applications(appId='…')`` key form)."""
    if ref.lower().startswith("appid="):
        app_id = ref.split("=", 1)[1].strip("'").lower()
        for obj in call.tenant.objects[resource].values():
            if str(obj.get("appId", "")).lower() == app_id:
                return obj
        raise not_found(app_id)
    return get_object(call, resource, ref)


def list_applications(call: Call) -> GraphResponse:
    return collection(call, "applications")


def count_applications(call: Call) -> GraphResponse:
    return count(call, "applications")


def get_application(call: Call) -> GraphResponse:
    app = find_by_key(call, "applications", call.params[0])
    select = select_of(call, "applications")
    item = odata.project(app, select, "applications")
    if select is not None and "keyCredentials" in select:
        # Graph returns a certificate's public key only when one object's keyCredentials is
        # selected: that is how a client keeps the existing certificates in a PATCH.
        ders = {c["keyId"]: c["der"] for c in app.get("_certificates", [])}
        item["keyCredentials"] = [
            {**c, "key": base64.b64encode(ders[c["keyId"]]).decode()}
            if c.get("keyId") in ders
            else c
            for c in app.get("keyCredentials", [])
        ]
    return entity(call, collection_fragment("applications", select), item)


def list_service_principals(call: Call) -> GraphResponse:
    return collection(call, "servicePrincipals")


def count_service_principals(call: Call) -> GraphResponse:
    return count(call, "servicePrincipals")


def get_service_principal(call: Call) -> GraphResponse:
    sp = find_by_key(call, "servicePrincipals", call.params[0])
    select = select_of(call, "servicePrincipals")
    return entity(
        call,
        collection_fragment("servicePrincipals", select),
        odata.project(sp, select, "servicePrincipals"),
    )


def _assignments(call: Call, field_name: str, navigation: str) -> GraphResponse:
    sp = find_by_key(call, "servicePrincipals", call.params[0])
    assignments = call.tenant.objects["appRoleAssignments"]
    options: ListOptions = read_options(call, "appRoleAssignments")
    base = Matches(
        sorted(a["id"] for a in assignments.values() if a.get(field_name) == sp["id"]), by_id=True
    )
    matches = match(
        call, f"{navigation}:{sp['id']}", base, assignments.get, "appRoleAssignments", options
    )
    return page(
        call,
        matches=matches,
        lookup=assignments.get,
        options=options,
        render=projector(call, "appRoleAssignments"),
        context=f"servicePrincipals('{sp['id']}')/{navigation}",
    )


def sp_app_role_assignments(call: Call) -> GraphResponse:
    """What this service principal has been granted (it is the principal)."""
    return _assignments(call, "principalId", "appRoleAssignments")


def sp_app_role_assigned_to(call: Call) -> GraphResponse:
    """What has been granted on this service principal's app roles (it is the resource)."""
    return _assignments(call, "resourceId", "appRoleAssignedTo")


# -- directoryObjects -----------------------------------------------------------------------------


def _may_read(call: Call, kind: str) -> bool:
    caller = call.caller
    return authz.allows(caller, READ_OPERATIONS[kind])


def get_directory_object(call: Call) -> GraphResponse:
    found = find(call.tenant, call.params[0])
    if found is None:
        raise not_found(call.params[0])
    kind, obj = found
    if not _may_read(call, kind):
        raise access_denied()
    select = select_of(call, "directoryObjects")
    return entity(call, "directoryObjects", typed(call.tenant, obj, select))


_TYPE_NAMES = {
    "user": "users",
    "group": "groups",
    "device": "devices",
    "serviceprincipal": "servicePrincipals",
    "application": "applications",
    "directoryrole": "directoryRoles",
}


def get_by_ids(call: Call) -> GraphResponse:
    body = call.request.body if isinstance(call.request.body, dict) else {}
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise bad_request(
            "Invalid value specified for property 'ids' of resource 'directoryObject'."
        )
    if len(ids) > 1000:
        raise bad_request("The number of ids exceeds the limit of 1000.")
    kinds: set[str] | None = None
    if body.get("types"):
        kinds = set()
        for name in body["types"]:
            kind = _TYPE_NAMES.get(str(name).lower().removeprefix("microsoft.graph."))
            if kind is None:
                raise bad_request(f"Invalid value '{name}' for property 'types'.")
            kinds.add(kind)
    values = []
    for object_id in ids:
        found = find(call.tenant, object_id)
        if found is None or (kinds is not None and found[0] not in kinds):
            continue
        if _may_read(call, found[0]):
            values.append(typed(call.tenant, found[1], None))
    return GraphResponse(
        body={"@odata.context": context_url(call, "directoryObjects"), "value": values}
    )
