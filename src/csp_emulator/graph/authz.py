"""What each Graph operation needs, in one table, and the check every request goes through.

App-only callers need one of the operation's application permissions in the token's ``roles``.
Delegated callers need one of its delegated permissions in ``scp`` — ``Directory.AccessAsUser.All``
counts for every directory operation, as "whatever the signed-in user may do" — and the user's
right to do it: a tenant's own member reads the directory by default; writes, Intune reads and
every call of a partner agent (DAP or GDAP) need a directory role in ``wids`` that grants the
operation (role_grants.py; Global Administrator may do everything). A token with
neither ``roles`` nor ``scp`` carries no pre-consented claims at all (a CSP relationship that has
not reached the customer yet) and is refused like any missing permission:
403 ``Authorization_RequestDenied`` "Insufficient privileges to complete the operation."

Sources: Graph API reference permission tables (verified for organization, subscribedSkus,
directoryRoles, application create); wire-facts §7 for the rest. Choices made where the docs are
silent are marked "choice".
"""

from __future__ import annotations

from dataclasses import dataclass

from csp_emulator.graph import role_grants
from csp_emulator.graph.caller import Caller
from csp_emulator.graph.errors import access_denied

DIRECTORY_AS_USER = "Directory.AccessAsUser.All"

_DIR_READ = ("Directory.Read.All", "Directory.ReadWrite.All")
_DIR_WRITE = ("Directory.ReadWrite.All",)


@dataclass(frozen=True)
class Rule:
    app_roles: frozenset[str]  # any one of these application permissions
    scopes: frozenset[str]  # any one of these delegated permissions
    # A tenant's own member holding the scope may, without a role (directory reads); otherwise
    # the user needs a role that grants the operation (role_grants.py).
    members: bool = True
    # Directory.AccessAsUser.All stands in for the scope (directory resources, not Intune).
    directory: bool = True
    # About the signed-in user themselves (/me): anyone signed in, agents included.
    own: bool = False


def _rule(
    app: tuple[str, ...],
    delegated: tuple[str, ...] | None = None,
    *,
    members: bool = True,
    directory: bool = True,
    own: bool = False,
) -> Rule:
    return Rule(
        app_roles=frozenset(app),
        scopes=frozenset(app if delegated is None else delegated),
        members=members,
        directory=directory,
        own=own,
    )


_ROLE = False  # members=_ROLE: only a role that grants the operation will do
_GDAP = ("DelegatedAdminRelationship.Read.All", "DelegatedAdminRelationship.ReadWrite.All")
_APP_READ = ("Application.Read.All", "Application.ReadWrite.All", "Application.ReadWrite.OwnedBy")

