"""The resource model the OData layer checks queries against, and its one error type.

Entity type names, the declared property kinds of the strict resources (users, groups, devices),
the canonical spelling of each property, what needs advanced mode, and how a property is read from
a Graph-shaped object. Both the query options (odata.py) and the $filter compiler (odata_filter.py)
build on it, so it imports neither.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]


class ODataError(Exception):
    """A query the real service rejects; the routes turn it into a Graph error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ODataError({self.status}, {self.code!r}, {self.message!r})"


# ---------------------------------------------------------------------------------------------
# The resource model: entity type names and, for the strict resources, their property kinds.

ENTITY_TYPES: dict[str, str] = {
    "users": "user",
    "groups": "group",
    "devices": "device",
    "applications": "application",
    "servicePrincipals": "servicePrincipal",
    "directoryRoles": "directoryRole",
    "managedDevices": "managedDevice",
    "deviceCompliancePolicies": "deviceCompliancePolicy",
    "appRoleAssignments": "appRoleAssignment",
    "domains": "domain",
    "organization": "organization",
    "oauth2PermissionGrants": "oAuth2PermissionGrant",
    "delegatedAdminRelationships": "delegatedAdminRelationship",
    "delegatedAdminAccessAssignments": "delegatedAdminAccessAssignment",
    "delegatedAdminRelationshipRequests": "delegatedAdminRelationshipRequest",
    "delegatedAdminRelationshipOperations": "delegatedAdminRelationshipOperation",
    "delegatedAdminCustomers": "delegatedAdminCustomer",
    "delegatedAdminServiceManagementDetails": "delegatedAdminServiceManagementDetail",
}

# Intune is a different service behind Graph: no ConsistencyLevel rules, its own error codes.
INTUNE_RESOURCES = frozenset({"managedDevices", "deviceCompliancePolicies"})
# The partner-administration service behind /tenantRelationships (GDAP): not the directory
# either, so no ConsistencyLevel rules ($count and ne work as plain queries) and $top up to 300.
PARTNER_ADMIN_RESOURCES = frozenset(
    {
        "delegatedAdminRelationships",
        "delegatedAdminAccessAssignments",
        "delegatedAdminRelationshipRequests",
        "delegatedAdminRelationshipOperations",
        "delegatedAdminCustomers",
        "delegatedAdminServiceManagementDetails",
    }
)


def _kinds(**groups: str) -> dict[str, str]:
    return {name: kind for kind, names in groups.items() for name in names.split()}


# Property kinds: string, boolean, int, datetime, collection, complex. They drive the type checks
# Graph makes at parse time (e.g. `accountEnabled eq 'true'` is a 400, not an empty result).
PROPERTY_KINDS: dict[str, dict[str, str]] = {
    "users": _kinds(
        string="""aboutMe ageGroup city companyName consentProvidedForMinor country creationType
            department displayName employeeId employeeType externalUserState faxNumber givenName
            id jobTitle legalAgeGroupClassification mail mailNickname mobilePhone mySite
            officeLocation onPremisesDistinguishedName onPremisesDomainName onPremisesImmutableId
            onPremisesSamAccountName onPremisesSecurityIdentifier onPremisesUserPrincipalName
            passwordPolicies postalCode preferredDataLocation preferredLanguage preferredName
            securityIdentifier state streetAddress surname usageLocation userPrincipalName
            userType""",
        boolean="""accountEnabled isManagementRestricted isResourceAccount onPremisesSyncEnabled
            showInAddressList""",
        datetime="""birthday createdDateTime deletedDateTime employeeHireDate
            employeeLeaveDateTime externalUserStateChangeDateTime hireDate
            lastPasswordChangeDateTime onPremisesLastSyncDateTime
            signInSessionsValidFromDateTime""",
        collection="""assignedLicenses assignedPlans businessPhones identities imAddresses
            interests licenseAssignmentStates onPremisesProvisioningErrors otherMails
            pastProjects provisionedPlans proxyAddresses responsibilities schools
            serviceProvisioningErrors skills""",
        complex="""authorizationInfo customSecurityAttributes employeeOrgData mailboxSettings
            onPremisesExtensionAttributes passwordProfile signInActivity""",
    ),
    "groups": _kinds(
        string="""classification description displayName id mail mailNickname membershipRule
            membershipRuleProcessingState onPremisesDomainName onPremisesNetBiosName
            onPremisesSamAccountName onPremisesSecurityIdentifier preferredDataLocation
            preferredLanguage securityIdentifier theme uniqueName visibility""",
        boolean="""allowExternalSenders autoSubscribeNewMembers hasMembersWithLicenseErrors
            hideFromAddressLists hideFromOutlookClients isArchived isAssignableToRole
            isManagementRestricted isSubscribedByMail mailEnabled onPremisesSyncEnabled
            securityEnabled""",
        int="unseenCount",
        datetime="""createdDateTime deletedDateTime expirationDateTime onPremisesLastSyncDateTime
            renewedDateTime""",
        collection="""assignedLabels assignedLicenses groupTypes onPremisesProvisioningErrors
            proxyAddresses serviceProvisioningErrors""",
        complex="licenseProcessingState",
    ),
    "devices": _kinds(
        string="""deviceCategory deviceId deviceMetadata deviceOwnership displayName
            enrollmentProfileName enrollmentType id managementType manufacturer mdmAppId model
            onPremisesSecurityIdentifier operatingSystem operatingSystemVersion profileType
            trustType""",
        boolean="""accountEnabled isCompliant isManaged isManagementRestricted isRooted
            onPremisesSyncEnabled""",
        int="deviceVersion",
        datetime="""approximateLastSignInDateTime complianceExpirationDateTime createdDateTime
            deletedDateTime onPremisesLastSyncDateTime registrationDateTime""",
        collection="alternativeSecurityIds physicalIds systemLabels",
        complex="extensionAttributes",
    ),
}

