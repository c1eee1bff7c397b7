"""What Partner Center keeps and the rules it applies: the customers it created, creating one
(tenant, admin, reseller relationship), and the request limit per partner tenant."""

from __future__ import annotations

import math
import secrets
import string
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from csp_emulator import roles, wellknown
from csp_emulator.partner_center.errors import PartnerCenterError, domain_in_use
from csp_emulator.world import gdap
from csp_emulator.world.model import Relationship, Tenant, World, stable_id
from csp_emulator.world.objects import seed_directory, user_json
from csp_emulator.world.worldfile import add_role_member

CUSTOMER_RATE_LIMIT = 500  # requests per minute per partner tenant (wire-facts §3)
CUSTOMER_RATE_WINDOW = 60.0  # seconds, times throttling.window_scale

_PASSWORD_ALPHABET = string.ascii_letters + string.digits + "!#$%*+-=?@^_"


@dataclass
class CustomerRecord:
    """What Partner Center keeps about a customer it created (world-file customers have none)."""

    tenant_id: str
    domain: str
    commerce_id: str
    billing_profile: dict[str, Any]
    created_body: dict[str, Any]


@dataclass
class PartnerCenterState:
    records: dict[str, CustomerRecord] = field(default_factory=dict)
    # (partner tenant id, MS-RequestId) -> customer tenant id, for idempotent replays
    requests: dict[tuple[str, str], str] = field(default_factory=dict)
    # partner tenant id -> the arrival times of its counted requests in the last window, oldest
    # first (a sliding-window log; see rate_limit)
    windows: dict[str, deque[float]] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget the customer records, the request ids seen and the rate windows (the emulator's
        reset, which rebuilds the world too)."""
        self.records.clear()
        self.requests.clear()
        self.windows.clear()


@dataclass(frozen=True)
class NewCustomer:
    domain: str
    company_name: str
    country: str
    billing: dict[str, Any]  # lowercased keys, as sent
    address: dict[str, Any]
    organization_registration_number: str | None
    enable_gdap_by_default: bool | None


def _new_password() -> str:
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(14)) + "a1!"


def provision_customer(
    world: World, partner: Tenant, spec: NewCustomer
) -> tuple[Tenant, str, Relationship]:
    """The customer's tenant, its admin (whose password is returned once), and the reseller
    relationship that takes ``propagation_delay`` to reach the customer."""
    initial = spec.domain
    if not initial.endswith(".onmicrosoft.com"):
        initial = spec.domain.split(".")[0].replace("-", "") + ".onmicrosoft.com"
    domains = [spec.domain] if initial == spec.domain else [spec.domain, initial]
    tenant_id = stable_id("tenant", spec.domain)
    if tenant_id in world.tenants or any(world.domain_taken(d) for d in domains):
        raise domain_in_use(spec.domain)
    tenant = Tenant(
        id=tenant_id,
        display_name=spec.company_name,
        domains=domains,
        region=partner.region,
        cloud=partner.cloud,
        kind="customer",
        country=spec.country,
        created_at=world.clock.now(),
        intune_licensed=False,
    )
    world.add_tenant(tenant)
    seed_directory(tenant)
    password = _new_password()
    admin = tenant.add(
        "users",
        user_json(
            tenant, f"admin@{tenant.initial_domain}", password=password, created=tenant.created_at
        ),
    )
    add_role_member(tenant, wellknown.ROLE_GLOBAL_ADMIN, admin["id"])
    rel = world.add_relationship(partner, tenant, in_effect=False)
    if world.settings.new_customer_access == "gdap":
        # What Microsoft does today: no DAP; a default GDAP relationship unless the partner
        # said enableGDAPByDefault = false (wire-facts §4.1), its groups still to assign.
        rel.dap = False
        if spec.enable_gdap_by_default is not False:
            default_gdap_relationship(world, partner, tenant)
    return tenant, password, rel


# The roles of the default relationship (*unverified*: as partners describe Microsoft's default
# GDAP template; Partner Center does not publish it as data).
DEFAULT_GDAP_ROLES = (
    roles.DIRECTORY_READERS,
    roles.DIRECTORY_WRITERS,
    roles.LICENSE_ADMINISTRATOR,
    roles.SERVICE_SUPPORT_ADMINISTRATOR,
    roles.USER_ADMINISTRATOR,
    roles.PRIVILEGED_ROLE_ADMINISTRATOR,
    roles.HELPDESK_ADMINISTRATOR,
    roles.PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
)


def default_gdap_relationship(world: World, partner: Tenant, customer: Tenant) -> None:
    """The relationship a new customer gets by default: approved at creation, active once it
    has reached the tenant (``propagation_delay``), for two years."""
    now = world.clock.now()
    rel = gdap.Relationship(
        id=gdap.new_relationship_id(),
        partner_id=partner.id,
        display_name=f"Default_{partner.display_name}_{customer.display_name}"[
            : gdap.MAX_DISPLAY_NAME
        ],
        duration="P730D",
        roles=list(DEFAULT_GDAP_ROLES),
        created_at=now,
        customer_id=customer.id,
        customer_name=customer.display_name,
    )
    rel.lock_for_approval(now)
    rel.approve(customer.id, customer.display_name, now, world.settings.propagation_delay)
    world.gdap.add(rel)


def rate_limit(state: PartnerCenterState, world: World, partner: Tenant) -> None:
    """500 requests a minute per partner tenant on the customer endpoints.

    Counted in a true sliding window (a log of arrival times), not Graph's sliding-window
    counters: Partner Center's refusals are Azure API Management's rate-limit policy, word for
    word, whose renewal period is documented as "the length in seconds of the sliding window
    during which the number of allowed requests should not exceed" the limit. A refused request
    is not counted.

    Scaled by ``throttling.partner_center_scale``, not by Graph's ``throttling.scale``; the
    minute by ``throttling.window_scale``, as Graph's windows are.
    """
    throttling = world.settings.throttling
    if not throttling.enabled:
        return
    limit = max(math.floor(CUSTOMER_RATE_LIMIT * throttling.partner_center_scale), 1)
    span = CUSTOMER_RATE_WINDOW * throttling.window_scale
    arrivals = state.windows.get(partner.id)
    if arrivals is None:
        arrivals = state.windows[partner.id] = deque()
    now = world.clock.now()
    while arrivals and arrivals[0] <= now - span:
        arrivals.popleft()
    if len(arrivals) < limit:
        arrivals.append(now)
        return
    # The next request fits once all but limit - 1 of those counted have left the window.
    # Partner Center promises whole seconds; rounding up keeps that promise honest.
    seconds = max(1, math.ceil(arrivals[len(arrivals) - limit] + span - now))
    raise PartnerCenterError(
        429,
        "429",
        "Rate limit is exceeded.",
        {"Retry-After": str(seconds)},
        {"statusCode": 429, "message": f"Rate limit is exceeded. Try again in {seconds} seconds."},
    )