# operation -> who may perform it. Operation names are "<resource>.<verb>".
RULES: dict[str, Rule] = {
    "users.read": _rule(
        ("User.Read.All", "User.ReadWrite.All", *_DIR_READ),
        ("User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All", *_DIR_READ),
    ),
    "users.write": _rule(("User.ReadWrite.All", *_DIR_WRITE), members=_ROLE),
    # A PATCH that only sets passwordProfile: Helpdesk Administrators may do that too.
    "users.resetPassword": _rule(
        ("User.ReadWrite.All", *_DIR_WRITE),
        members=_ROLE,
    ),
    "groups.read": _rule(
        (
            "Group.Read.All",
            "GroupMember.Read.All",
            "Group.ReadWrite.All",
            "GroupMember.ReadWrite.All",
            *_DIR_READ,
        ),
    ),
    "groups.write": _rule(("Group.ReadWrite.All", *_DIR_WRITE), members=_ROLE),
    "groupMembers.write": _rule(
        ("GroupMember.ReadWrite.All", "Group.ReadWrite.All", *_DIR_WRITE), members=_ROLE
    ),
    # memberOf lists groups and roles of one object (choice: the user or group permissions).
    "memberOf.read": _rule(
        ("User.Read.All", "GroupMember.Read.All", "Group.Read.All", *_DIR_READ),
    ),
    "devices.read": _rule(("Device.Read.All", "Device.ReadWrite.All", *_DIR_READ)),
    "devices.write": _rule(
        ("Device.ReadWrite.All", *_DIR_WRITE),
        members=_ROLE,
    ),
    # Delegated: any signed-in user reads their own organization (User.Read is least).
    "organization.read": _rule(
        ("Organization.Read.All", "Organization.ReadWrite.All", *_DIR_READ),
        ("User.Read", "Organization.Read.All", "Organization.ReadWrite.All", *_DIR_READ),
    ),
    "subscribedSkus.read": _rule(
        ("Organization.Read.All", "Organization.ReadWrite.All", *_DIR_READ)
    ),
    "domains.read": _rule(("Domain.Read.All", "Domain.ReadWrite.All", *_DIR_READ)),
    "contracts.read": _rule(_DIR_READ),
    "directoryRoles.read": _rule(
        ("RoleManagement.Read.Directory", "RoleManagement.ReadWrite.Directory", *_DIR_READ)
    ),
    # directoryObjects by id: Directory.Read.All, or the read permission of the object's own
    # type (checked again by the handler once the type is known).
    "directoryObjects.read": _rule(
        (
            "User.Read.All",
            "User.ReadWrite.All",
            "Group.Read.All",
            "GroupMember.Read.All",
            "Group.ReadWrite.All",
            "Device.Read.All",
            "Device.ReadWrite.All",
            *_APP_READ,
            *_DIR_READ,
        ),
    ),
    "applications.read": _rule((*_APP_READ, *_DIR_READ)),
    # Application create: Application.ReadWrite.OwnedBy least, Application.ReadWrite.All higher.
    "applications.write": _rule(
        ("Application.ReadWrite.All", "Application.ReadWrite.OwnedBy"), members=_ROLE
    ),
    "servicePrincipals.read": _rule((*_APP_READ, *_DIR_READ)),
    "servicePrincipals.write": _rule(
        ("Application.ReadWrite.All", "Application.ReadWrite.OwnedBy", *_DIR_WRITE),
        members=_ROLE,
    ),
    "appRoleAssignments.write": _rule(
        ("AppRoleAssignment.ReadWrite.All",),
        members=_ROLE,
    ),
    # /me: delegated only; the signed-in user reads their own profile and memberships.
    "me.read": _rule(
        (),
        (
            "User.Read",
            "User.ReadWrite",
            "User.ReadBasic.All",
            "User.Read.All",
            "User.ReadWrite.All",
            *_DIR_READ,
        ),
        own=True,
    ),
    "me.memberOf": _rule(
        (),
        ("User.Read", "User.Read.All", "GroupMember.Read.All", "Group.Read.All", *_DIR_READ),
        own=True,
    ),
    # Consent objects: oauth2PermissionGrants (partners' tools write them in a customer).
    "oauth2PermissionGrants.read": _rule(
        ("DelegatedPermissionGrant.ReadWrite.All", *_DIR_READ),
    ),
    "oauth2PermissionGrants.write": _rule(
        ("DelegatedPermissionGrant.ReadWrite.All",), members=_ROLE
    ),
    # GDAP (/tenantRelationships, in the partner tenant): its own permissions, no directory role;
    # the handlers check AdminAgents membership (tenant_relationships.py).
    "tenantRelationships.read": _rule(_GDAP, directory=False),
    "tenantRelationships.write": _rule(_GDAP[1:], directory=False),
    # Requests (lockForApproval, terminate) are delegated only (Graph docs: "Application: Not
    # supported.").
    "tenantRelationships.request": _rule((), _GDAP[1:], directory=False),
    # Intune: its own permissions and, for agents and admins, an Intune-capable role.
    "managedDevices.read": _rule(
        ("DeviceManagementManagedDevices.Read.All", "DeviceManagementManagedDevices.ReadWrite.All"),
        members=_ROLE,
        directory=False,
    ),
    "deviceCompliancePolicies.read": _rule(
        ("DeviceManagementConfiguration.Read.All", "DeviceManagementConfiguration.ReadWrite.All"),
        members=_ROLE,
        directory=False,
    ),
}


def allows(caller: Caller, operation: str) -> bool:
    rule = RULES[operation]
    if not caller.delegated:
        return not rule.app_roles.isdisjoint(caller.roles)
    has_scope = not rule.scopes.isdisjoint(caller.scopes) or (
        rule.directory and DIRECTORY_AS_USER in caller.scopes
    )
    if not has_scope:
        return False
    if rule.own or (rule.members and not caller.agent):
        return True
    return role_grants.permits(caller.role_templates, operation)


def require(caller: Caller, operation: str) -> None:
    """Raise Graph's 403 unless ``caller`` may perform ``operation``."""
    if not caller.roles and not caller.scopes:
        # No pre-consented claims at all: same answer, checked first because it is the CSP
        # propagation symptom (the fix is a new token after the relationship takes effect).
        raise access_denied()
    if not allows(caller, operation):
        raise access_denied()
