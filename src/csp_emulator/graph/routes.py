"""The Graph routes this emulator serves, and how a path finds its route.

Paths are matched segment by segment after the version (``/v1.0`` or ``/beta``), without regard
to case, as Graph matches them. Before matching, segments are normalized the way Graph reads
them: ``microsoft.graph.delta()`` and ``delta()`` are ``delta``; ``users('id')`` is ``users/id``;
``applications(appId='…')`` is ``applications/appId=…``.

A path no route knows is refused by the CSP rule if it leads out of directory and Intune
(csp_scope), else answered with Graph's 400 "Resource not found for the segment '…'".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from csp_emulator.graph import consent_objects, csp_scope, delta, directory, intune
from csp_emulator.graph import directory_writes as writes
from csp_emulator.graph import tenant_relationships as gdap
from csp_emulator.graph.errors import method_not_allowed, segment_not_found
from csp_emulator.graph.request import Call, GraphResponse
from csp_emulator.limits import IDENTITY, INTUNE

Handler = Callable[[Call], GraphResponse]
ID = "{id}"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: tuple[str, ...]  # lower-case literals, or ID for any segment
    handler: Handler
    # The authz operation, or a function of the call for routes whose need depends on the body.
    operation: str | Callable[[Call], str]
    family: str = IDENTITY  # throttling family
    path_kind: str = "other"  # what the request reads, for its resource-unit cost
    delegated_only: bool = False  # /me: app-only tokens get Graph's 400

    @property
    def write(self) -> bool:
        return self.method != "GET" and self.path_kind != "getByIds"

    def operation_for(self, call: Call) -> str:
        return self.operation if isinstance(self.operation, str) else self.operation(call)


def _routes() -> list[Route]:
    d, w = directory, writes
    r = Route
    return [
        # users
        r("GET", ("users",), d.list_users, "users.read", path_kind="users"),
        r("POST", ("users",), w.create_user, "users.write"),
        r("GET", ("users", "$count"), d.count_users, "users.read"),
        r("GET", ("users", "delta"), delta.users_delta, "users.read", path_kind="users"),
        r("GET", ("users", ID), d.get_user, "users.read"),
        r("PATCH", ("users", ID), w.update_user, w.user_patch_operation),
        r("DELETE", ("users", ID), w.delete_user, "users.write"),
        r("GET", ("users", ID, "memberof"), d.user_member_of, "memberOf.read",
          path_kind="memberOf"),
        r("GET", ("users", ID, "transitivememberof"), d.user_transitive_member_of,
          "memberOf.read", path_kind="memberOf"),
        # /me (delegated only)
        r("GET", ("me",), d.get_me, "me.read", delegated_only=True),
        r("GET", ("me", "memberof"), d.me_member_of, "me.memberOf", path_kind="memberOf",
          delegated_only=True),
        r("GET", ("me", "transitivememberof"), d.me_transitive_member_of, "me.memberOf",
          path_kind="memberOf", delegated_only=True),
        # groups
        r("GET", ("groups",), d.list_groups, "groups.read"),
        r("POST", ("groups",), w.create_group, "groups.write"),
        r("GET", ("groups", "$count"), d.count_groups, "groups.read"),
        r("GET", ("groups", "delta"), delta.groups_delta, "groups.read"),
        r("GET", ("groups", ID), d.get_group, "groups.read"),
        r("PATCH", ("groups", ID), w.update_group, w.group_patch_operation),
        r("DELETE", ("groups", ID), w.delete_group, "groups.write"),
        r("GET", ("groups", ID, "members"), d.group_members, "groups.read", path_kind="members"),
        r("GET", ("groups", ID, "members", "$count"), d.group_members_count, "groups.read"),
        r("POST", ("groups", ID, "members", "$ref"), w.add_member_ref, "groupMembers.write"),
        r("DELETE", ("groups", ID, "members", ID, "$ref"), w.remove_member_ref,
          "groupMembers.write"),
        r("GET", ("groups", ID, "transitivemembers"), d.group_transitive_members, "groups.read",
          path_kind="transitiveMembers"),
        r("GET", ("groups", ID, "transitivemembers", "$count"), d.group_transitive_members_count,
          "groups.read"),
        r("GET", ("groups", ID, "memberof"), d.group_member_of, "memberOf.read",
          path_kind="memberOf"),
        # devices
        r("GET", ("devices",), d.list_devices, "devices.read"),
        r("GET", ("devices", "$count"), d.count_devices, "devices.read"),
        r("GET", ("devices", "delta"), delta.devices_delta, "devices.read"),
        r("GET", ("devices", ID), d.get_device, "devices.read"),
        r("PATCH", ("devices", ID), w.update_device, "devices.write"),
        r("DELETE", ("devices", ID), w.delete_device, "devices.write"),
        # organization, domains, contracts, licences
        r("GET", ("organization",), d.list_organization, "organization.read"),
        r("GET", ("organization", ID), d.get_organization, "organization.read"),
        r("GET", ("domains",), d.list_domains, "domains.read"),
        r("GET", ("domains", ID), d.get_domain, "domains.read"),
        r("GET", ("contracts",), d.list_contracts, "contracts.read"),
        r("GET", ("contracts", ID), d.get_contract, "contracts.read"),
        r("GET", ("subscribedskus",), d.list_subscribed_skus, "subscribedSkus.read",
          path_kind="subscribedSkus"),
        # directory roles
        r("GET", ("directoryroles",), d.list_directory_roles, "directoryRoles.read"),
        r("GET", ("directoryroles", ID), d.get_directory_role, "directoryRoles.read"),
        r("GET", ("directoryroles", ID, "members"), d.directory_role_members,
          "directoryRoles.read", path_kind="members"),
        # applications
        r("GET", ("applications",), d.list_applications, "applications.read",
          path_kind="applications"),
        r("POST", ("applications",), w.create_application, "applications.write"),
        r("GET", ("applications", "$count"), d.count_applications, "applications.read"),
        r("GET", ("applications", ID), d.get_application, "applications.read"),
        r("PATCH", ("applications", ID), w.update_application, "applications.write"),
        r("DELETE", ("applications", ID), w.delete_application, "applications.write"),
        r("POST", ("applications", ID, "addpassword"), w.add_password, "applications.write"),
        r("POST", ("applications", ID, "removepassword"), w.remove_password,
          "applications.write"),
        # service principals and app role assignments
        r("GET", ("serviceprincipals",), d.list_service_principals, "servicePrincipals.read"),
        r("POST", ("serviceprincipals",), w.create_service_principal, "servicePrincipals.write"),
        r("GET", ("serviceprincipals", "$count"), d.count_service_principals,
          "servicePrincipals.read"),
        r("GET", ("serviceprincipals", ID), d.get_service_principal, "servicePrincipals.read"),
        r("DELETE", ("serviceprincipals", ID), w.delete_service_principal,
          "servicePrincipals.write"),
        r("GET", ("serviceprincipals", ID, "approleassignments"), d.sp_app_role_assignments,
          "servicePrincipals.read"),
        r("POST", ("serviceprincipals", ID, "approleassignments"), w.add_app_role_assignment,
          "appRoleAssignments.write"),
        r("DELETE", ("serviceprincipals", ID, "approleassignments", ID),
          w.delete_app_role_assignment, "appRoleAssignments.write"),
        r("GET", ("serviceprincipals", ID, "approleassignedto"), d.sp_app_role_assigned_to,
          "servicePrincipals.read"),
        r("POST", ("serviceprincipals", ID, "approleassignedto"), w.add_app_role_assigned_to,
          "appRoleAssignments.write"),
        r("DELETE", ("serviceprincipals", ID, "approleassignedto", ID),
          w.delete_app_role_assignment, "appRoleAssignments.write"),
        # directory objects
        r("POST", ("directoryobjects", "getbyids"), d.get_by_ids, "directoryObjects.read",
          path_kind="getByIds"),
        r("GET", ("directoryobjects", ID), d.get_directory_object, "directoryObjects.read"),
        # consent objects (oauth2PermissionGrants; appRoleAssignedTo is above)
        r("GET", ("oauth2permissiongrants",), consent_objects.list_grants,
          "oauth2PermissionGrants.read"),
        r("POST", ("oauth2permissiongrants",), consent_objects.create_grant,
          "oauth2PermissionGrants.write"),
        r("GET", ("oauth2permissiongrants", ID), consent_objects.get_grant,
          "oauth2PermissionGrants.read"),
        r("PATCH", ("oauth2permissiongrants", ID), consent_objects.update_grant,
          "oauth2PermissionGrants.write"),
        r("DELETE", ("oauth2permissiongrants", ID), consent_objects.delete_grant,
          "oauth2PermissionGrants.write"),
        r("GET", ("serviceprincipals", ID, "oauth2permissiongrants"),
          consent_objects.sp_grants, "oauth2PermissionGrants.read"),
        # GDAP, in the partner tenant (tenant_relationships.py)
        *_gdap_routes(),
        # Intune
        r("GET", ("devicemanagement", "manageddevices"), intune.list_managed_devices,
          "managedDevices.read", family=INTUNE),
        r("GET", ("devicemanagement", "manageddevices", ID), intune.get_managed_device,
          "managedDevices.read", family=INTUNE),
        r("GET", ("devicemanagement", "devicecompliancepolicies"),
          intune.list_compliance_policies, "deviceCompliancePolicies.read", family=INTUNE),
        r("GET", ("devicemanagement", "devicecompliancepolicies", ID),
          intune.get_compliance_policy, "deviceCompliancePolicies.read", family=INTUNE),
    ]  # fmt: skip


def _gdap_routes() -> list[Route]:
    r = Route
    rel = ("tenantrelationships", "delegatedadminrelationships")
    read, write, request = (
        "tenantRelationships.read",
        "tenantRelationships.write",
        "tenantRelationships.request",
    )
    customers = ("tenantrelationships", "delegatedadmincustomers")
    return [
        r("GET", rel, gdap.list_relationships, read),
        r("POST", rel, gdap.create_relationship, write),
        r("GET", (*rel, ID), gdap.get_relationship, read),
        r("PATCH", (*rel, ID), gdap.update_relationship, write),
        r("DELETE", (*rel, ID), gdap.delete_relationship, write),
        r("GET", (*rel, ID, "accessassignments"), gdap.list_assignments, read),
        r("POST", (*rel, ID, "accessassignments"), gdap.create_assignment, write),
        r("GET", (*rel, ID, "accessassignments", ID), gdap.get_assignment, read),
        r("PATCH", (*rel, ID, "accessassignments", ID), gdap.update_assignment, write),
        r("DELETE", (*rel, ID, "accessassignments", ID), gdap.delete_assignment, write),
        r("GET", (*rel, ID, "requests"), gdap.list_requests, read),
        r("POST", (*rel, ID, "requests"), gdap.create_request, request),
        r("GET", (*rel, ID, "requests", ID), gdap.get_request, read),
        r("GET", (*rel, ID, "operations"), gdap.list_operations, read),
        r("GET", (*rel, ID, "operations", ID), gdap.get_operation, read),
        r("GET", customers, gdap.list_customers, read),
        r("GET", (*customers, ID), gdap.get_customer, read),
        r("GET", (*customers, ID, "servicemanagementdetails"), gdap.list_service_details, read),
    ]


ROUTES = _routes()
# Routes by (segment count, first segment): a request compares against a handful of patterns.
_INDEX: dict[tuple[int, str], list[Route]] = {}
for _route in ROUTES:
    _INDEX.setdefault((len(_route.pattern), _route.pattern[0]), []).append(_route)
_PREFIXES = {route.pattern[:i] for route in ROUTES for i in range(1, len(route.pattern) + 1)}


def _matches(pattern: tuple[str, ...], lowered: list[str]) -> bool:
    return all(p in (ID, s) for p, s in zip(pattern, lowered, strict=True))


def _prefix_known(lowered: list[str]) -> bool:
    n = len(lowered)
    return any(
        len(prefix) == n and all(p in (ID, s) for p, s in zip(prefix, lowered, strict=True))
        for prefix in _PREFIXES
    )


def resolve(method: str, segments: list[str]) -> tuple[Route, tuple[str, ...]]:
    """The route for ``method`` on ``segments`` and the ids the path carries; GraphError when
    there is none (403 out of CSP scope, 405 wrong method, 400 unknown segment)."""
    if not segments:
        raise segment_not_found("")
    lowered = [s.lower() for s in segments]
    candidates = [
        route
        for route in _INDEX.get((len(lowered), lowered[0]), [])
        if _matches(route.pattern, lowered)
    ]
    # Literal segments win over ids (users/$count before users/{id}).
    candidates.sort(key=lambda route: route.pattern.count(ID))
    for route in candidates:
        if route.method == method:
            ids = tuple(s for p, s in zip(route.pattern, segments, strict=True) if p == ID)
            return route, ids
    if candidates:
        raise method_not_allowed()
    refusal = csp_scope.refusal(segments)
    if refusal is not None:
        raise refusal
    for depth in range(1, len(lowered) + 1):
        if not _prefix_known(lowered[:depth]):
            raise segment_not_found(segments[depth - 1])
    raise segment_not_found(segments[-1])


# -- normalizing path segments --------------------------------------------------------------------

_KEY = re.compile(r"^([A-Za-z]+)\((.*)\)$")


def normalize(segments: list[str]) -> list[str]:
    """Graph's equivalent spellings, reduced to one (see the module docstring)."""
    out: list[str] = []
    for segment in segments:
        if segment.lower().startswith("microsoft.graph."):
            segment = segment[len("microsoft.graph.") :]
        key = _KEY.match(segment)
        if key is not None:
            name, inner = key.groups()
            if inner == "":
                out.append(name)  # a function call: delta()
            elif "=" in inner:
                prop, _, value = inner.partition("=")
                out.extend([name, f"{prop.strip()}={value.strip().strip(chr(39))}"])
            else:
                out.extend([name, inner.strip().strip("'")])
            continue
        out.append(segment)
    return out
