"""A small emulator world with every finding the checks look for planted in it, next to a
customer that has none: the store a sync makes of it is what the check, report, export,
notify and dashboard tests read.

=================  ==========================================================================
customer           what is in it
=================  ==========================================================================
Clean Co           one Global Administrator, no guests, every licence seat used, three
                   managed devices: compliant, encrypted, current, supported
Risky Ltd          six Global Administrators (one disabled), a disabled user holding a
                   licence, two guests, 15 unused seats, managed devices: stale (60 days),
                   non-compliant, unencrypted, Windows 10 22H2, iOS 16, Android 11
No Admin Inc       no Global Administrator at all
No Intune GmbH     no Intune licence: managed devices unknown, not 0
=================  ==========================================================================

The NA partner app may read its own registration (Application.Read.All) and its secret ends in
ten days; the EU app may not, so its credential end is unknown. Activity times are relative to
the world's clock when it loads.
"""

from __future__ import annotations

from typing import Any

from csp_emulator.world.model import World, iso
from csp_emulator.world.objects import managed_device_json
from csp_emulator.world.worldfile import DEMO_PARTNERS, demo_world_data, load_world_data

CLEAN, RISKY, NO_ADMIN, NO_INTUNE = (
    "clean.example",
    "risky.example",
    "noadmin.example",
    "nointune.example",
)
NAMES = {
    CLEAN: "Clean Co",
    RISKY: "Risky Ltd",
    NO_ADMIN: "No Admin Inc",
    NO_INTUNE: "No Intune GmbH",
}
SECRET_DAYS_LEFT = 10
DAY = 86400.0


def _user(upn: str, **extra: Any) -> dict[str, Any]:
    return {"upn": upn, "password": "Pw-1", **extra}


def planted_world_data() -> dict[str, Any]:
    data = demo_world_data(0, seed=5, gdap=False)  # the DAP fleet, planted by hand
    for tenant in data["tenant"]:
        for app in tenant.get("app", []):
            app["application_permissions"] = [
                *app["application_permissions"],
                "RoleManagement.Read.Directory",
                *(["Application.Read.All"] if tenant["region"] == "NA" else []),
            ]
    na = DEMO_PARTNERS["NA"]["domain"]
    eu = DEMO_PARTNERS["EU"]["domain"]
    data["tenant"] += [
        {
            "domain": CLEAN,
            "display_name": NAMES[CLEAN],
            "partner": na,
            "license": [{"sku": "SPB", "units": 2}],
            "user": [
                _user(f"boss@{CLEAN}", roles=["Global Administrator"], licenses=["SPB"]),
                _user(f"worker@{CLEAN}", licenses=["SPB"]),
            ],
        },
        {
            "domain": RISKY,
            "display_name": NAMES[RISKY],
            "partner": na,
            "license": [{"sku": "SPB", "units": 20}],
            "user": [
                *(
                    _user(f"ga{i}@{RISKY}", roles=["Global Administrator"], licenses=["SPB"])
                    for i in range(4)
                ),
                _user(f"oldadmin@{RISKY}", roles=["Global Administrator"], account_enabled=False),
                _user(f"leaver@{RISKY}", licenses=["SPB"], account_enabled=False),
                _user(f"helpdesk@{RISKY}", roles=["User Administrator"]),
                _user(f"partner.one_ext.com#EXT#@{RISKY}", user_type="Guest"),
                _user(f"partner.two_ext.com#EXT#@{RISKY}", user_type="Guest"),
            ],
        },
        {
            "domain": NO_ADMIN,
            "display_name": NAMES[NO_ADMIN],
            "partner": eu,
            "region": "EU",
            "license": [{"sku": "SPE_E3", "units": 1}],
            # A user of this name stops the loader from adding its default Global Administrator.
            "user": [_user("admin@noadmin.onmicrosoft.com", licenses=["SPE_E3"])],
        },
        {
            "domain": NO_INTUNE,
            "display_name": NAMES[NO_INTUNE],
            "partner": eu,
            "region": "EU",
            "intune": False,
        },
    ]
    return data


# (name, os, version, compliance, encrypted, days since the last check-in)
CLEAN_DEVICES = [
    ("CLEAN-WIN-1", "Windows", "10.0.26200.7171", "compliant", True, 0.5),
    ("CLEAN-IOS-1", "iOS", "18.6.2", "compliant", True, 1),
    ("CLEAN-AND-1", "Android", "15", "compliant", True, 2),
]
RISKY_DEVICES = [
    ("RISKY-STALE", "Windows", "10.0.26200.7171", "compliant", True, 60),
    ("RISKY-NONCOMPLIANT", "Windows", "10.0.26200.7171", "noncompliant", True, 1),
    ("RISKY-UNENCRYPTED", "macOS", "15.6", "compliant", False, 1),
    ("RISKY-WIN10", "Windows", "10.0.19045.5131", "compliant", True, 1),
    ("RISKY-IOS16", "iOS", "16.7.10", "compliant", True, 1),
    ("RISKY-ANDROID11", "Android", "11", "compliant", True, 1),
]


def planted_world() -> World:
    world = load_world_data(planted_world_data(), source="<planted world>")
    now = world.clock.now()
    for domain, devices in ((CLEAN, CLEAN_DEVICES), (RISKY, RISKY_DEVICES)):
        tenant = world.tenant(domain)
        assert tenant is not None
        for i, (name, os, version, state, encrypted, days) in enumerate(devices):
            device = managed_device_json(
                tenant, None, None, name, (os, version, "Contoso", "Model"), state, i,
                last_sync=now - days * DAY,
            )  # fmt: skip
            device["isEncrypted"] = encrypted
            tenant.add("managedDevices", device)
    # The NA app's secret ends soon (the world file pins secrets far in the future).
    partner = world.tenant(DEMO_PARTNERS["NA"]["domain"])
    assert partner is not None
    app = partner.application_by_app_id(DEMO_PARTNERS["NA"]["client_id"])
    assert app is not None
    end = now + SECRET_DAYS_LEFT * DAY
    for public in app["passwordCredentials"]:
        public["endDateTime"] = iso(end)
    for private in app["_secrets"]:
        private["end"] = end
    return world
