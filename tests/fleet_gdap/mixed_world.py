"""The mixed fleet of the GDAP fleet tests: the demo world's DAP customers and its GDAP half
(docs/emulator.md, "The demo world's GDAP half"), whose apps may read GDAP relationships.

NA (partner.com): DAP customers, and Northwind Health / Lakeshore Retail (GDAP, consented), Zava
Outdoors (GDAP ending in 15 days), Woodgrove Pharmacy (GDAP expired, consent kept), Skyline
Dental (GDAP awaiting approval), Cedar Logistics (GDAP active, no consent), Harborview Bakery
(stand-alone). EU (partner-eu.com): DAP customers only.
"""

from __future__ import annotations

from typing import Any

from csp_emulator.world.worldfile import GDAP_READ_PERMISSION, demo_world_data

GDAP = {
    "northwind": "northwindhealth.onmicrosoft.com",
    "lakeshore": "lakeshoreretail.onmicrosoft.com",
    "zava": "zavaoutdoors.onmicrosoft.com",
    "woodgrove": "woodgrovepharmacy.onmicrosoft.com",
    "skyline": "skylinedental.onmicrosoft.com",
    "cedar": "cedarlogistics.onmicrosoft.com",
    "harborview": "harborviewbakery.onmicrosoft.com",
}


MLT_NAME = "MLT_transition_readonly"
# Reseller customers without DAP whose app consent holds delegated scopes only (what Partner
# Center's applicationconsents grants): reached through the service account, within its roles.
DELEGATED = {
    "fjord": "fjorddental.onmicrosoft.com",  # active relationship
    "gale": "galefreight.onmicrosoft.com",  # its relationship expired
}
SERVICE_ACCOUNT = {"upn": "gdap-admin@partner.com", "password": "P@ssw0rd-gdap-admin"}


def mixed_world_data(
    dap_customers: int = 3, *, read_gdap: bool = True, mlt: bool = False
) -> dict[str, Any]:
    """With ``mlt``: the first NA DAP customer also has an active ``MLT_…`` relationship (what
    Microsoft's transition tools left behind)."""
    data = demo_world_data(dap_customers, seed=11)
    _add_delegated_customers(data)
    if mlt:
        first = next(
            t
            for t in data["tenant"]
            if t.get("kind") == "customer"
            and t.get("partner") == "partner.com"
            and t.get("dap", True)
        )
        data["gdap"].append({
            "partner": "partner.com", "customer": first["domain"], "display_name": MLT_NAME,
            "roles": ["Directory Readers"], "activated_ago": "10d",
        })  # fmt: skip
    for tenant in data["tenant"]:
        for app in tenant.get("app", []):
            # The demo world's apps read GDAP relationships (GDAP_READ_PERMISSION); without
            # read_gdap, they may not.
            app["application_permissions"] = [
                *(p for p in app["application_permissions"]
                  if read_gdap or p != GDAP_READ_PERMISSION),
                "RoleManagement.Read.Directory",
            ]  # fmt: skip
    return data


def dap_domains(data: dict[str, Any]) -> list[str]:
    """The customers with DAP (every one the GDAP half and the delegated ones are not)."""
    gdap = set(GDAP.values()) | set(DELEGATED.values())
    return [
        t["domain"]
        for t in data["tenant"]
        if t.get("kind") != "partner" and t["domain"] not in gdap
    ]


def _add_delegated_customers(data: dict[str, Any]) -> None:
    na_app = next(t for t in data["tenant"] if t["domain"] == "partner.com")["app"][0]
    na_app["delegated_permissions"] = [
        *na_app["delegated_permissions"],
        "DeviceManagementManagedDevices.Read.All",
    ]
    for index, (key, domain) in enumerate(DELEGATED.items()):
        data["tenant"].append({
            "domain": domain, "display_name": key.title() + " (delegated)", "region": "NA",
            "kind": "customer", "partner": "partner.com", "dap": False,
            "generate": {"users": 7, "groups": 2, "devices": 3, "managed_devices": 2,
                         "seed": 900 + index},
            "consent": [{"app": na_app["client_id"], "app_roles": []}],
        })  # fmt: skip
        relationship: dict[str, Any] = {
            "partner": "partner.com", "customer": domain,
            "display_name": f"Fabrikam-GDAP-{key}",
            "roles": ["Directory Readers", "Intune Administrator"],
            "assignment": [
                {"group": "GDAP Directory Readers", "roles": ["Directory Readers"]},
                {"group": "GDAP Intune Administrators", "roles": ["Intune Administrator"]},
            ],
        }  # fmt: skip
        if key == "gale":
            relationship["status"] = "expired"
        else:
            relationship["activated_ago"] = "40d"
        data["gdap"].append(relationship)
