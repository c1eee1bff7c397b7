"""Directory and Intune objects in Microsoft Graph's JSON shape, and a seeded generator of them.

Generated tenants are deterministic: the same seed gives the same users, groups, devices and
managed devices with the same ids, so tests can know the expected counts and values in advance.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from csp_emulator import wellknown
from csp_emulator.world.model import Tenant, World, iso, service_principal_json, stable_id

# A fixed epoch for generated timestamps (creation, enrolment), so they do not depend on when the
# world loads; activity times count back from the load instead (see generate).
GENERATED_EPOCH = 1_700_000_000.0

FIRST_NAMES = [
    "Adele",
    "Alex",
    "Allan",
    "Ben",
    "Chloe",
    "Christie",
    "Debra",
    "Diego",
    "Emily",
    "Enrico",
    "Grady",
    "Henrietta",
    "Irvin",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Patti",
    "Pradeep",
    "Raul",
    "Sanjay",
    "Sofia",
    "Tomas",
    "Valentina",
    "Wei",
    "Yuki",
    "Zara",
    "Amir",
    "Bianca",
    "Carlos",
    "Dana",
    "Elif",
    "Femi",
    "Greta",
    "Hugo",
]
LAST_NAMES = [
    "Vance",
    "Wilber",
    "Delgado",
    "Kurt",
    "Griffin",
    "Lambert",
    "Bowen",
    "Siciliani",
    "Braun",
    "Gomez",
    "Johnson",
    "Morgan",
    "Pressler",
    "Sherman",
    "Wright",
    "Lee",
    "Holt",
    "Bell",
    "Adams",
    "Cole",
    "Petrov",
    "Nakamura",
    "Okafor",
    "Rossi",
    "Schmidt",
    "Silva",
    "Tanaka",
    "Novak",
    "Dubois",
    "Haddad",
    "Kowalski",
    "Larsen",
    "Moreau",
]
DEPARTMENTS = ("Sales", "Marketing", "Engineering", "Finance", "Operations", "Legal", "Support")
JOB_TITLES = ("Manager", "Analyst", "Engineer", "Director", "Specialist", "Consultant")
GROUP_NAMES = (
    "All Staff", "Sales Team", "Engineering", "Finance", "Project Phoenix", "Remote Workers",
    "Leadership", "Support Desk", "Marketing", "IT Admins", "Contractors", "London Office",
)  # fmt: skip
# Current releases and one laggard (Windows 10 22H2, out of support since October 2025), so that a
# generated fleet shows what an out-of-support device looks like.
OS_MIX = (
    ("Windows", "10.0.26200.7171", "Microsoft Corporation", "Surface Laptop 7"),
    ("Windows", "10.0.19045.5131", "Dell Inc.", "Latitude 7440"),
    ("iOS", "18.6.2", "Apple", "iPhone 16"),
    ("Android", "15", "samsung", "SM-S928B"),
    ("macOS", "15.6", "Apple", "MacBookPro18,3"),
)
# Share of generated users holding the tenant's first licence, and of managed devices (and
# directory devices) that stopped checking in a month or more before the world loaded.
LICENSED_SHARE = 0.85
STALE_SHARE = 0.04
COMPLIANCE_WEIGHTS = (
    ("compliant", 70),
    ("noncompliant", 15),
    ("inGracePeriod", 5),
    ("unknown", 5),
    ("error", 3),
    ("conflict", 2),
)


def user_json(
    tenant: Tenant,
    upn: str,
    *,
    display_name: str | None = None,
    given_name: str | None = None,
    surname: str | None = None,
    password: str | None = None,
    account_enabled: bool = True,
    department: str | None = None,
    job_title: str | None = None,
    created: float | None = None,
    object_id: str | None = None,
    user_type: str = "Member",
    licenses: Sequence[str] = (),
) -> dict[str, Any]:
    """A user; ``licenses`` are sku ids (``assignedLicenses``)."""
    local = upn.split("@", 1)[0]
    name = display_name or local.replace(".", " ").title()
    return {
        "id": object_id or stable_id(tenant.id, "user", upn),
        "userPrincipalName": upn,
        "displayName": name,
        "givenName": given_name,
        "surname": surname,
        "mail": upn,
        "mailNickname": local,
        "accountEnabled": account_enabled,
        "userType": user_type,
        "assignedLicenses": [{"disabledPlans": [], "skuId": sku} for sku in licenses],
        "jobTitle": job_title,
        "department": department,
        "businessPhones": [],
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-US",
        "usageLocation": tenant.country,
        "companyName": tenant.display_name,
        "createdDateTime": iso(created if created is not None else GENERATED_EPOCH),
        "_password": password,
    }


def group_json(
    tenant: Tenant, display_name: str, *, security: bool = True, object_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": object_id or stable_id(tenant.id, "group", display_name),
        "displayName": display_name,
        "description": display_name,
        "mailEnabled": not security,
        "mailNickname": display_name.replace(" ", ""),
        "securityEnabled": security,
        "groupTypes": [] if security else ["Unified"],
        "isAssignableToRole": None,
        "createdDateTime": iso(GENERATED_EPOCH),
        "visibility": None if security else "Private",
        "_members": [],
    }


def device_json(
    tenant: Tenant,
    name: str,
    os: str,
    os_version: str,
    index: int,
    enabled: bool = True,
    last_sign_in: float | None = None,
) -> dict[str, Any]:
    object_id = stable_id(tenant.id, "device", name)
    return {
        "id": object_id,
        "deviceId": stable_id(tenant.id, "deviceId", name),
        "displayName": name,
        "operatingSystem": os,
        "operatingSystemVersion": os_version,
        "accountEnabled": enabled,
        "isCompliant": None,
        "isManaged": None,
        "trustType": "AzureAd",
        "approximateLastSignInDateTime": iso(
            GENERATED_EPOCH + 3600 * index if last_sign_in is None else last_sign_in
        ),
        "registrationDateTime": iso(GENERATED_EPOCH - 86400 * (index % 90)),
        "createdDateTime": iso(GENERATED_EPOCH - 86400 * (index % 90)),
    }


def managed_device_json(
    tenant: Tenant,
    device: dict[str, Any] | None,
    user: dict[str, Any] | None,
    name: str,
    os_row: tuple[str, str, str, str],
    compliance: str,
    index: int,
    last_sync: float | None = None,
) -> dict[str, Any]:
    os, os_version, manufacturer, model = os_row
    enrolled = GENERATED_EPOCH - 86400 * (index % 120)
    return {
        "@odata.type": "#microsoft.graph.managedDevice",
        "id": stable_id(tenant.id, "managedDevice", name),
        "userId": user["id"] if user else None,
        "deviceName": name,
        "managedDeviceName": f"{user['mailNickname'] if user else 'device'}_{os}_{index}",
        "managedDeviceOwnerType": "company" if index % 5 else "personal",
        "operatingSystem": os,
        "osVersion": os_version,
        "complianceState": compliance,
        "jailBroken": "False" if os in ("iOS", "Android") else "Unknown",
        "managementAgent": "mdm",
        "userPrincipalName": user["userPrincipalName"] if user else None,
        "userDisplayName": user["displayName"] if user else None,
        "emailAddress": user["mail"] if user else None,
        "model": model,
        "manufacturer": manufacturer,
        "serialNumber": f"SN{index:08d}",
        "imei": "",
        "meid": "",
        "phoneNumber": "",
        "wiFiMacAddress": f"00155d{index:06x}",
        "ethernetMacAddress": "",
        "azureADRegistered": device is not None,
        "azureADDeviceId": device["deviceId"] if device else "00000000-0000-0000-0000-000000000000",
        "isEncrypted": compliance == "compliant",
        "isSupervised": os == "iOS",
        "enrolledDateTime": iso(enrolled),
        "lastSyncDateTime": iso(
            GENERATED_EPOCH + 3600 * (index % 48) if last_sync is None else last_sync
        ),
        "complianceGracePeriodExpirationDateTime": "9999-12-31T23:59:59Z",
        "totalStorageSpaceInBytes": 256 * 1024**3,
        "freeStorageSpaceInBytes": (64 + index % 128) * 1024**3,
        "deviceEnrollmentType": "windowsAzureADJoin" if os == "Windows" else "userEnrollment",
        "deviceRegistrationState": "registered",
        "partnerReportedThreatState": "unknown",
        "deviceActionResults": [],
    }


def directory_role_json(tenant: Tenant, template_id: str) -> dict[str, Any]:
    return {
        "id": stable_id(tenant.id, "directoryRole", template_id),
        "displayName": wellknown.DIRECTORY_ROLES[template_id],
        "description": wellknown.DIRECTORY_ROLES[template_id],
        "roleTemplateId": template_id,
        "_members": [],
    }


def subscribed_sku_json(tenant: Tenant, part_number: str, units: int) -> dict[str, Any]:
    """A licence the tenant bought, without ``consumedUnits``: Graph counts the assignments,
    and so does the emulator when it serves the list (graph/directory.py)."""
    sku = wellknown.SKUS[part_number]
    return {
        "id": f"{tenant.id}_{sku.id}",
        "accountId": tenant.id,
        "accountName": tenant.display_name,
        "appliesTo": "User",
        "capabilityStatus": "Enabled",
        "skuId": sku.id,
        "skuPartNumber": sku.part_number,
        "subscriptionIds": [stable_id(tenant.id, "subscription", sku.id)],
        "prepaidUnits": {"enabled": units, "suspended": 0, "warning": 0, "lockedOut": 0},
        "servicePlans": [
            {
                "servicePlanId": plan_id,
                "servicePlanName": plan_name,
                "provisioningStatus": "Success",
                "appliesTo": "User",
            }
            for plan_id, plan_name in sku.service_plans
        ],
    }


def compliance_policy_json(tenant: Tenant, name: str, platform: str) -> dict[str, Any]:
    return {
        "@odata.type": f"#microsoft.graph.{platform}CompliancePolicy",
        "id": stable_id(tenant.id, "compliancePolicy", name),
        "displayName": name,
        "description": f"Baseline compliance for {platform}",
        "createdDateTime": iso(GENERATED_EPOCH),
        "lastModifiedDateTime": iso(GENERATED_EPOCH),
        "version": 1,
    }


def organization_json(tenant: Tenant, world: World) -> dict[str, Any]:
    """The tenant's ``/organization`` entry, built from the tenant so it is never stale."""
    return {
        "id": tenant.id,
        "displayName": tenant.display_name,
        "countryLetterCode": tenant.country,
        "tenantType": "AAD",
        "createdDateTime": iso(tenant.created_at),
        "verifiedDomains": [
            {
                "name": d,
                "type": "Managed",
                "isDefault": i == 0,
                "isInitial": d == tenant.initial_domain,
                "capabilities": "Email, OfficeCommunicationsOnlineMeeting",
            }
            for i, d in enumerate(tenant.domains)
        ],
        "partnerTenantType": "resellerPartnerDelegatedAdmin" if tenant.kind == "partner" else None,
        "assignedPlans": [],
        "businessPhones": [],
        "city": None,
        "street": None,
        "postalCode": None,
        "preferredLanguage": "en",
        "technicalNotificationMails": [f"admin@{tenant.initial_domain}"],
    }


