"""The partner's own operations: Partner Center customers, the partner-managed app's set-up, and
onboarding new customers through the propagation of their partner relationship.

    center       PartnerCenterClient: list (continuation paging), get, create (idempotent)
    auth         PartnerCenterTokens (app-only, partner tenant); AdminSignIn (set-up)
    setup        setup_partner_app: register, least privilege, credential, AdminAgents, config
    permissions  plan_permissions: least-privileged Graph permissions within the CSP rule
    onboarding   onboard_customer: create → wait → fresh token → smoke test, resumable
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cspgraph.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from cspgraph.partner.auth import (
        GRAPH_CLI_CLIENT_ID,
        SETUP_SCOPES,
        AdminAccount,
        AdminSignIn,
        DeviceCodePrompt,
        PartnerCenterTokens,
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
    "onboard_customer",
    "plan_permissions",
    "setup_partner_app",
    "young_tenant_policy",
    "young_tenants",
]

# name → the submodule that defines it; imported on first use: a fleet sync needs only ``auth``
# and ``center``, not set-up (cryptography, tomli_w) or onboarding (the Graph client).
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        (
            "GRAPH_CLI_CLIENT_ID",
            "SETUP_SCOPES",
            "AdminAccount",
            "AdminSignIn",
            "DeviceCodePrompt",
            "PartnerCenterTokens",
            "PendingAdminSignIn",
        ),
        "auth",
    ),
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
