"""What a partner-managed (CSP) app may call in a customer tenant, and with which permission.

Microsoft's rule: "Calling Microsoft Graph from a CSP application is only supported for directory
resources (such as user, group, device, organization) and Intune resources." Anything else fails in
the customer tenant, so the client refuses it before the request leaves the process, quoting the
rule.

One table (:data:`RESOURCES`) holds, per top-level Graph resource, its throttling family, the
least-privileged application and delegated permission for reads and writes, and which navigation
properties stay inside directory data (``/users/{id}/memberOf`` does, ``/users/{id}/messages`` is
Exchange and does not). :func:`resolve` turns a method and path into an :class:`Operation`;
:func:`required_permissions` turns a list of operations into the smallest permission set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from cspgraph.http.errors import GRAPH_CODE_RULES, CspScopeError

CSP_RULE = (
    "Calling Microsoft Graph from a CSP application is only supported for directory resources "
    "(such as user, group, device, organization) and Intune resources."
)


class Family(StrEnum):
    """The throttling service family a request is counted against (wire-facts §3)."""

    IDENTITY = "identity"  # identity & access: resource units per tenant and per app
    INTUNE = "intune"  # Intune devices: requests per tenant
    OTHER = "other"  # only the global per-app request budget applies


@dataclass(frozen=True, slots=True)
class Grant:
    """The least-privileged permission for one kind of access; None where none can do it."""

    application: str | None
    delegated: str | None


def _same(name: str) -> Grant:
    return Grant(name, name)


@dataclass(frozen=True, slots=True)
class ResourceRule:
    family: Family
    read: Grant
    write: Grant
    # Navigation properties (the segment after an id, or after a singleton) that stay inside
    # directory/Intune data. None: every navigation does (the resource is directory data through
    # and through, e.g. servicePrincipals, or Intune's deviceManagement).
    navigations: frozenset[str] | None = None
    # True for resources addressed without an id (/me, /deviceManagement): their second segment
    # is already a navigation.
    singleton: bool = False


# Navigations shared by every directory object that can be a member of something.
_MEMBERSHIP = frozenset(
    {
        "memberOf",
        "transitiveMemberOf",
        "checkMemberGroups",
        "checkMemberObjects",
        "getMemberGroups",
        "getMemberObjects",
        "extensions",
    }
)
_USER_NAVIGATIONS = _MEMBERSHIP | {
    "manager",
    "directReports",
    "ownedObjects",
    "ownedDevices",
    "registeredDevices",
    "createdObjects",
    "appRoleAssignments",
    "licenseDetails",
    "assignLicense",
    "reprocessLicenseAssignment",
    "revokeSignInSessions",
    "managedDevices",  # Intune
}

RESOURCES: dict[str, ResourceRule] = {
    "users": ResourceRule(
        Family.IDENTITY, _same("User.Read.All"), _same("User.ReadWrite.All"), _USER_NAVIGATIONS
    ),
    "me": ResourceRule(
        Family.IDENTITY,
        Grant(None, "User.Read"),  # app-only tokens have no signed-in user
        Grant(None, "User.ReadWrite"),
        _USER_NAVIGATIONS,
        singleton=True,
    ),
    "groups": ResourceRule(
        Family.IDENTITY,
        _same("GroupMember.Read.All"),  # reads groups and their memberships, nothing more
        _same("Group.ReadWrite.All"),
        _MEMBERSHIP | {"members", "transitiveMembers", "owners", "appRoleAssignments"},
    ),
    "devices": ResourceRule(
        Family.IDENTITY,
        _same("Device.Read.All"),
        _same("Device.ReadWrite.All"),
        _MEMBERSHIP | {"registeredOwners", "registeredUsers"},
    ),
    "organization": ResourceRule(
        Family.IDENTITY, _same("Organization.Read.All"), _same("Organization.ReadWrite.All")
    ),
    "domains": ResourceRule(
        Family.IDENTITY, _same("Domain.Read.All"), _same("Domain.ReadWrite.All")
    ),
    "directoryRoles": ResourceRule(
        Family.IDENTITY,
        _same("RoleManagement.Read.Directory"),
        _same("RoleManagement.ReadWrite.Directory"),
    ),
    "directoryObjects": ResourceRule(
        Family.IDENTITY, _same("Directory.Read.All"), _same("Directory.ReadWrite.All")
    ),
    "applications": ResourceRule(
        Family.IDENTITY, _same("Application.Read.All"), _same("Application.ReadWrite.All")
    ),
    "servicePrincipals": ResourceRule(
        Family.IDENTITY, _same("Application.Read.All"), _same("Application.ReadWrite.All")
    ),
    "oauth2PermissionGrants": ResourceRule(
        Family.IDENTITY,
        _same("DelegatedPermissionGrant.Read.All"),
        _same("DelegatedPermissionGrant.ReadWrite.All"),
    ),
    "contracts": ResourceRule(Family.IDENTITY, _same("Directory.Read.All"), Grant(None, None)),
    "subscribedSkus": ResourceRule(
        Family.IDENTITY, _same("LicenseAssignment.Read.All"), Grant(None, None)
    ),
    # GDAP relationships live in the partner's own tenant (wire-facts §5.1).
    "tenantRelationships": ResourceRule(
        Family.OTHER,
        _same("DelegatedAdminRelationship.Read.All"),
        _same("DelegatedAdminRelationship.ReadWrite.All"),
        singleton=True,
    ),
    "deviceManagement": ResourceRule(
        Family.INTUNE,
        _same("DeviceManagementServiceConfig.Read.All"),
        _same("DeviceManagementServiceConfig.ReadWrite.All"),
        singleton=True,
    ),
    "deviceAppManagement": ResourceRule(
        Family.INTUNE,
        _same("DeviceManagementApps.Read.All"),
        _same("DeviceManagementApps.ReadWrite.All"),
        singleton=True,
    ),
    "$batch": ResourceRule(Family.OTHER, Grant(None, None), Grant(None, None)),
}

# Navigations whose permission differs from their resource's: (resource, navigation) -> read, write.
_NAVIGATION_GRANTS: dict[tuple[str, str], tuple[Grant, Grant]] = {
    ("groups", "members"): (_same("GroupMember.Read.All"), _same("GroupMember.ReadWrite.All")),
    ("users", "managedDevices"): (
        _same("DeviceManagementManagedDevices.Read.All"),
        _same("DeviceManagementManagedDevices.ReadWrite.All"),
    ),
    ("me", "managedDevices"): (
        Grant(None, "DeviceManagementManagedDevices.Read.All"),
        Grant(None, "DeviceManagementManagedDevices.ReadWrite.All"),
    ),
    ("users", "assignLicense"): (_same("User.Read.All"), _same("LicenseAssignment.ReadWrite.All")),
    ("users", "appRoleAssignments"): (
        _same("User.Read.All"),
        _same("AppRoleAssignment.ReadWrite.All"),
    ),
    ("servicePrincipals", "appRoleAssignedTo"): (
        _same("Application.Read.All"),
        _same("AppRoleAssignment.ReadWrite.All"),
    ),
    ("servicePrincipals", "appRoleAssignments"): (
        _same("Application.Read.All"),
        _same("AppRoleAssignment.ReadWrite.All"),
    ),
    ("deviceManagement", "managedDevices"): (
        _same("DeviceManagementManagedDevices.Read.All"),
        _same("DeviceManagementManagedDevices.ReadWrite.All"),
    ),
    ("deviceManagement", "detectedApps"): (
        _same("DeviceManagementManagedDevices.Read.All"),
        _same("DeviceManagementManagedDevices.ReadWrite.All"),
    ),
    ("deviceManagement", "managedDeviceOverview"): (
        _same("DeviceManagementManagedDevices.Read.All"),
        _same("DeviceManagementManagedDevices.ReadWrite.All"),
    ),
    ("deviceManagement", "deviceCompliancePolicies"): (
        _same("DeviceManagementConfiguration.Read.All"),
        _same("DeviceManagementConfiguration.ReadWrite.All"),
    ),
    ("deviceManagement", "deviceConfigurations"): (
        _same("DeviceManagementConfiguration.Read.All"),
        _same("DeviceManagementConfiguration.ReadWrite.All"),
    ),
    ("deviceManagement", "configurationPolicies"): (
        _same("DeviceManagementConfiguration.Read.All"),
        _same("DeviceManagementConfiguration.ReadWrite.All"),
    ),
    ("deviceManagement", "roleDefinitions"): (
        _same("DeviceManagementRBAC.Read.All"),
        _same("DeviceManagementRBAC.ReadWrite.All"),
    ),
    ("deviceManagement", "roleAssignments"): (
        _same("DeviceManagementRBAC.Read.All"),
        _same("DeviceManagementRBAC.ReadWrite.All"),
    ),
}

# Functions addressed on a collection rather than on an item (/users/delta, /users/$count).
_COLLECTION_FUNCTIONS = frozenset(
    {"delta", "$count", "getByIds", "validateProperties", "getAvailableExtensionProperties"}
)
# POST actions that only read: they count as reads for permissions and throttling.
_READ_ACTIONS = frozenset(
    {
        "getByIds",
        "checkMemberGroups",
        "checkMemberObjects",
        "getMemberGroups",
        "getMemberObjects",
        "validateProperties",
        "getAvailableExtensionProperties",
    }
)
_READ_METHODS = frozenset({"GET", "HEAD"})
_CANONICAL_NAMES: dict[str, str] = {
    name.lower(): name
    for name in [
        *RESOURCES,
        *(nav for rule in RESOURCES.values() for nav in rule.navigations or ()),
        *(nav for _, nav in _NAVIGATION_GRANTS),
        *_COLLECTION_FUNCTIONS,
        *_READ_ACTIONS,
    ]
}
_VERSIONS = frozenset({"v1.0", "beta"})


@dataclass(frozen=True, slots=True)
class Operation:
    """One Graph call, reduced to what scope, permissions and throttling care about."""

    method: str
    resource: str  # the first path segment ("users"); "" for the service root
    # The path without ids: "users", "users/delta", "users/{id}", "groups/{id}/members".
    shape: str
    family: Family
    is_write: bool
    grant: Grant | None  # None: outside the CSP table (only with allow_any_resource)

    @property
    def in_scope(self) -> bool:
        return self.grant is not None


def resolve(method: str, path: str) -> Operation:
    """Describe a call; ``path`` may carry a version prefix, a query string or be absolute."""
    method = method.upper()
    segments = _segments(path)
    resource = segments[0] if segments else ""
    rule = RESOURCES.get(resource)
    navigation, function, has_id = _navigation(rule, segments)
    is_write = method not in _READ_METHODS and (function or navigation) not in _READ_ACTIONS
    shape = _shape(resource, has_id, navigation, function)
    if rule is None or (
        navigation is not None
        and rule.navigations is not None
        and navigation not in rule.navigations
    ):
        return Operation(method, resource, shape, Family.OTHER, is_write, None)
    read, write = _NAVIGATION_GRANTS.get((resource, navigation or ""), (rule.read, rule.write))
    family = Family.INTUNE if navigation == "managedDevices" else rule.family
    return Operation(method, resource, shape, family, is_write, write if is_write else read)


def check(method: str, path: str) -> Operation:
    """:func:`resolve`, refusing what a CSP app may not call with :class:`CspScopeError`."""
    operation = resolve(method, path)
    if not operation.in_scope:
        raise scope_error(method, path)
    return operation


def scope_error(method: str, path: str) -> CspScopeError:
    rule = GRAPH_CODE_RULES["CspScopeViolation"]
    where = path.split("?", 1)[0]  # the query may hold personal data; the path is enough
    return CspScopeError(
        f"refused {method.upper()} {where}: {CSP_RULE} Pass allow_any_resource=True to lift this.",
        code="CspScopeViolation",
        reason=rule.reason,
    )


def permission_for(method: str, path: str, *, delegated: bool = False) -> str:
    """The least-privileged permission for one call; ValueError when none exists."""
    operation = check(method, path)
    assert operation.grant is not None  # check() refuses the rest
    name = operation.grant.delegated if delegated else operation.grant.application
    if name is None:
        kind = "delegated" if delegated else "application"
        raise ValueError(f"no {kind} permission can call {method.upper()} {operation.shape}")
    return name


def covers(granted: Iterable[str], needed: str) -> bool:
    """Whether any of the ``granted`` permissions is ``needed`` or includes it."""
    return any(name == needed or needed in _implied_by(name) for name in granted)


def required_permissions(
    operations: Iterable[tuple[str, str]], *, delegated: bool = False
) -> frozenset[str]:
    """The smallest set of permissions that covers every (method, path) in ``operations``.

    Each operation contributes its least-privileged permission; a permission that another one in
    the set already implies (User.Read.All by Directory.Read.All, X.Read.All by X.ReadWrite.All) is
    dropped, so the result never asks for the same access twice.
    """
    wanted = {permission_for(method, path, delegated=delegated) for method, path in operations}
    implied: set[str] = set()
    for name in wanted:
        implied |= _implied_by(name)
    return frozenset(wanted - implied)


# What the fleet job does in every customer tenant: directory inventory plus Intune devices.
SYNC_OPERATIONS: tuple[tuple[str, str], ...] = (
    ("GET", "/organization"),
    ("GET", "/users"),
    ("GET", "/users/delta"),
    ("GET", "/groups"),
    ("GET", "/groups/delta"),
    ("GET", "/groups/{id}/members"),
    ("GET", "/devices"),
    ("GET", "/devices/delta"),
    ("GET", "/deviceManagement/managedDevices"),
    # Who holds the privileged roles: the report's "admins".
    ("GET", "/directoryRoles"),
    ("GET", "/directoryRoles/{id}/members"),
    # Licences (GET /subscribedSkus) are not listed: its least permission is
    # LicenseAssignment.Read.All, but Graph also accepts Organization.Read.All, which the sync
    # holds for /organization already (Graph's subscribedSkus reference), so no more is asked.
)
# The onboarding smoke test (client-traps §11): GET /users?$count=true&$top=1.
SMOKE_TEST_OPERATIONS: tuple[tuple[str, str], ...] = (("GET", "/users"),)

# What the fleet job does in the partner tenant itself, app-only: read the GDAP relationships
# (the customer list of --customer-source gdap, and each customer's access mode).
PARTNER_SYNC_OPERATIONS: tuple[tuple[str, str], ...] = (
    ("GET", "/tenantRelationships/delegatedAdminRelationships"),
)

# The sets `cspgraph setup --for` plans the app's permissions from: the app is one registration,
# so its permissions cover what it does in customers and in the partner tenant.
OPERATION_SETS: dict[str, tuple[tuple[str, str], ...]] = {
    "sync": SYNC_OPERATIONS + PARTNER_SYNC_OPERATIONS,
    "smoke-test": SMOKE_TEST_OPERATIONS,
}

# Application permission (app role) ids of Microsoft Graph, from wire-facts §7 and the public
# permissions reference; setup needs them to grant app roles in a customer tenant.
APPLICATION_ROLE_IDS: dict[str, str] = {
    "User.Read.All": "df021288-bdef-4463-88db-98f22de89214",
    "User.ReadWrite.All": "741f803b-c850-494e-b5df-cde7c675a1ca",
    "Directory.Read.All": "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
    "Directory.ReadWrite.All": "19dbc75e-c2e2-444c-a770-ec69d8559fc7",
    "Group.Read.All": "5b567255-7703-4780-807c-7be8301ae99b",
    "Group.ReadWrite.All": "62a82d76-70ea-41e2-9197-370581804d09",
    "GroupMember.Read.All": "98830695-27a2-44f7-8c18-0c3ebc9698f6",
    "GroupMember.ReadWrite.All": "dbaae8cf-10b5-4b86-a4a1-f871c94c6695",
    "Device.Read.All": "7438b122-aefc-4978-80ed-43db9fcc7715",
    "Device.ReadWrite.All": "1138cb37-bd11-4084-a2b7-9f71582aeddb",
    "Organization.Read.All": "498476ce-e0fe-48b0-b801-37ba7e2685c6",
    "Domain.Read.All": "dbb9058a-0e50-45d7-ae91-66909b5d4664",
    "Application.Read.All": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    "Application.ReadWrite.All": "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    "AppRoleAssignment.ReadWrite.All": "06b708a9-e830-4db3-a914-8e69da51d44f",
    "RoleManagement.Read.Directory": "483bed4a-2ad3-4361-a73b-c83ccdbdc53c",
    "DeviceManagementManagedDevices.Read.All": "2f51be20-0bb4-4fed-bf7b-db946066c75e",
    "DeviceManagementManagedDevices.ReadWrite.All": "243333ab-4d21-40cb-a475-36241daa0842",
}

# Direct "includes" edges between permissions; _implied_by() follows them transitively.
_INCLUDES: dict[str, frozenset[str]] = {
    "Directory.ReadWrite.All": frozenset(
        {
            "Directory.Read.All",
            "User.ReadWrite.All",
            "Group.ReadWrite.All",
            "Organization.ReadWrite.All",
            "Domain.ReadWrite.All",
        }
    ),
    "Directory.Read.All": frozenset(
        {
            "User.Read.All",
            "Group.Read.All",
            "Device.Read.All",
            "Organization.Read.All",
            "Domain.Read.All",
            "Application.Read.All",
            "RoleManagement.Read.Directory",
            "LicenseAssignment.Read.All",
            "DelegatedPermissionGrant.Read.All",
        }
    ),
    "Group.ReadWrite.All": frozenset({"Group.Read.All", "GroupMember.ReadWrite.All"}),
    "GroupMember.ReadWrite.All": frozenset({"GroupMember.Read.All"}),
    "Group.Read.All": frozenset({"GroupMember.Read.All"}),
    "User.ReadWrite.All": frozenset({"User.Read.All", "User.ReadWrite"}),
    "User.Read.All": frozenset({"User.ReadBasic.All", "User.Read"}),
    "User.ReadWrite": frozenset({"User.Read"}),
    "RoleManagement.ReadWrite.Directory": frozenset({"RoleManagement.Read.Directory"}),
    "LicenseAssignment.ReadWrite.All": frozenset({"LicenseAssignment.Read.All"}),
}


def _implied_by(name: str) -> set[str]:
    """Every permission that ``name`` includes, not counting itself."""
    direct = set(_INCLUDES.get(name, ()))
    if name.endswith(".ReadWrite.All"):
        direct.add(name.replace(".ReadWrite.All", ".Read.All"))
    result: set[str] = set()
    for child in direct:
        if child not in result:
            result.add(child)
            result |= _implied_by(child)
    return result


def _segments(path: str) -> list[str]:
    path = path.split("?", 1)[0].split("#", 1)[0]
    if "://" in path:  # an absolute URL: drop scheme and host
        path = path.split("://", 1)[1]
        path = path[path.find("/") :] if "/" in path else ""
    segments = [s for s in path.split("/") if s]
    # A graph_url with a path prefix (an emulator mount point) sits before the version.
    for i, segment in enumerate(segments[:3]):
        if segment in _VERSIONS:
            segments = segments[i + 1 :]
            break
    if segments and "(" in segments[0]:
        # Key addressing, users('ann@contoso.com'), is the same as users/ann@contoso.com.
        resource, _, key = segments[0].partition("(")
        segments[:1] = [resource, key.rstrip(")")] if key.rstrip(")") else [resource]
    return [_canonical(_bare(s)) for s in segments]


def _canonical(name: str) -> str:
    """Graph's path segments are case-insensitive: /Users/{id}/MemberOf is /users/{id}/memberOf."""
    return _CANONICAL_NAMES.get(name.lower(), name)


def _bare(segment: str) -> str:
    """users('x') -> users; microsoft.graph.delta() -> delta."""
    name = segment.split("(", 1)[0]
    return name.removeprefix("microsoft.graph.")


def _navigation(
    rule: ResourceRule | None, segments: list[str]
) -> tuple[str | None, str | None, bool]:
    """(navigation, collection function, whether an item id was addressed)."""
    rest = segments[1:]
    if not rest:
        return None, None, False
    if rule is not None and rule.singleton:
        return rest[0], None, False
    if rest[0] in _COLLECTION_FUNCTIONS:
        return None, rest[0], False
    return (rest[1] if len(rest) > 1 else None), None, True


def _shape(resource: str, has_id: bool, navigation: str | None, function: str | None) -> str:
    shape = resource
    if function is not None:
        shape += "/" + function
    if has_id:
        shape += "/{id}"
    if navigation is not None:
        shape += "/" + navigation
    return shape
