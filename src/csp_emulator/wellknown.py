"""Public constants of Microsoft's cloud that the emulator reproduces.

Written down here from public documentation (shared/reference/wire-facts.md), never imported from
the client side: the emulator is an independent implementation of the server.
"""

from __future__ import annotations

from dataclasses import dataclass

from csp_emulator import roles

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCE = "https://graph.microsoft.com"
PARTNER_CENTER_APP_ID = "fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd"
PARTNER_CENTER_RESOURCE = "https://api.partnercenter.microsoft.com"
# Azure Resource Manager ("Windows Azure Service Management API"): its service principal exists in
# every tenant, so Entra issues ARM tokens anywhere; they carry no Graph roles. The emulator
# issues them (what azure-cli asks for first) but does not serve ARM itself.
ARM_APP_ID = "797f4846-ba00-4fd7-ba43-dac1f8f63013"
ARM_RESOURCE = "https://management.core.windows.net/"
ARM_ALIASES = ("https://management.azure.com/",)
ARM_SCOPE = "user_impersonation"
# "Microsoft Graph Command Line Tools": the first-party public client an admin signs in with when
# there is no app of their own yet (what Connect-MgGraph uses).
GRAPH_CLI_APP_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
# "Partner Customer Delegated Administration": the service principal a partner tenant must hold
# for app-only calls to Graph's delegated admin (GDAP) APIs (wire-facts §5.1).
PARTNER_DELEGATED_ADMIN_APP_ID = "2832473f-ec63-45fb-976f-5d45a7d4bb91"

# Directory role template ids (Entra built-in roles).
ROLE_GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
ROLE_GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
ROLE_USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
ROLE_INTUNE_ADMIN = "3a2c62db-5318-420d-8d74-23affee5d9d5"
ROLE_CLOUD_APP_ADMIN = "158c047a-c907-4556-b7ef-446551a6b5f7"
ROLE_CLOUD_DEVICE_ADMIN = "7698a772-787b-4ac8-901f-60d6b08affd2"
ROLE_HELPDESK_ADMIN = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
ROLE_USER_TEMPLATE = "b79fbf4d-3ef9-4689-8143-76b194e85509"

# Every built-in directory role, by template id (the catalog and its sources: roles.py).
DIRECTORY_ROLES: dict[str, str] = roles.BUILTIN_ROLES


@dataclass(frozen=True)
class Sku:
    """A licence a tenant can buy, as ``subscribedSkus`` names it."""

    part_number: str
    id: str
    name: str
    service_plans: tuple[tuple[str, str], ...]  # (servicePlanId, servicePlanName)


# Ids from Microsoft's "Product names and service plan identifiers for licensing" reference. Only
# the plans the emulator looks at are listed (Intune's, which licenses managedDevices).
INTUNE_PLAN = ("c1ec4a95-1f05-45b3-a911-aa3fa01094f5", "INTUNE_A")
SKUS: dict[str, Sku] = {
    sku.part_number: sku
    for sku in (
        Sku("SPE_E3", "05e9a617-0261-4cee-bb44-138d3ef5d965", "Microsoft 365 E3", (INTUNE_PLAN,)),
        Sku(
            "SPB",
            "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46",
            "Microsoft 365 Business Premium",
            (INTUNE_PLAN,),
        ),
        Sku(
            "O365_BUSINESS_ESSENTIALS",
            "3b555118-da6a-4418-894f-7df1e2096870",
            "Microsoft 365 Business Basic",
            (),
        ),
    )
}
# What an Intune-licensed tenant of a world file holds unless it lists its licences.
DEFAULT_SKU = "SPE_E3"

# DAP: what each partner agent group is worth in a customer tenant.
AGENT_GROUP_ROLES: dict[str, list[str]] = {
    "AdminAgents": [ROLE_GLOBAL_ADMIN],
    "HelpdeskAgents": [ROLE_HELPDESK_ADMIN],
}
PARTNER_AGENT_GROUPS = ("AdminAgents", "HelpdeskAgents", "SalesAgents")

# Clouds: the value of `cloud_instance_name` in discovery, by the world file's `cloud` key.
CLOUD_INSTANCE_NAMES: dict[str, str] = {
    "global": "microsoftonline.com",
    "usgov": "microsoftonline.us",
    "china": "partner.microsoftonline.cn",
}
CLOUD_GRAPH_HOSTS: dict[str, str] = {
    "global": "graph.microsoft.com",
    "usgov": "graph.microsoft.us",
    "china": "microsoftgraph.chinacloudapi.cn",
}


@dataclass(frozen=True)
class Permission:
    name: str
    id: str
    kind: str  # "Role" (application) or "Scope" (delegated)


def _p(kind: str, pairs: dict[str, str]) -> dict[str, Permission]:
    return {name: Permission(name, pid, kind) for name, pid in pairs.items()}


