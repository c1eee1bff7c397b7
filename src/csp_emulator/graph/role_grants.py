"""What each directory role lets a signed-in user do in the emulated Graph: the role half of the
authorization table (authz.py holds the permission half).

A delegated call needs the app's scope *and* the user's right to do the thing. A tenant's own
member may read the directory by default (Entra's default user permissions); everything else —
writes, Intune reads, and **every** call of a partner agent, who is no member of the customer
and acts only through the roles GDAP (or DAP) gave them — needs one of the user's roles (``wids``)
to grant the operation here. Global Administrator grants everything.

The grants follow the role descriptions of Entra's built-in roles reference; roles whose
workloads the emulator does not serve (Exchange, Teams, SharePoint, billing, …) grant at most the
directory reads named below. Where the reference does not settle a line it is marked *unverified*.
"""

from __future__ import annotations

from collections.abc import Iterable

from csp_emulator import roles

DIRECTORY_READS = frozenset(
    {
        "users.read",
        "groups.read",
        "devices.read",
        "memberOf.read",
        "organization.read",
        "subscribedSkus.read",
        "domains.read",
        "contracts.read",
        "directoryRoles.read",
        "directoryObjects.read",
        "applications.read",
        "servicePrincipals.read",
        "oauth2PermissionGrants.read",
    }
)
INTUNE_READS = frozenset({"managedDevices.read", "deviceCompliancePolicies.read"})
# Granting Microsoft Graph's app roles (application permissions) to a service principal. Entra's
# "Grant tenant-wide admin consent" prerequisites: Cloud Application Administrator and
# Application Administrator may grant any API's permissions *except* Microsoft Graph's app
# roles; those take Privileged Role Administrator (or Global Administrator). The Graph reference
# of appRoleAssignedTo lists the roles that may assign app roles at all (appRoleAssignments.write).
GRAPH_APP_ROLES_GRANT = "graphAppRoles.grant"
_USER_WRITES = frozenset({"users.write", "users.resetPassword"})
_GROUP_WRITES = frozenset({"groups.write", "groupMembers.write"})
_APP_WRITES = frozenset(
    {
        "applications.write",
        "servicePrincipals.write",
        "appRoleAssignments.write",
        "oauth2PermissionGrants.write",
    }
)
_APP_READS = frozenset(
    {
        "applications.read",
        "servicePrincipals.read",
        "oauth2PermissionGrants.read",
        "directoryObjects.read",
        "users.read",
        "groups.read",
        "organization.read",
    }
)

ROLE_OPERATIONS: dict[str, frozenset[str]] = {
    roles.GLOBAL_READER: DIRECTORY_READS | INTUNE_READS,
    roles.DIRECTORY_READERS: DIRECTORY_READS,
    # "Can read and write basic directory information" (*unverified* which writes: users and
    # groups, no passwords).
    roles.DIRECTORY_WRITERS: DIRECTORY_READS | {"users.write"} | _GROUP_WRITES,
    roles.USER_ADMINISTRATOR: DIRECTORY_READS | _USER_WRITES | _GROUP_WRITES,
    roles.GROUPS_ADMINISTRATOR: DIRECTORY_READS | _GROUP_WRITES,
    roles.HELPDESK_ADMINISTRATOR: DIRECTORY_READS | {"users.resetPassword"},
    roles.PASSWORD_ADMINISTRATOR: DIRECTORY_READS | {"users.resetPassword"},
    roles.LICENSE_ADMINISTRATOR: frozenset(
        {"users.read", "groups.read", "organization.read", "subscribedSkus.read"}
    ),
    roles.INTUNE_ADMINISTRATOR: INTUNE_READS
    | {"users.read", "groups.read", "devices.read", "devices.write", "organization.read"},
    roles.CLOUD_DEVICE_ADMINISTRATOR: frozenset(
        {"devices.read", "devices.write", "organization.read"}
    ),
    roles.APPLICATION_ADMINISTRATOR: _APP_READS | _APP_WRITES,
    roles.CLOUD_APPLICATION_ADMINISTRATOR: _APP_READS | _APP_WRITES,
    roles.PRIVILEGED_ROLE_ADMINISTRATOR: _APP_READS
    | {"directoryRoles.read", "memberOf.read", "appRoleAssignments.write"}
    | {"oauth2PermissionGrants.write", GRAPH_APP_ROLES_GRANT},
    # Security roles read the directory to investigate (*unverified* beyond that).
    roles.SECURITY_READER: DIRECTORY_READS,
    roles.SECURITY_ADMINISTRATOR: DIRECTORY_READS,
    roles.SERVICE_SUPPORT_ADMINISTRATOR: frozenset({"organization.read", "subscribedSkus.read"}),
    roles.BILLING_ADMINISTRATOR: frozenset({"organization.read", "subscribedSkus.read"}),
    roles.EXCHANGE_ADMINISTRATOR: frozenset({"users.read", "groups.read", "organization.read"}),
}


def permits(role_templates: Iterable[str], operation: str) -> bool:
    """Whether any of ``role_templates`` grants ``operation`` (Global Administrator grants all)."""
    for template in role_templates:
        if template == roles.GLOBAL_ADMINISTRATOR:
            return True
        if operation in ROLE_OPERATIONS.get(template, ()):
            return True
    return False


def roles_granting(operation: str) -> frozenset[str]:
    """The role templates that grant ``operation`` (for documentation and tests)."""
    return frozenset(
        {roles.GLOBAL_ADMINISTRATOR} | {t for t, ops in ROLE_OPERATIONS.items() if operation in ops}
    )
