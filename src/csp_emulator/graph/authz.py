"""What each Graph operation needs, in one table, and the check every request goes through.

App-only callers need one of the operation's application permissions in the token's ``roles``.
Delegated callers need one of its delegated permissions in ``scp`` — ``Directory.AccessAsUser.All``
counts for every directory operation, as "whatever the signed-in user may do" — and, for writes,
one of its directory roles in ``wids`` (Global Administrator may do everything). A token with
neither ``roles`` nor ``scp`` carries no pre-consented claims at all (a CSP relationship that has
not reached the customer yet) and is refused like any missing permission:
403 ``Authorization_RequestDenied`` "Insufficient privileges to complete the operation."

Sources: Graph API reference permission tables (verified for organization, subscribedSkus,
directoryRoles, application create); wire-facts §7 for the rest. Choices made where the docs are
silent are marked "choice".
"""

from __future__ import annotations

from dataclasses import dataclass

from csp_emulator import wellknown
from csp_emulator.graph.caller import Caller
from csp_emulator.graph.errors import access_denied

DIRECTORY_AS_USER = "Directory.AccessAsUser.All"

# Directory role templates beyond those in wellknown (Entra built-in roles reference).
ROLE_GROUPS_ADMIN = "fdd7a751-b60b-444a-984c-02652fe8fa1c"
ROLE_APPLICATION_ADMIN = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
ROLE_PRIVILEGED_ROLE_ADMIN = "e8611ab8-c189-46e8-94e1-60213ab1f814"

_DIR_READ = ("Directory.Read.All", "Directory.ReadWrite.All")
_DIR_WRITE = ("Directory.ReadWrite.All",)


@dataclass(frozen=True)
class Rule:
    app_roles: frozenset[str]  # any one of these application permissions
    scopes: frozenset[str]  # any one of these delegated permissions
    # Delegated callers also need one of these directory roles (Global Administrator always
    # counts); None: any signed-in user holding the scope may (directory reads).
    admin_roles: frozenset[str] | None = None
    # Directory.AccessAsUser.All stands in for the scope (directory resources, not Intune).
    directory: bool = True


def _rule(
    app: tuple[str, ...],
    delegated: tuple[str, ...] | None = None,
    roles: tuple[str, ...] | None = None,
    *,
    directory: bool = True,
) -> Rule:
    return Rule(
        app_roles=frozenset(app),
        scopes=frozenset(app if delegated is None else delegated),
        admin_roles=None if roles is None else frozenset(roles),
        directory=directory,
    )


_USER_ADMINS = (wellknown.ROLE_USER_ADMIN,)
_GROUP_ADMINS = (wellknown.ROLE_USER_ADMIN, ROLE_GROUPS_ADMIN)
_APP_ADMINS = (wellknown.ROLE_CLOUD_APP_ADMIN, ROLE_APPLICATION_ADMIN)
_INTUNE_READERS = (wellknown.ROLE_INTUNE_ADMIN, wellknown.ROLE_GLOBAL_READER)
_APP_READ = ("Application.Read.All", "Application.ReadWrite.All", "Application.ReadWrite.OwnedBy")

# operation -> who may perform it. Operation names are "<resource>.<verb>".
RULES: dict[str, Rule] = {
    "users.read": _rule(
        ("User.Read.All", "User.ReadWrite.All", *_DIR_READ),
        ("User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All", *_DIR_READ),
    ),
    "users.write": _rule(("User.ReadWrite.All", *_DIR_WRITE), roles=_USER_ADMINS),
    # A PATCH that only sets passwordProfile: Helpdesk Administrators may do that too.
    "users.resetPassword": _rule(
        ("User.ReadWrite.All", *_DIR_WRITE),
        roles=(*_USER_ADMINS, wellknown.ROLE_HELPDESK_ADMIN),
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
    "groups.write": _rule(("Group.ReadWrite.All", *_DIR_WRITE), roles=_GROUP_ADMINS),
    "groupMembers.write": _rule(
        ("GroupMember.ReadWrite.All", "Group.ReadWrite.All", *_DIR_WRITE), roles=_GROUP_ADMINS
    ),
    # memberOf lists groups and roles of one object (choice: the user or group permissions).
    "memberOf.read": _rule(
        ("User.Read.All", "GroupMember.Read.All", "Group.Read.All", *_DIR_READ),
    ),
    "devices.read": _rule(("Device.Read.All", "Device.ReadWrite.All", *_DIR_READ)),
    "devices.write": _rule(
        ("Device.ReadWrite.All", *_DIR_WRITE),
        roles=(wellknown.ROLE_CLOUD_DEVICE_ADMIN, wellknown.ROLE_INTUNE_ADMIN),
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
        ("Application.ReadWrite.All", "Application.ReadWrite.OwnedBy"), roles=_APP_ADMINS
    ),
    "servicePrincipals.read": _rule((*_APP_READ, *_DIR_READ)),
    "servicePrincipals.write": _rule(
        ("Application.ReadWrite.All", "Application.ReadWrite.OwnedBy", *_DIR_WRITE),
        roles=_APP_ADMINS,
    ),
    "appRoleAssignments.write": _rule(
        ("AppRoleAssignment.ReadWrite.All",),
        roles=(*_APP_ADMINS, ROLE_PRIVILEGED_ROLE_ADMIN),
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
    ),
    "me.memberOf": _rule(
        (),
        ("User.Read", "User.Read.All", "GroupMember.Read.All", "Group.Read.All", *_DIR_READ),
    ),
    # Intune: its own permissions and, for agents and admins, an Intune-capable role.
    "managedDevices.read": _rule(
        ("DeviceManagementManagedDevices.Read.All", "DeviceManagementManagedDevices.ReadWrite.All"),
        roles=_INTUNE_READERS,
        directory=False,
    ),
    "deviceCompliancePolicies.read": _rule(
        ("DeviceManagementConfiguration.Read.All", "DeviceManagementConfiguration.ReadWrite.All"),
        roles=_INTUNE_READERS,
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
    if rule.admin_roles is None:
        return True
    return wellknown.ROLE_GLOBAL_ADMIN in caller.role_templates or not (
        rule.admin_roles.isdisjoint(caller.role_templates)
    )


def require(caller: Caller, operation: str) -> None:
    """Raise Graph's 403 unless ``caller`` may perform ``operation``."""
    if not caller.roles and not caller.scopes:
        # No pre-consented claims at all: same answer, checked first because it is the CSP
        # propagation symptom (the fix is a new token after the relationship takes effect).
        raise access_denied()
    if not allows(caller, operation):
        raise access_denied()