def domains_json(tenant: Tenant) -> list[dict[str, Any]]:
    return [
        {
            "id": d,
            "isDefault": i == 0,
            "isInitial": d == tenant.initial_domain,
            "isVerified": True,
            "isAdminManaged": True,
            "authenticationType": "Managed",
            "supportedServices": ["Email", "OfficeCommunicationsOnlineMeeting"],
        }
        for i, d in enumerate(tenant.domains)
    ]


def seed_directory(tenant: Tenant) -> None:
    """What every tenant has from birth: the Graph and Partner Center service principals and the
    activated Global Administrator role."""
    graph_sp = service_principal_json(
        stable_id(tenant.id, "sp", wellknown.GRAPH_APP_ID),
        wellknown.GRAPH_APP_ID,
        "Microsoft Graph",
        "f8cdef31-a31e-4b4a-93e4-5f571e91255a",  # Microsoft Services' tenant
    )
    graph_sp["appRoles"] = [
        {
            "id": p.id,
            "value": p.name,
            "displayName": p.name,
            "allowedMemberTypes": ["Application"],
            "isEnabled": True,
        }
        for p in wellknown.APPLICATION_PERMISSIONS.values()
    ]
    graph_sp["oauth2PermissionScopes"] = [
        {"id": p.id, "value": p.name, "type": "Admin", "isEnabled": True}
        for p in wellknown.DELEGATED_PERMISSIONS.values()
    ]
    tenant.add("servicePrincipals", graph_sp)
    tenant.add(
        "directoryRoles",
        directory_role_json(tenant, wellknown.ROLE_GLOBAL_ADMIN),
    )
    if tenant.kind == "customer" and tenant.intune_licensed:
        # Intune needs a licence: an Intune-licensed customer has bought one (25 seats until a
        # world file or the generator says how many).
        tenant.add("subscribedSkus", subscribed_sku_json(tenant, wellknown.DEFAULT_SKU, 25))
    if tenant.kind == "partner":
        for name in wellknown.PARTNER_AGENT_GROUPS:
            tenant.add("groups", group_json(tenant, name))


