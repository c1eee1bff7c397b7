"""The Partner Center customers API (wire-facts §4): create, list and read a partner's customers.

Callers present a v1 token for ``https://api.partnercenter.microsoft.com`` issued in a **partner**
tenant; app+user tokens also need ``mfa`` in ``amr``. Creating a customer creates its tenant in the
world (seeded like a world-file tenant, with ``admin@{domain}`` as Global Administrator) and a
reseller relationship that only takes effect after ``settings.propagation_delay``: Partner Center
lists the customer at once, Graph pre-consent arrives later (the seed's "up to 3 minutes").

Choices where the public record is silent (each says so where it is made):

* The new tenant lives in the partner's region and cloud (a CSP partner tenant sells in one
  region), with the billing country as its country, and without an Intune licence (nothing has
  been bought yet).
* Creation is idempotent twice over: the same ``MS-RequestId`` from the same partner replays the
  first answer verbatim, and the same domain from the same partner (any request id) answers with
  that existing customer. The same domain held by any other tenant is a 409.
* ``totalCount`` in a page of customers counts that page's items.
* The relationship carries delegated admin privileges (DAP), so the seed's AdminAgents pre-consent
  reaches the new customer. Real reseller relationships stopped granting DAP on 2023-10-09 (GDAP
  FAQ); GDAP is not modelled here.
"""

from __future__ import annotations

import base64
import math
import re
import secrets
import string
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from csp_emulator import wellknown
from csp_emulator.context import EmulatorContext
from csp_emulator.http import json_response, loads
from csp_emulator.identity.tokens import InvalidToken
from csp_emulator.limits import SlidingWindow
from csp_emulator.world.model import Relationship, Tenant, World, stable_id
from csp_emulator.world.objects import seed_directory, user_json
from csp_emulator.world.worldfile import add_role_member

# v1 tokens name the resource by URI; the API's app id is accepted too, as Entra may issue either.
AUDIENCES = frozenset({wellknown.PARTNER_CENTER_RESOURCE, wellknown.PARTNER_CENTER_APP_ID})
MEDIA_TYPE = "application/json; charset=utf-8"

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

CUSTOMER_RATE_LIMIT = 500  # requests per minute per partner tenant (wire-facts §3)
CUSTOMER_RATE_WINDOW = 60.0

# Unverified: no public source gives the status or code for an already-used domain; the text is a
# field report's (CloudBlue KB 133047). Clients should key on the 409.
DOMAIN_IN_USE_CODE = "409"

_BILLING_FIELDS = ("firstName", "lastName", "email", "culture", "language", "companyName")
_ADDRESS_FIELDS = (
    "country", "region", "city", "state", "district", "addressLine1", "addressLine2",
    "addressLine3", "postalCode", "firstName", "middleName", "lastName", "phoneNumber",
)  # fmt: skip
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
_PASSWORD_ALPHABET = string.ascii_letters + string.digits + "!#$%*+-=?@^_"