# Microsoft Graph application permissions (app roles). IDs from wire-facts §7 and the public
# permissions reference; the ones outside directory and Intune exist so a CSP app can be refused.
APPLICATION_PERMISSIONS: dict[str, Permission] = _p(
    "Role",
    {
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
        "Application.ReadWrite.OwnedBy": "18a4783c-866b-4cc7-a460-3d5e5662c884",
        "AppRoleAssignment.ReadWrite.All": "06b708a9-e830-4db3-a914-8e69da51d44f",
        "RoleManagement.Read.Directory": "483bed4a-2ad3-4361-a73b-c83ccdbdc53c",
        "DeviceManagementManagedDevices.Read.All": "2f51be20-0bb4-4fed-bf7b-db946066c75e",
        "DeviceManagementManagedDevices.ReadWrite.All": "243333ab-4d21-40cb-a475-36241daa0842",
        "DeviceManagementConfiguration.Read.All": "dc377aa6-52d8-4e23-b271-2a7ae04cedf3",
        # GDAP and consent (ids as public permission lists give them; the last one unverified).
        "DelegatedAdminRelationship.Read.All": "f6e9e124-4586-492f-adc0-c6f96e4823fd",
        "DelegatedAdminRelationship.ReadWrite.All": "cc13eba4-8cd8-44c6-b4d4-f93237adce58",
        "DelegatedPermissionGrant.ReadWrite.All": "8e8e4742-1d95-4f68-9d56-6ee75648c72a",
        "Mail.Read": "810c84a8-4a9e-49e6-bf7d-12d183f40d01",
        "Files.Read.All": "01d4889c-1287-42c6-ac1f-5d1e02578ef6",
        "Sites.Read.All": "332a536c-c7ef-4017-ab91-336970924f0d",
        "Team.ReadBasic.All": "2280dda6-0bfd-44ee-a2f4-cb867cfc4c1e",
        "Calendars.Read": "798ee544-9d2d-430c-a058-570e29e34338",
    },
)

# Microsoft Graph delegated permissions (OAuth2 scopes).
DELEGATED_PERMISSIONS: dict[str, Permission] = _p(
    "Scope",
    {
        "User.Read": "e1fe6dd8-ba31-4d61-89e7-88639da4683d",
        "User.ReadBasic.All": "b340eb25-3456-403f-be2f-af7a0d370277",
        "User.Read.All": "a154be20-db9c-4678-8ab7-66f6cc099a59",
        "User.ReadWrite.All": "204e0828-b5ca-4ad8-b9f3-f32a958e7cc4",
        "Directory.Read.All": "06da0dbc-49e2-44d2-8312-53f166ab848a",
        "Directory.ReadWrite.All": "c5366453-9fb0-48a5-a156-24f0c49a4b84",
        "Directory.AccessAsUser.All": "0e263e50-5827-48a4-b97c-d940288653c7",
        "Group.Read.All": "5f8c59db-677d-491f-a6b8-5f174b11ec1d",
        "Group.ReadWrite.All": "4e46008b-f24c-477d-8fff-7bb4ec7aafe0",
        "GroupMember.Read.All": "bc024368-1153-4739-b217-4326f2e966d0",
        "GroupMember.ReadWrite.All": "f81125ac-d3b7-4573-a3b2-7099cc39df9e",
        "Device.Read.All": "951183d1-1a61-466f-a6d1-1fde911bfd95",
        "Organization.Read.All": "4908d5b9-3fb2-4b1e-9336-1888b7937185",
        "Application.Read.All": "c79f8feb-a9db-4090-85f9-90d820caa0eb",
        "Application.ReadWrite.All": "bdfbf15f-ee85-4955-8675-146e8e5296b5",
        "AppRoleAssignment.ReadWrite.All": "84bccea3-f856-4a8a-967b-dbe0a3d53a64",
        "DeviceManagementManagedDevices.Read.All": "314874da-47d6-4978-88dc-cf0d37f0bb82",
        "RoleManagement.Read.Directory": "741c54c3-0c1e-44a1-818b-3f97ab4e8c83",
        # GDAP and consent (ids as public permission lists give them; the first unverified).
        "DelegatedAdminRelationship.Read.All": "0c0064ea-477b-4130-82a5-4c2cc4ff68aa",
        "DelegatedAdminRelationship.ReadWrite.All": "885f682f-a990-4bad-a642-36736a74b0c7",
        "DelegatedPermissionGrant.ReadWrite.All": "41ce6ca6-6826-4807-84f1-1c82854f7ee5",
        "Mail.Read": "570282fd-fa5c-430d-a7fd-fc8dc98a9dca",
        "Files.Read.All": "df85f4d6-205c-4ac5-a5ea-6bf408dba283",
        "openid": "37f7f235-527c-4136-accd-4a02d197296e",
        "profile": "14dad69e-099b-42c9-810b-d002981feec1",
        "email": "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0",
        "offline_access": "7427e0e9-2fba-42fe-b0c0-848c9e6a8182",
    },
)

PERMISSIONS_BY_ID: dict[str, Permission] = {
    p.id: p for p in [*APPLICATION_PERMISSIONS.values(), *DELEGATED_PERMISSIONS.values()]
}

# Scopes the identity platform adds by itself and never puts in `scp` for a resource.
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
