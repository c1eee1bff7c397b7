"""A customer on the wire, both ways: the body that creates one, read into a :class:`NewCustomer`,
and the customer as the list and the detail show it."""

from __future__ import annotations

import re
import uuid
from typing import Any

from csp_emulator.partner_center.errors import PartnerCenterError, invalid_input
from csp_emulator.partner_center.model import CustomerRecord, NewCustomer
from csp_emulator.world.model import Relationship, Tenant, stable_id

# organizationRegistrationNumber is required here and refused elsewhere (wire-facts §4.1).
ORG_REGISTRATION_COUNTRIES = frozenset(
    {
        "AM", "AZ", "BY", "HU", "KZ", "KG", "MD", "RU", "TJ", "UZ", "UA", "BR",
        "IN", "ZA", "PL", "AE", "SA", "TR", "TH", "VN", "MM", "IQ", "SS", "VE",
    }
)  # fmt: skip
# A phone number is required in these (Partner Center docs: error codes, 600051).
PHONE_REQUIRED_COUNTRIES = frozenset(
    {"AM", "AZ", "BY", "HU", "KZ", "KG", "MD", "RU", "TJ", "UZ", "UA"}
)

_BILLING_FIELDS = ("firstName", "lastName", "email", "culture", "language", "companyName")
_ADDRESS_FIELDS = (
    "country", "region", "city", "state", "district", "addressLine1", "addressLine2",
    "addressLine3", "postalCode", "firstName", "middleName", "lastName", "phoneNumber",
)  # fmt: skip
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


# -- reading ------------------------------------------------------------------------------------


def _lower_keys(value: Any) -> Any:
    """Partner Center reads JSON keys case-insensitively: fold them once, read lowercase."""
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _text(container: dict[str, Any], key: str, where: str) -> str:
    value = container.get(key.lower())
    if not isinstance(value, str) or not value.strip():
        raise invalid_input(f"{where}.{key} is required")
    return value.strip()


def parse_new_customer(body: Any) -> NewCustomer:
    if not isinstance(body, dict):
        raise invalid_input("the body must be a JSON object with companyProfile and billingProfile")
    data = _lower_keys(body)
    company = data.get("companyprofile")
    if not isinstance(company, dict):
        raise invalid_input("companyProfile is required")
    domain = _text(company, "domain", "companyProfile").lower()
    if not _DOMAIN.match(domain):
        raise invalid_input(f"companyProfile.domain {domain!r} is not a domain name")
    billing = data.get("billingprofile")
    if not isinstance(billing, dict):
        raise invalid_input("billingProfile is required")
    for key in ("email", "culture", "language"):
        _text(billing, key, "billingProfile")
    company_name = _text(billing, "companyName", "billingProfile")
    address = billing.get("defaultaddress")
    if not isinstance(address, dict):
        raise invalid_input("billingProfile.defaultAddress is required")
    for key in ("addressLine1", "city"):
        _text(address, key, "billingProfile.defaultAddress")
    country = _text(address, "country", "billingProfile.defaultAddress").upper()
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise invalid_input(f"billingProfile.defaultAddress.country {country!r} is not ISO 3166")
    registration = company.get("organizationregistrationnumber")
    registration = registration.strip() if isinstance(registration, str) else None
    if country in ORG_REGISTRATION_COUNTRIES and not registration:
        raise PartnerCenterError(
            400,
            "600049",
            "Organization registration id information is missing. It is required for a "
            f"company located in {country}.",
        )
    if registration and country not in ORG_REGISTRATION_COUNTRIES:
        raise PartnerCenterError(
            400,
            "600002",
            "Organization registration id value is not supported. It is not accepted for a "
            f"company located in {country}.",
        )
    phone = address.get("phonenumber")
    if country in PHONE_REQUIRED_COUNTRIES and not (isinstance(phone, str) and phone.strip()):
        raise PartnerCenterError(400, "600051", "Customer phone number is missing.")
    gdap = data.get("enablegdapbydefault")
    return NewCustomer(
        domain=domain,
        company_name=company_name,
        country=country,
        billing=billing,
        address=address,
        organization_registration_number=registration,
        enable_gdap_by_default=gdap if isinstance(gdap, bool) else None,
    )


# -- rendering ------------------------------------------------------------------------------------


def _culture(value: str) -> str:
    language, _, region = value.partition("-")
    return f"{language.lower()}-{region.upper()}" if region else language.lower()


def _etag(tenant_id: str) -> str:
    return str(uuid.UUID(stable_id("etag", tenant_id)).int % 10**19)


def billing_profile_json(tenant_id: str, spec: NewCustomer) -> dict[str, Any]:
    profile: dict[str, Any] = {"id": stable_id("billingProfile", tenant_id)}
    for name in _BILLING_FIELDS:
        if name.lower() in spec.billing:
            profile[name] = spec.billing[name.lower()]
    profile["culture"] = _culture(str(profile["culture"]))
    address = {
        name: spec.address[name.lower()] for name in _ADDRESS_FIELDS if name.lower() in spec.address
    }
    address["country"] = spec.country
    profile["defaultAddress"] = address
    profile["attributes"] = {"etag": _etag(tenant_id), "objectType": "CustomerBillingProfile"}
    return profile


def _synthesized_billing_profile(tenant: Tenant) -> dict[str, Any]:
    """A billing profile for a customer that came from the world file, not from this API."""
    return {
        "id": stable_id("billingProfile", tenant.id),
        "email": f"admin@{tenant.initial_domain}",
        "culture": "en-US",
        "language": "en",
        "companyName": tenant.display_name,
        "defaultAddress": {"country": tenant.country},
        "attributes": {"etag": _etag(tenant.id), "objectType": "CustomerBillingProfile"},
    }


def link(uri: str) -> dict[str, Any]:
    return {"uri": uri, "method": "GET", "headers": []}


def customer_summary(
    tenant: Tenant, rel: Relationship, record: CustomerRecord | None
) -> dict[str, Any]:
    """A customer as the list shows it: no billing profile (wire-facts §4.2)."""
    return {
        "id": tenant.id,
        "commerceId": record.commerce_id if record else stable_id("commerce", tenant.id),
        "companyProfile": {
            "tenantId": tenant.id,
            "domain": record.domain if record else tenant.initial_domain,
            "companyName": tenant.display_name,
            "attributes": {"objectType": "CustomerCompanyProfile"},
        },
        "relationshipToPartner": rel.kind,
        "attributes": {"objectType": "Customer"},
    }


def customer_detail(
    tenant: Tenant, rel: Relationship, record: CustomerRecord | None
) -> dict[str, Any]:
    """A customer as ``GET /v1/customers/{id}`` shows it, with ``allowDelegatedAccess``."""
    out = customer_summary(tenant, rel, record)
    out["companyProfile"]["links"] = {"self": link(f"/customers/{tenant.id}/profiles/company")}
    billing = dict(record.billing_profile if record else _synthesized_billing_profile(tenant))
    billing["links"] = {"self": link(f"/customers/{tenant.id}/profiles/billing")}
    out["billingProfile"] = billing
    out["allowDelegatedAccess"] = rel.dap
    out["customDomains"] = list(tenant.domains)
    out["links"] = {"self": link(f"/customers/{tenant.id}")}
    out["attributes"] = out.pop("attributes")  # keep Partner Center's key order: attributes last
    return out
