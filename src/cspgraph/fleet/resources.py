"""What the fleet sync pulls from each customer tenant, and how.

One :class:`Pull` per store resource. Directory collections that Graph can deliver as a delta
(users, groups, devices) are always read through ``/delta``, even the first time: the first round
lists everything and ends with a ``@odata.deltaLink``, so the next run asks for changes only.
``organization`` and Intune's ``managedDevices`` have no delta query: they are pulled whole every
run and swept (mark & sweep in the store) to notice deletions.

``$select`` names exactly what the store and the report read (Graph's cost and payload both go
down, and Graph then returns *only* these properties, so ``id`` must be in every list).
"""

from __future__ import annotations

from dataclasses import dataclass

# Graph's largest page for directory lists and delta rounds (wire-facts §2.4).
MAX_PAGE_SIZE = 999


@dataclass(frozen=True, slots=True)
class Pull:
    resource: str  # the store's resource name
    path: str  # the Graph path of the first request
    select: tuple[str, ...]
    delta: bool  # read through /delta (incremental after the first round)
    paged: bool = True  # takes $top (organization and subscribedSkus take no paging options)

    def first_request(self, page_size: int) -> tuple[dict[str, str], dict[str, str]]:
        """(query parameters, headers) of the first request of a new pull."""
        params = {"$select": ",".join(self.select)}
        headers: dict[str, str] = {}
        if self.delta:
            # Delta rounds take no $top; the page size is asked for with this preference.
            headers["Prefer"] = f"odata.maxpagesize={page_size}"
        elif self.paged:
            params["$top"] = str(page_size)
        return params, headers

    def link_headers(self, page_size: int) -> dict[str, str]:
        """Headers to send with a saved nextLink or deltaLink (they carry the query already)."""
        return {"Prefer": f"odata.maxpagesize={page_size}"} if self.delta else {}


USERS = Pull(
    "users",
    "/users/delta",
    ("id", "displayName", "userPrincipalName", "mail", "accountEnabled", "userType",
     "createdDateTime", "assignedLicenses"),
    delta=True,
)  # fmt: skip
GROUPS = Pull(
    "groups",
    "/groups/delta",
    # "members" asks the delta for members@delta: memberships arrive with their group.
    ("id", "displayName", "securityEnabled", "mailEnabled", "groupTypes", "isAssignableToRole",
     "members"),
    delta=True,
)  # fmt: skip
DEVICES = Pull(
    "devices",
    "/devices/delta",
    ("id", "deviceId", "displayName", "operatingSystem", "operatingSystemVersion",
     "accountEnabled", "trustType", "approximateLastSignInDateTime"),
    delta=True,
)  # fmt: skip
ORGANIZATION = Pull(
    "organization",
    "/organization",
    ("id", "displayName", "countryLetterCode", "tenantType", "verifiedDomains"),
    delta=False,
    paged=False,
)
MANAGED_DEVICES = Pull(
    "managedDevices",
    "/deviceManagement/managedDevices",
    ("id", "deviceName", "operatingSystem", "osVersion", "complianceState", "userId",
     "userPrincipalName", "lastSyncDateTime", "managedDeviceOwnerType", "azureADDeviceId",
     "isEncrypted"),
    delta=False,
)  # fmt: skip
# Licences bought and assigned (Organization.Read.All, which the sync holds already).
SUBSCRIBED_SKUS = Pull(
    "subscribedSkus",
    "/subscribedSkus",
    ("id", "skuId", "skuPartNumber", "capabilityStatus", "prepaidUnits", "consumedUnits",
     "appliesTo"),
    delta=False,
    paged=False,
)  # fmt: skip

PULLS: tuple[Pull, ...] = (USERS, GROUPS, DEVICES, ORGANIZATION, MANAGED_DEVICES, SUBSCRIBED_SKUS)
PULLS_BY_RESOURCE: dict[str, Pull] = {p.resource: p for p in PULLS}

# "admins" in the report: holders of these directory roles, the privileged ones (Entra's built-in
# roles reference marks them PRIVILEGED), with Global Administrator first. directoryRoles has no
# delta and no paging: the members of each activated one are read whole each run.
ADMIN_ROLES = "directoryRoles"
GLOBAL_ADMIN_TEMPLATE = "62e90394-69f5-4237-9190-012177145e10"
ADMIN_ROLE_TEMPLATES: dict[str, str] = {
    GLOBAL_ADMIN_TEMPLATE: "Global Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13": "Privileged Authentication Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9": "Conditional Access Administrator",
    "c4e39bd9-1100-46d3-8c65-fb160da0071f": "Authentication Administrator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "29232cdf-9323-42fd-ade2-1d097af3e4de": "Exchange Administrator",
    "f28a1f50-f6e7-4571-818b-6a12f2af6b6c": "SharePoint Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
    "3a2c62db-5318-420d-8d74-23affee5d9d5": "Intune Administrator",
    "7698a772-787b-4ac8-901f-60d6b08affd2": "Cloud Device Administrator",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": "Helpdesk Administrator",
    "b0f54661-2d74-4c50-afa3-1ec803f12efe": "Billing Administrator",
}

# Everything a sync can be limited to (``resources=``): the store resources and the admin roles.
ALL_RESOURCES: tuple[str, ...] = (*PULLS_BY_RESOURCE, ADMIN_ROLES)