_CANONICAL: dict[str, dict[str, str]] = {
    resource: {name.lower(): name for name in kinds} for resource, kinds in PROPERTY_KINDS.items()
}

# Filtering on these needs advanced mode (wire-facts §2.4; Graph docs "advanced query
# capabilities on directory objects"). Without it Graph answers Request_UnsupportedQuery.
ADVANCED_ONLY_PROPERTIES: dict[str, frozenset[str]] = {
    "users": frozenset(
        {"companyName", "mobilePhone", "officeLocation", "postalCode", "employeeType"}
        | {n for n in PROPERTY_KINDS["users"] if n.startswith("onPremises")}
        - {"onPremisesImmutableId"}  # filterable by default: hybrid tooling matches on it
    ),
    "groups": frozenset(n for n in PROPERTY_KINDS["groups"] if n.startswith("onPremises")),
    "devices": frozenset(n for n in PROPERTY_KINDS["devices"] if n.startswith("onPremises")),
}

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def entity_type(resource: str) -> str:
    """ "users" -> "microsoft.graph.user", as Graph's messages name types."""
    return "microsoft.graph." + ENTITY_TYPES.get(resource, resource)


def resource_label(resource: str) -> str:
    """ "users" -> "User", as in "... of resource 'User'."""
    name = ENTITY_TYPES.get(resource, resource)
    return name[:1].upper() + name[1:]


def is_strict(resource: str) -> bool:
    return resource in PROPERTY_KINDS


def resolve_property(resource: str, name: str) -> str | None:
    """The property's canonical spelling, or None if the resource has no such (public) property.

    Lenient resources accept any public identifier and keep the caller's spelling.
    """
    if name.startswith("_") or not IDENTIFIER.match(name):
        return None
    canonical = _CANONICAL.get(resource)
    if canonical is None:
        return name
    return canonical.get(name.lower())


def property_kind(resource: str, canonical_name: str) -> str | None:
    """The kind of a resolved top-level property, or None where the resource has no schema."""
    kinds = PROPERTY_KINDS.get(resource)
    return None if kinds is None else kinds.get(canonical_name)


def unknown_property(resource: str, name: str, *, prefix: str = "") -> ODataError:
    return ODataError(
        400,
        "BadRequest",
        f"{prefix}Could not find a property named '{name}' on type '{entity_type(resource)}'.",
    )


def lookup(obj: dict[str, Any], name: str) -> tuple[str, Any]:
    """(key, value) for ``name`` in ``obj``: exact key first, then case-insensitively.

    Returns (name, None) when absent; private keys never match.
    """
    if name in obj:
        return name, obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if key.lower() == lowered and not key.startswith("_"):
            return key, value
    return name, None