class PartnerCenterError(Exception):
    """An answer other than success; raised anywhere in a handler, rendered once."""

    def __init__(
        self,
        status: int,
        code: str,
        description: str,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.headers = headers or {}
        self.body = body or {
            "code": code,
            "description": description[:1024],
            "data": [],
            "source": "PartnerFD",
        }

    def response(self) -> Response:
        return json_response(self.body, self.status, self.headers, media_type=MEDIA_TYPE)


def invalid_input(detail: str) -> PartnerCenterError:
    return PartnerCenterError(400, "800002", f"Invalid request input: {detail}")


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
    windows: dict[str, SlidingWindow] = field(default_factory=dict)


@dataclass(frozen=True)
class Caller:
    partner: Tenant
    claims: dict[str, Any]


def _state(ctx: EmulatorContext) -> PartnerCenterState:
    state = ctx.state.get("partner_center")
    if state is None:
        state = ctx.state["partner_center"] = PartnerCenterState()
    assert isinstance(state, PartnerCenterState)
    return state


# -- authentication and throttling ----------------------------------------------------------------


_INVALID_TOKEN = 'Bearer error="invalid_token"'


def authenticate(ctx: EmulatorContext, request: Request) -> Caller:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise PartnerCenterError(
            401,
            "800001",
            "Partner Token missing in request context",
            {"WWW-Authenticate": "Bearer"},
        )
    world = ctx.world
    try:
        claims = ctx.keys.validate(token, now=world.clock.now(), audiences=AUDIENCES)
    except InvalidToken as exc:
        raise PartnerCenterError(
            401, "400", f"Access denied. {exc.reason}", {"WWW-Authenticate": _INVALID_TOKEN}
        ) from None
    tid = str(claims.get("tid", ""))
    partner = world.tenant(tid) if tid else None
    if partner is None or partner.kind != "partner":
        # A valid token from a tenant that is not a CSP partner: Partner Center's documented
        # "access denied" (401/400) is the emulator's reading of this case.
        raise PartnerCenterError(
            401,
            "400",
            f"Access denied. Tenant {tid or '(none)'} is not a Partner Center partner tenant.",
            {"WWW-Authenticate": _INVALID_TOKEN},
        )
    if _is_user_token(claims) and "mfa" not in (claims.get("amr") or []):
        raise PartnerCenterError(
            401,
            "400",
            "MFA required. App+User calls need a token whose amr claim includes 'mfa'.",
            {"WWW-Authenticate": _INVALID_TOKEN},
        )
    return Caller(partner, claims)


def _is_user_token(claims: dict[str, Any]) -> bool:
    idtyp = claims.get("idtyp")
    return idtyp == "user" or (idtyp != "app" and "scp" in claims)


def rate_limit(ctx: EmulatorContext, partner: Tenant) -> None:
    """500 requests a minute per partner tenant on the customer endpoints.

    Scaled by ``throttling.partner_center_scale``, not by Graph's ``throttling.scale``.
    """
    throttling = ctx.world.settings.throttling
    if not throttling.enabled:
        return
    limit = max(CUSTOMER_RATE_LIMIT * throttling.partner_center_scale, 1.0)
    windows = _state(ctx).windows
    window = windows.get(partner.id)
    if window is None:
        window = windows[partner.id] = SlidingWindow()
    now = ctx.world.clock.now()
    if window.usage(now, CUSTOMER_RATE_WINDOW) + 1 <= limit:
        window.add(1)
        return
    # Partner Center promises whole seconds; rounding up keeps that promise honest.
    seconds = max(1, math.ceil(window.wait(now, CUSTOMER_RATE_WINDOW, 1, limit)))
    raise PartnerCenterError(
        429,
        "429",
        "Rate limit is exceeded.",
        {"Retry-After": str(seconds)},
        {"statusCode": 429, "message": f"Rate limit is exceeded. Try again in {seconds} seconds."},
    )


# -- request parsing ------------------------------------------------------------------------------


def _lower_keys(value: Any) -> Any:
    """Partner Center reads JSON keys case-insensitively: fold them once, read lowercase."""
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _required_guid_header(request: Request, name: str) -> str:
    value = request.headers.get(name, "").strip()
    if not value:
        raise invalid_input(f"the {name} header is required on this request (a GUID)")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise invalid_input(f"the {name} header must be a GUID, got {value!r}") from None


def _text(container: dict[str, Any], key: str, where: str) -> str:
    value = container.get(key.lower())
    if not isinstance(value, str) or not value.strip():
        raise invalid_input(f"{where}.{key} is required")
    return value.strip()


@dataclass(frozen=True)
class NewCustomer:
    domain: str
    company_name: str
    country: str
    billing: dict[str, Any]  # lowercased keys, as sent
    address: dict[str, Any]
    organization_registration_number: str | None
    enable_gdap_by_default: bool | None


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


def _link(uri: str) -> dict[str, Any]:
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
    out["companyProfile"]["links"] = {"self": _link(f"/customers/{tenant.id}/profiles/company")}
    billing = dict(record.billing_profile if record else _synthesized_billing_profile(tenant))
    billing["links"] = {"self": _link(f"/customers/{tenant.id}/profiles/billing")}
    out["billingProfile"] = billing
    out["allowDelegatedAccess"] = rel.dap
    out["customDomains"] = list(tenant.domains)
    out["links"] = {"self": _link(f"/customers/{tenant.id}")}
    out["attributes"] = out.pop("attributes")  # keep Partner Center's key order: attributes last
    return out


# -- creating a customer --------------------------------------------------------------------------


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
        raise _domain_in_use(spec.domain)
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
    return tenant, password, rel


def _domain_in_use(domain: str) -> PartnerCenterError:
    return PartnerCenterError(
        409,
        DOMAIN_IN_USE_CODE,
        f"The domain specified during customer creation is already used by another tenant: "
        f"{domain}.",
    )


# -- the app --------------------------------------------------------------------------------------

Handler = Callable[[Request, Caller], Awaitable[Response]]


def build_app(ctx: EmulatorContext) -> Starlette:
    def endpoint(
        handler: Handler, *, rate_limited: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                caller = authenticate(ctx, request)
                if rate_limited:
                    rate_limit(ctx, caller.partner)
                response = await handler(request, caller)
            except PartnerCenterError as exc:
                response = exc.response()
            # Partner Center echoes the caller's ids and adds its own correlation vector.
            for name in ("MS-CorrelationId", "MS-RequestId"):
                response.headers[name] = request.headers.get(name) or str(uuid.uuid4())
            response.headers["MS-CV"] = base64.b64encode(secrets.token_bytes(12)).decode() + ".0"
            return response

        return run

    async def create_customer(request: Request, caller: Caller) -> Response:
        _required_guid_header(request, "MS-CorrelationId")
        request_id = _required_guid_header(request, "MS-RequestId")
        state = _state(ctx)
        world = ctx.world
        key = (caller.partner.id, request_id)
        replayed = state.requests.get(key)
        if replayed is not None and replayed in state.records:
            return _created(state.records[replayed].created_body)
        raw = await request.body()
        try:
            body = loads(raw) if raw else None
        except ValueError:
            raise invalid_input("the body is not JSON") from None
        spec = parse_new_customer(body)
        # No await from the domain check to the creation: on the one event loop this is atomic.
        existing = world.tenant(spec.domain)
        if existing is not None:
            rel = world.relationship(caller.partner.id, existing.id)
            if rel is None:
                raise _domain_in_use(spec.domain)
            state.requests[key] = existing.id
            record = state.records.get(existing.id)
            return _created(record.created_body if record else customer_detail(existing, rel, None))
        tenant, password, rel = provision_customer(world, caller.partner, spec)
        billing = billing_profile_json(tenant.id, spec)
        company: dict[str, Any] = {"tenantId": tenant.id, "domain": spec.domain}
        if spec.organization_registration_number:
            company["organizationRegistrationNumber"] = spec.organization_registration_number
        company["attributes"] = {"objectType": "CustomerCompanyProfile"}
        created: dict[str, Any] = {
            "id": tenant.id,
            "commerceId": stable_id("commerce", tenant.id),
            "companyProfile": company,
            "billingProfile": billing,
        }
        if spec.enable_gdap_by_default is not None:
            created["enableGDAPByDefault"] = spec.enable_gdap_by_default
        # The docs' sample answer says "none" here, while the audit record of the same creation
        # (and every later read) says "reseller": the emulator says what the relationship is.
        created["relationshipToPartner"] = rel.kind
        created["userCredentials"] = {"userName": "admin", "password": password}
        created["attributes"] = {"objectType": "Customer"}
        state.records[tenant.id] = CustomerRecord(
            tenant.id, spec.domain, created["commerceId"], billing, created
        )
        state.requests[key] = tenant.id
        return _created(created)

    async def list_customers(request: Request, caller: Caller) -> Response:
        size_text = request.query_params.get("size")
        if size_text is None:
            raise invalid_input("the size query parameter is required, e.g. ?size=40")
        try:
            size = int(size_text)
        except ValueError:
            size = 0
        if not 1 <= size <= 1000:
            raise invalid_input(f"size must be a whole number from 1 to 1000, got {size_text!r}")
        offset = 0
        seek = request.query_params.get("seekOperation")
        if seek is not None:
            if seek.lower() != "next":
                raise invalid_input(f"seekOperation {seek!r} is not supported; expected 'Next'")
            offset = _read_continuation(request, caller.partner.id)
        world = ctx.world
        customers: dict[str, tuple[Tenant, Relationship]] = {}
        for rel in world.relationships:
            if (
                rel.partner_id == caller.partner.id
                and rel.active
                and rel.customer_id in world.tenants
            ):
                customers.setdefault(rel.customer_id, (world.tenants[rel.customer_id], rel))
        ordered = list(customers.values())
        page = ordered[offset : offset + size]
        records = _state(ctx).records
        items = [customer_summary(t, rel, records.get(t.id)) for t, rel in page]
        query = f"?{request.url.query}" if request.url.query else ""
        body: dict[str, Any] = {
            "totalCount": len(items),
            "items": items,
            "links": {"self": _link(f"/v1/customers{query}")},
        }
        if offset + size < len(ordered):
            token = _continuation_token(caller.partner.id, offset + size)
            body["links"]["next"] = {
                "uri": f"/v1/customers?size={size}&seekOperation=Next",
                "method": "GET",
                "headers": [{"key": "MS-ContinuationToken", "value": token}],
            }
            body["continuationToken"] = token
        body["attributes"] = {"objectType": "Collection"}
        return json_response(body, media_type=MEDIA_TYPE)

    async def get_customer(request: Request, caller: Caller) -> Response:
        raw_id = request.path_params["customer_id"]
        try:
            customer_id = str(uuid.UUID(raw_id))
        except ValueError:
            raise invalid_input(f"the customer id must be a GUID, got {raw_id!r}") from None
        world = ctx.world
        tenant = world.tenants.get(customer_id)
        if tenant is None:
            raise PartnerCenterError(404, "60003", "Tenant not found")
        rel = world.relationship(caller.partner.id, tenant.id)
        if rel is None:
            raise PartnerCenterError(
                403,
                "20002",
                f"The partner ID {caller.partner.id} has no commerce relationship with the "
                f"customer ID {tenant.id}.",
            )
        detail = customer_detail(tenant, rel, _state(ctx).records.get(tenant.id))
        return json_response(detail, media_type=MEDIA_TYPE)

    async def check_domain(request: Request, caller: Caller) -> Response:
        # Domain pre-check (CIPP's use; semantics unverified): 200 = taken, 404 = free.
        taken = ctx.world.domain_taken(request.path_params["domain"])
        return Response(status_code=200 if taken else 404)

    create, listing = endpoint(create_customer), endpoint(list_customers)

    async def customers(request: Request) -> Response:
        return await (create if request.method == "POST" else listing)(request)

    return Starlette(
        routes=[
            Route("/v1/customers", customers, methods=["GET", "POST"]),
            Route("/v1/customers/{customer_id}", endpoint(get_customer), methods=["GET"]),
            Route(
                "/v1/domains/{domain}",
                endpoint(check_domain, rate_limited=False),
                methods=["HEAD", "GET"],
            ),
        ]
    )


def _created(body: dict[str, Any]) -> Response:
    return json_response(body, 201, media_type=MEDIA_TYPE)


def _continuation_token(partner_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{partner_id}|{offset}".encode()).decode().rstrip("=")


def _read_continuation(request: Request, partner_id: str) -> int:
    token = request.headers.get("MS-ContinuationToken", "").strip()
    if not token:
        raise invalid_input("seekOperation=Next needs the MS-ContinuationToken header")
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        owner, _, offset_text = text.partition("|")
        offset = int(offset_text)
    except ValueError:
        raise invalid_input("the MS-ContinuationToken is not one this API issued") from None
    if owner != partner_id or offset < 0:
        raise invalid_input("the MS-ContinuationToken belongs to another partner")
    return offset
