"""Partner Center's handlers, request to response: each reads the request, applies the model and
renders the answer. The caller is already authenticated and rate-limited (routes.py)."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from csp_emulator.context import EmulatorContext
from csp_emulator.http import json_response, loads
from csp_emulator.latency import OBJECTS_HEADER
from csp_emulator.partner_center.auth import Caller
from csp_emulator.partner_center.customers import (
    billing_profile_json,
    customer_detail,
    customer_summary,
    link,
    parse_new_customer,
)
from csp_emulator.partner_center.errors import (
    MEDIA_TYPE,
    PartnerCenterError,
    domain_in_use,
    invalid_input,
)
from csp_emulator.partner_center.model import CustomerRecord, provision_customer
from csp_emulator.world.model import Relationship, Tenant, stable_id


async def create_customer(ctx: EmulatorContext, request: Request, caller: Caller) -> Response:
    _guid_header(request, "MS-CorrelationId")
    request_id = _guid_header(request, "MS-RequestId")
    state = ctx.state.partner_center
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
            raise domain_in_use(spec.domain)
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


async def list_customers(ctx: EmulatorContext, request: Request, caller: Caller) -> Response:
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
        if rel.partner_id == caller.partner.id and rel.active and rel.customer_id in world.tenants:
            customers.setdefault(rel.customer_id, (world.tenants[rel.customer_id], rel))
    ordered = list(customers.values())
    page = ordered[offset : offset + size]
    records = ctx.state.partner_center.records
    items = [customer_summary(t, rel, records.get(t.id)) for t, rel in page]
    query = f"?{request.url.query}" if request.url.query else ""
    body: dict[str, Any] = {
        "totalCount": len(items),
        "items": items,
        "links": {"self": link(f"/v1/customers{query}")},
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
    response = json_response(body, media_type=MEDIA_TYPE)
    if ctx.world.settings.latency.active("partner_center"):
        response.headers[OBJECTS_HEADER] = str(len(items))  # for the latency model
    return response


async def get_customer(ctx: EmulatorContext, request: Request, caller: Caller) -> Response:
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
    detail = customer_detail(tenant, rel, ctx.state.partner_center.records.get(tenant.id))
    return json_response(detail, media_type=MEDIA_TYPE)


async def check_domain(ctx: EmulatorContext, request: Request, caller: Caller) -> Response:
    # Domain pre-check (CIPP's use; semantics unverified): 200 = taken, 404 = free.
    taken = ctx.world.domain_taken(request.path_params["domain"])
    return Response(status_code=200 if taken else 404)


def _guid_header(request: Request, name: str) -> str:
    """The caller's GUID in header ``name``, or a new one when it sent none.

    Partner Center's header table marks only ``Authorization`` and ``MS-Contract-Version``
    required; ``MS-CorrelationId`` "should" be on every call and ``MS-RequestId`` makes a retry
    idempotent, so a call without them is served (one without ``MS-RequestId`` is simply a new
    request). Both are typed GUID there: another value is refused with 800002 (the refusal's
    wording is the emulator's, unverified). ``MS-Contract-Version`` is not checked (whether the
    service refuses a call without it is unverified)."""
    value = request.headers.get(name, "").strip()
    if not value:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise invalid_input(f"the {name} header must be a GUID, got {value!r}") from None


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
