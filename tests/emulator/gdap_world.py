"""A small GDAP world for the GDAP tests: one partner with security groups, one GDAP-only customer
(no DAP) with an active relationship, one DAP customer, and a stand-alone tenant.

Partner users: ``agent@`` (AdminAgents, in "GDAP Helpdesk", which is nested in "GDAP Readers"),
``tech@`` (in "GDAP User Admins" only, not AdminAgents), ``intune@`` (in "GDAP Intune"),
``admin@`` (Global Administrator of the partner). The app holds the GDAP API permissions and the
partner tenant has the "Partner Customer Delegated Administration" service principal.
"""

from __future__ import annotations

from typing import Any

from csp_emulator import roles

PARTNER = "partner.com"
GDAP_CUSTOMER = "gdapco.com"
DAP_CUSTOMER = "dapco.com"
STANDALONE = "alone.com"
APP_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
APP_SECRET = "app-secret-na"
ACTIVE_NAME = "Fabrikam-GDAP-Gdapco"
PASSWORDS = {"agent": "P@ss-agent", "tech": "P@ss-tech", "intune": "P@ss-intune"}
APP_ROLES = ["User.Read.All", "Group.Read.All", "DelegatedAdminRelationship.ReadWrite.All"]


def gdap_world(**settings: Any) -> dict[str, Any]:
    return {
        "settings": {"throttling": {"enabled": False}, "assignment_delay": "1m",
                     "consent_delay": "1m", **settings},
        "tenant": [
            {
                "domain": PARTNER,
                "kind": "partner",
                "gdap_api": True,
                "user": [
                    {"upn": "agent@partner.com", "password": PASSWORDS["agent"],
                     "groups": ["AdminAgents"]},
                    {"upn": "tech@partner.com", "password": PASSWORDS["tech"]},
                    {"upn": "intune@partner.com", "password": PASSWORDS["intune"]},
                    {"upn": "admin@partner.com", "password": "P@ss-admin",
                     "roles": ["Global Administrator"]},
                ],
                "group": [
                    {"display_name": "GDAP Readers", "member_groups": ["GDAP Helpdesk"]},
                    {"display_name": "GDAP Helpdesk", "members": ["agent@partner.com"]},
                    {"display_name": "GDAP User Admins", "members": ["tech@partner.com"]},
                    {"display_name": "GDAP Intune", "members": ["intune@partner.com"]},
                    {"display_name": "GDAP App Admins", "members": ["agent@partner.com"]},
                ],
                "app": [
                    {
                        "display_name": "Fabrikam CSP app",
                        "client_id": APP_ID,
                        "client_secret": APP_SECRET,
                        "admin_agents": True,
                        "application_permissions": APP_ROLES,
                        "delegated_permissions": ["Directory.AccessAsUser.All",
                                                  "DelegatedAdminRelationship.ReadWrite.All",
                                                  "DeviceManagementManagedDevices.Read.All"],
                        "redirect_uris": ["http://localhost"],
                    }
                ],
            },
            {
                "domain": GDAP_CUSTOMER,
                "partner": PARTNER,
                "dap": False,
                "generate": {"users": 5, "groups": 2, "devices": 3, "managed_devices": 3,
                             "seed": 2},
                "consent": [{"app": APP_ID}],
            },
            {"domain": DAP_CUSTOMER, "partner": PARTNER, "generate": {"users": 3, "seed": 3}},
            {"domain": STANDALONE, "generate": {"users": 2, "seed": 4}},
        ],
        "gdap": [
            {
                "partner": PARTNER,
                "customer": GDAP_CUSTOMER,
                "display_name": ACTIVE_NAME,
                "roles": ["Directory Readers", "Helpdesk Administrator", "User Administrator",
                          "Intune Administrator", "Cloud Application Administrator",
                          "Privileged Role Administrator"],
                "activated_ago": "30d",
                "assignment": [
                    {"group": "GDAP Readers", "roles": ["Directory Readers"]},
                    {"group": "GDAP User Admins", "roles": ["User Administrator"]},
                    {"group": "GDAP Intune", "roles": ["Intune Administrator"]},
                    {"group": "GDAP App Admins", "roles": ["Cloud Application Administrator",
                                                           "Privileged Role Administrator"]},
                ],
            },
        ],
    }  # fmt: skip


ROLE_IDS = {
    "readers": roles.DIRECTORY_READERS,
    "user_admin": roles.USER_ADMINISTRATOR,
    "intune": roles.INTUNE_ADMINISTRATOR,
    "global_admin": roles.GLOBAL_ADMINISTRATOR,
}
