"""The partner's own operations: Partner Center customers, the partner-managed app's set-up, and
onboarding new customers through the propagation of their partner relationship.

    center       PartnerCenterClient: list (continuation paging), get, create (idempotent);
                 PartnerCenterClient.for_region(provider, region) for a configured region
    auth         AdminSignIn: a partner administrator's sign-in for set-up
    setup        setup_partner_app: register, least privilege, credential, AdminAgents, config
    permissions  plan_permissions: least-privileged Graph permissions within the CSP rule
    onboarding   onboard(provider, new): create → wait → fresh token → smoke test, resumable

``PartnerCenterTokens`` (app-only Partner Center tokens) belongs to the token layer
(:mod:`cspgraph.identity`) and is re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cspgraph.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from cspgraph.identity.partner_center import PartnerCenterTokens
    from cspgraph.partner.auth import (
        GRAPH_CLI_CLIENT_ID,
        SETUP_SCOPES,
        AdminAccount,
        AdminSignIn,
        DeviceCodePrompt,
        PendingAdminSignIn,
    )
    from cspgraph.partner.center import (
        BillingAddress,
        CreatedCustomer,
        Customer,
        CustomerNotFoundError,
        DomainInUseError,
        NewCustomer,
        NotYourCustomerError,
        PartnerCenterClient,
        PartnerCenterTokenSource,
        Secret,
    )
    from cspgraph.partner.onboarding import (
        Attempt,
        Clock,
        EmulatorClock,
        OnboardingProgress,
        OnboardingResult,
        OnboardingSettings,
        OnboardingStore,
        OnboardingTimeout,
        SystemClock,
        onboard,
        onboard_customer,
        young_tenant_policy,
        young_tenants,
    )
    from cspgraph.partner.permissions import PermissionPlan, check_csp_scope, plan_permissions
    from cspgraph.partner.setup import (
        SetupOptions,
        SetupReport,
        SetupStep,
        StepStatus,
        setup_partner_app,
    )

__all__ = [
    "GRAPH_CLI_CLIENT_ID",
    "SETUP_SCOPES",
    "AdminAccount",
    "AdminSignIn",
    "Attempt",
    "BillingAddress",
    "Clock",
    "CreatedCustomer",
    "Customer",
    "CustomerNotFoundError",
    "DeviceCodePrompt",
    "DomainInUseError",
    "EmulatorClock",
    "NewCustomer",
    "NotYourCustomerError",
    "OnboardingProgress",
    "OnboardingResult",
    "OnboardingSettings",
    "OnboardingStore",
    "OnboardingTimeout",
    "PartnerCenterClient",
    "PartnerCenterTokenSource",
    "PartnerCenterTokens",
    "PendingAdminSignIn",
    "PermissionPlan",
    "Secret",
    "SetupOptions",
    "SetupReport",
    "SetupStep",
    "StepStatus",
    "SystemClock",
    "check_csp_scope",
    "onboard",
    "onboard_customer",
    "plan_permissions",
    "setup_partner_app",
    "young_tenant_policy",
    "young_tenants",
]

# name → the submodule that defines it; imported on first use: a fleet sync needs only ``center``,
# not set-up (cryptography, tomli_w) or onboarding (the Graph client).
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        (
            "GRAPH_CLI_CLIENT_ID",
            "SETUP_SCOPES",
            "AdminAccount",
            "AdminSignIn",
            "DeviceCodePrompt",
            "PendingAdminSignIn",
        ),
        "auth",
    ),
    "PartnerCenterTokens": "cspgraph.identity.partner_center",
    **dict.fromkeys(
        (
            "BillingAddress",
            "CreatedCustomer",
            "Customer",
            "CustomerNotFoundError",
            "DomainInUseError",
            "NewCustomer",
            "NotYourCustomerError",
            "PartnerCenterClient",
            "PartnerCenterTokenSource",
            "Secret",
        ),
        "center",
    ),
    **dict.fromkeys(
        (
            "Attempt",
            "Clock",
            "EmulatorClock",
            "OnboardingProgress",
            "OnboardingResult",
            "OnboardingSettings",
            "OnboardingStore",
            "OnboardingTimeout",
            "SystemClock",
            "onboard",
            "onboard_customer",
            "young_tenant_policy",
            "young_tenants",
        ),
        "onboarding",
    ),
    **dict.fromkeys(
        (
            "PermissionPlan",
            "check_csp_scope",
            "plan_permissions",
        ),
        "permissions",
    ),
    **dict.fromkeys(
        (
            "SetupOptions",
            "SetupReport",
            "SetupStep",
            "StepStatus",
            "setup_partner_app",
        ),
        "setup",
    ),
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
