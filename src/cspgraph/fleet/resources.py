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

    def first_request(self, page_size: int) -> tuple[dict[str, str], dict[str, str]]:
        """(query parameters, headers) of the first request of a new pull."""
        params = {"$select": ",".join(self.select)}
        headers: dict[str, str] = {}
        if self.delta:
            # Delta rounds take no $top; the page size is asked for with this preference.
            headers["Prefer"] = f"odata.maxpagesize={page_size}"
        elif self.resource != "organization":
            params["$top"] = str(page_size)
        return params, headers

    def link_headers(self, page_size: int) -> dict[str, str]:
        """Headers to send with a saved nextLink or deltaLink (they carry the query already)."""
        return {"Prefer": f"odata.maxpagesize={page_size}"} if self.delta else {}


USERS = Pull(
    "users",
    "/users/delta",
    ("id", "displayName", "userPrincipalName", "mail", "accountEnabled", "userType",
     "createdDateTime"),
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
)
MANAGED_DEVICES = Pull(
    "managedDevices",
    "/deviceManagement/managedDevices",
    ("id", "deviceName", "operatingSystem", "osVersion", "complianceState", "userId",
     "userPrincipalName", "lastSyncDateTime", "managedDeviceOwnerType", "azureADDeviceId"),
    delta=False,
)  # fmt: skip

PULLS: tuple[Pull, ...] = (USERS, GROUPS, DEVICES, ORGANIZATION, MANAGED_DEVICES)
PULLS_BY_RESOURCE: dict[str, Pull] = {p.resource: p for p in PULLS}

# "admins" in the report: holders of these directory roles (the store counts Global
# Administrators). directoryRoles has no delta and no paging: its members are read whole each run.
ADMIN_ROLES = "directoryRoles"
ADMIN_ROLE_TEMPLATES: dict[str, str] = {
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
}

# Everything a sync can be limited to (``resources=``): the store resources and the admin roles.
ALL_RESOURCES: tuple[str, ...] = (*PULLS_BY_RESOURCE, ADMIN_ROLES)