@dataclass(frozen=True)
class GenerateSpec:
    users: int = 0
    groups: int = 0
    devices: int = 0
    managed_devices: int = 0
    seed: int = 0
    guests: int = 0


def generate(tenant: Tenant, spec: GenerateSpec, now: float = GENERATED_EPOCH) -> None:
    """Fill a tenant with ``spec``'s synthetic objects, deterministically from ``spec.seed``.

    Activity times (a device's last sign-in, a managed device's last check-in) are counted back
    from ``now``, the moment the world loads, so a generated device is as fresh or as stale
    whenever the world is loaded; everything else is fixed. The licences, guests and stale
    devices are drawn from a random stream of their own, so that the rest of a tenant is what
    the same seed always gave."""
    rng = random.Random(f"{spec.seed}/{tenant.id}")
    extra = random.Random(f"{spec.seed}/{tenant.id}/activity")
    skus = list(tenant.objects["subscribedSkus"].values())
    licence = [skus[0]["skuId"]] if skus else []
    users: list[dict[str, Any]] = []
    for i in range(spec.users):
        first = FIRST_NAMES[i % len(FIRST_NAMES)]
        last = LAST_NAMES[(i // len(FIRST_NAMES) + i) % len(LAST_NAMES)]
        upn = f"{first.lower()}.{last.lower()}{i}@{tenant.default_domain}"
        users.append(
            tenant.add(
                "users",
                user_json(
                    tenant,
                    upn,
                    display_name=f"{first} {last}",
                    given_name=first,
                    surname=last,
                    password=f"Pw-{i}-{spec.seed}",
                    account_enabled=rng.random() > 0.08,
                    department=rng.choice(DEPARTMENTS),
                    job_title=rng.choice(JOB_TITLES),
                    created=GENERATED_EPOCH - 86400 * rng.randint(1, 900),
                    licenses=licence if extra.random() < LICENSED_SHARE else (),
                ),
            )
        )
    for i in range(spec.guests):
        first = FIRST_NAMES[(i * 7) % len(FIRST_NAMES)]
        last = LAST_NAMES[(i * 5) % len(LAST_NAMES)]
        mail = f"{first.lower()}.{last.lower()}{i}@guest-example.com"
        tenant.add(
            "users",
            user_json(
                tenant,
                f"{mail.replace('@', '_')}#EXT#@{tenant.initial_domain}",
                display_name=f"{first} {last} (guest)",
                given_name=first,
                surname=last,
                user_type="Guest",
                created=GENERATED_EPOCH - 86400 * extra.randint(1, 400),
            ),
        )
    for i in range(spec.groups):
        name = GROUP_NAMES[i % len(GROUP_NAMES)]
        if i >= len(GROUP_NAMES):
            name = f"{name} {i // len(GROUP_NAMES) + 1}"
        group = tenant.add("groups", group_json(tenant, name, security=rng.random() > 0.3))
        if users:
            for member in rng.sample(
                users, k=min(len(users), rng.randint(1, max(1, len(users) // 2)))
            ):
                tenant.add_member(group["id"], member["id"])
    devices: list[dict[str, Any]] = []
    for i in range(spec.devices):
        os_row = OS_MIX[rng.randrange(len(OS_MIX))]
        name = f"{tenant.default_domain.split('.')[0].upper()}-{os_row[0][:3].upper()}-{i:04d}"
        enabled = rng.random() > 0.05
        devices.append(
            tenant.add(
                "devices",
                device_json(
                    tenant, name, os_row[0], os_row[1], i, enabled, _last_seen(extra, now, i)
                ),
            )
        )
    states = [s for s, _ in COMPLIANCE_WEIGHTS]
    weights = [w for _, w in COMPLIANCE_WEIGHTS]
    for i in range(spec.managed_devices):
        device = devices[i] if i < len(devices) else None
        matching = [r for r in OS_MIX if device and r[0] == device["operatingSystem"]]
        os_row = matching[0] if matching else OS_MIX[rng.randrange(len(OS_MIX))]
        user = users[rng.randrange(len(users))] if users else None
        name = device["displayName"] if device else f"MD-{i:05d}"
        compliance = rng.choices(states, weights)[0]
        last_sync = _last_seen(extra, now, i)
        tenant.add(
            "managedDevices",
            managed_device_json(tenant, device, user, name, os_row, compliance, i, last_sync),
        )
    if spec.users or spec.guests:
        for sku in skus:
            # Bought: what is assigned and some spare seats, a few or a fifth more.
            spare = extra.randint(0, max(2, len(users) // 5))
            sku["prepaidUnits"]["enabled"] = assigned_units(tenant, sku["skuId"]) + spare
    if spec.managed_devices:
        for name, platform in (("Windows baseline", "windows10"), ("iOS baseline", "ios")):
            tenant.add("deviceCompliancePolicies", compliance_policy_json(tenant, name, platform))


def assigned_units(tenant: Tenant, sku_id: str) -> int:
    """Users holding ``sku_id``: Graph's ``consumedUnits`` of the tenant's subscribed sku."""
    return sum(
        1
        for user in tenant.objects["users"].values()
        for licence in user.get("assignedLicenses", ())
        if licence.get("skuId") == sku_id
    )


def _last_seen(rng: random.Random, now: float, index: int) -> float:
    """When a generated device last checked in: within the last two days, or for a few
    (STALE_SHARE) one to thirteen months ago."""
    if rng.random() < STALE_SHARE:
        return now - 86400 * rng.randint(31, 400)
    return now - 3600 * (index % 48)
