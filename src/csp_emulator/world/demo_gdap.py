"""The demo world's GDAP half: customers reached as Microsoft reaches them today.

Added to the DAP customers of the demo world (worldfile.demo_world_data), all served by the NA
partner (partner.com), none with DAP:

* Northwind Health and Lakeshore Retail: reseller customers with active GDAP relationships, their
  roles assigned to the partner's security groups, and the app consented (the roles the fleet
  sync needs, as the partner's onboarding would have granted them);
* Zava Outdoors: the same, but its relationship expires in 15 days;
* Woodgrove Pharmacy: its relationship expired; the app's consent stays (app-only still works);
* Skyline Dental: a relationship waiting for the customer's approval, not yet a customer;
* Cedar Logistics: an active GDAP relationship without any consent of the app, and no reseller
  relationship (a managed-services customer);
* Harborview Bakery: a stand-alone tenant, for the reseller invitation.

Partner Center lists only the reseller customers, so the fleet sync of ``make demo`` (which
lists Partner Center and uses app-only tokens) syncs the four consented ones and proves what it
proved before; the other three show what a GDAP-aware client must handle.
"""

from __future__ import annotations

from typing import Any

PARTNER = "partner.com"
GROUPS = {
    "readers": "GDAP Directory Readers",
    "users": "GDAP User Administrators",
    "intune": "GDAP Intune Administrators",
    "apps": "GDAP Cloud Application Administrators",
}
ROLES = [
    "Directory Readers",
    "User Administrator",
    "Intune Administrator",
    "Cloud Application Administrator",
]
TECH = {"upn": "gdap-tech@partner.com", "password": "P@ssw0rd-gdap"}
ADMIN = {"upn": "gdap-admin@partner.com", "password": "P@ssw0rd-gdap-admin"}


def partner_additions() -> dict[str, Any]:
    """What partner.com gets: the GDAP API's service principal, two technicians (the admin also
    in AdminAgents, which Partner Center's consent and the GDAP APIs ask of a caller), and the
    security groups the relationships' roles are assigned to."""
    return {
        "gdap_api": True,
        "user": [
            {"upn": TECH["upn"], "password": TECH["password"]},
            {"upn": ADMIN["upn"], "password": ADMIN["password"], "groups": ["AdminAgents"]},
        ],
        "group": [
            {"display_name": GROUPS["readers"], "members": [ADMIN["upn"]]},
            {"display_name": GROUPS["users"], "members": [TECH["upn"]]},
            {"display_name": GROUPS["intune"], "members": [TECH["upn"]]},
            {"display_name": GROUPS["apps"], "members": [ADMIN["upn"]]},
        ],
    }


def _assignments() -> list[dict[str, Any]]:
    return [
        {"group": GROUPS["readers"], "roles": ["Directory Readers"]},
        {"group": GROUPS["users"], "roles": ["User Administrator"]},
        {"group": GROUPS["intune"], "roles": ["Intune Administrator"]},
        {"group": GROUPS["apps"], "roles": ["Cloud Application Administrator"]},
    ]


def fleet(
    app_id: str, app_roles: list[str], seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(tenants, relationships) of the GDAP half, for the NA partner's ``app_id``."""
    consent = [{"app": app_id, "app_roles": app_roles}]
    # (name, domain slug, reseller customer, consented, users, relationship fields or None)
    customers: list[tuple[str, str, bool, bool, int, dict[str, Any] | None]] = [
        ("Northwind Health", "northwindhealth", True, True, 24, {"activated_ago": "120d"}),
        ("Lakeshore Retail", "lakeshoreretail", True, True, 18,
         {"activated_ago": "30d", "auto_extend": "P180D"}),
        ("Zava Outdoors", "zavaoutdoors", True, True, 12, {"activated_ago": "715d"}),
        ("Woodgrove Pharmacy", "woodgrovepharmacy", True, True, 15, {"status": "expired"}),
        ("Skyline Dental", "skylinedental", False, False, 9, {"status": "approvalPending"}),
        ("Cedar Logistics", "cedarlogistics", False, False, 14, {"activated_ago": "60d"}),
        ("Harborview Bakery", "harborviewbakery", False, False, 6, None),
    ]  # fmt: skip
    tenants: list[dict[str, Any]] = []
    relationships: list[dict[str, Any]] = []
    for index, (name, slug, reseller, consented, users, rel) in enumerate(customers):
        domain = f"{slug}.onmicrosoft.com"
        tenant: dict[str, Any] = {
            "domain": domain,
            "display_name": name,
            "region": "NA",
            "kind": "customer",
            "dap": False,
            "generate": {
                "users": users,
                "groups": 2,
                "devices": users // 2,
                "managed_devices": users // 3,
                "seed": seed + 500 + index,
            },
        }
        if reseller:
            tenant["partner"] = PARTNER
        if consented:
            tenant["consent"] = consent
        tenants.append(tenant)
        if rel is not None:
            relationship = {
                "partner": PARTNER,
                "customer": domain,
                "display_name": f"Fabrikam-GDAP-{slug}",
                "roles": ROLES,
                **rel,
            }
            if rel.get("status") != "approvalPending":
                relationship["assignment"] = _assignments()
            relationships.append(relationship)
    return tenants, relationships
