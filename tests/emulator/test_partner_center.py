"""The Partner Center customers API over real HTTPS: create, list, read, auth, throttling."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from csp_emulator import wellknown
from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import load_world_data
from tests.conftest import MakeEmulator

PC = "https://api.partnercenter.microsoft.com"
APP_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"

WORLD: dict[str, Any] = {
    "settings": {"propagation_delay": "3m"},
    "tenant": [
        {"domain": "partner.com", "kind": "partner", "region": "NA"},
        {"domain": "partner-eu.com", "kind": "partner", "region": "EU", "country": "IE"},
        {"domain": "pager.com", "kind": "partner"},
        {"domain": "customer.com", "partner": "partner.com"},
        {"domain": "eu-customer.com", "partner": "partner-eu.com", "region": "EU"},
        *({"domain": f"paged{i}.onmicrosoft.com", "partner": "pager.com"} for i in range(5)),
    ],
}


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    state = tmp_path_factory.mktemp("pc-emulator")
    with Emulator(lambda: load_world_data(WORLD), state_dir=state) as emulator:
        yield emulator


def tenant_id(emu: Emulator, domain: str) -> str:
    tenant = emu.world.tenant(domain)
    assert tenant is not None
    return tenant.id


def token(
    emu: Emulator,
    tenant: str = "partner.com",
    *,
    user: bool = False,
    mfa: bool = True,
    audience: str = PC,
    lifetime: int = 3600,
) -> str:
    """A Partner Center token as the identity half will issue it (wire-facts §1.7)."""
    tid = tenant_id(emu, tenant)
    now = int(emu.world.clock.now())
    claims: dict[str, Any] = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tid}/",
        "tid": tid,
        "appid": APP_ID,
        "appidacr": "1",
        "idtyp": "user" if user else "app",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "ver": "1.0",
    }
    if user:
        claims["scp"] = "user_impersonation"
        claims["amr"] = ["pwd", "mfa"] if mfa else ["pwd"]
    return emu.ctx.keys.sign(claims)


def client(emu: Emulator, bearer: str | None = None) -> httpx.Client:
    context = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)
    headers = {"Accept": "application/json"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    return httpx.Client(
        verify=context, base_url=emu.endpoints.partner_center, headers=headers, timeout=10
    )


def ids() -> dict[str, str]:
    return {"MS-RequestId": str(uuid.uuid4()), "MS-CorrelationId": str(uuid.uuid4())}


def new_customer(domain: str, country: str = "US", **extra_company: Any) -> dict[str, Any]:
    """The create body of wire-facts §4.1, with the docs' PascalCase keys."""
    return {
        "enableGDAPByDefault": False,
        "CompanyProfile": {"Domain": domain, **extra_company},
        "BillingProfile": {
            "Culture": "EN-US",
            "Email": "a@b.com",
            "Language": "en",
            "CompanyName": "Test Co",
            "DefaultAddress": {
                "FirstName": "T",
                "LastName": "T",
                "AddressLine1": "One Microsoft Way",
                "City": "Redmond",
                "State": "WA",
                "PostalCode": "98052",
                "Country": country,
            },
        },
    }


def create(emu: Emulator, body: dict[str, Any], partner: str = "partner.com") -> httpx.Response:
    with client(emu, token(emu, partner)) as pc:
        return pc.post("/v1/customers", json=body, headers=ids())


def assert_pc_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "description", "data", "source"}
    assert body["code"] == code
    assert body["data"] == []
    assert body["source"] == "PartnerFD"
    return body


# -- create ---------------------------------------------------------------------------------------


def test_create_answers_201_with_the_new_tenant(emu: Emulator) -> None:
    headers = ids()
    with client(emu, token(emu)) as pc:
        response = pc.post(
            "/v1/customers", json=new_customer("fresh1.onmicrosoft.com"), headers=headers
        )
    assert response.status_code == 201, response.text
    assert response.headers["ms-requestid"] == headers["MS-RequestId"]
    assert response.headers["ms-correlationid"] == headers["MS-CorrelationId"]
    assert response.headers["ms-cv"]
    customer = response.json()
    tenant = emu.world.tenant("fresh1.onmicrosoft.com")
    assert tenant is not None
    assert customer["id"] == customer["companyProfile"]["tenantId"] == tenant.id
    assert customer["companyProfile"]["domain"] == "fresh1.onmicrosoft.com"
    assert customer["companyProfile"]["attributes"] == {"objectType": "CustomerCompanyProfile"}
    assert customer["relationshipToPartner"] == "reseller"
    assert customer["enableGDAPByDefault"] is False
    assert customer["attributes"] == {"objectType": "Customer"}
    billing = customer["billingProfile"]
    assert billing["companyName"] == "Test Co"
    assert billing["culture"] == "en-US"
    assert billing["defaultAddress"]["addressLine1"] == "One Microsoft Way"
    assert billing["attributes"]["objectType"] == "CustomerBillingProfile"
    # The tenant exists in the world, with its admin and the password handed out once.
    credentials = customer["userCredentials"]
    assert credentials["userName"] == "admin"
    admin = tenant.user_by_upn("admin@fresh1.onmicrosoft.com")
    assert admin is not None and admin["_password"] == credentials["password"]
    assert wellknown.ROLE_GLOBAL_ADMIN in tenant.roles_of(admin["id"])
    assert tenant.display_name == "Test Co"
    assert (tenant.region, tenant.country, tenant.kind) == ("NA", "US", "customer")
    assert tenant.service_principal_by_app_id(wellknown.GRAPH_APP_ID) is not None


def test_relationship_takes_the_propagation_delay(emu: Emulator) -> None:
    response = create(emu, new_customer("fresh2.onmicrosoft.com"))
    assert response.status_code == 201
    partner, customer = tenant_id(emu, "partner.com"), response.json()["id"]
    rel = emu.world.relationship(partner, customer)
    assert rel is not None and rel.kind == "reseller"
    assert not rel.in_effect(emu.world.clock.now())
    emu.advance(179)
    assert not rel.in_effect(emu.world.clock.now())
    emu.advance(1)
    assert rel.in_effect(emu.world.clock.now())


def test_new_customer_lives_in_the_partners_region(emu: Emulator) -> None:
    response = create(emu, new_customer("freshde.onmicrosoft.com", "DE"), "partner-eu.com")
    assert response.status_code == 201
    tenant = emu.world.tenant("freshde.onmicrosoft.com")
    assert tenant is not None
    assert (tenant.region, tenant.country) == ("EU", "DE")


def test_input_keys_are_case_insensitive(emu: Emulator) -> None:
    body = {
        "companyprofile": {"DOMAIN": "fresh3.onmicrosoft.com"},
        "billingProfile": {
            "email": "x@y.com", "CULTURE": "fr-fr", "language": "fr", "companyname": "Trois",
            "defaultaddress": {"addressline1": "1 rue", "CITY": "Paris", "country": "fr"},
        },
    }  # fmt: skip
    response = create(emu, body)
    assert response.status_code == 201, response.text
    billing = response.json()["billingProfile"]
    assert billing["culture"] == "fr-FR"
    assert billing["defaultAddress"] == {"country": "FR", "city": "Paris", "addressLine1": "1 rue"}
    assert "enableGDAPByDefault" not in response.json()


def test_same_request_id_replays_the_first_answer(emu: Emulator) -> None:
    headers = ids()
    before = len(emu.world.tenants)
    with client(emu, token(emu)) as pc:
        first = pc.post(
            "/v1/customers", json=new_customer("fresh4.onmicrosoft.com"), headers=headers
        )
        # A retry after a lost answer: same request id, even with a body that would now fail.
        again = pc.post("/v1/customers", json={}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert len(emu.world.tenants) == before + 1


def test_same_domain_from_the_same_partner_is_the_same_customer(emu: Emulator) -> None:
    first = create(emu, new_customer("fresh5.onmicrosoft.com"))
    second = create(emu, new_customer("FRESH5.onmicrosoft.com"))
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    # A world-file customer of the same partner answers too (with no password to hand out).
    existing = create(emu, new_customer("customer.com"))
    assert existing.status_code == 201
    assert existing.json()["id"] == tenant_id(emu, "customer.com")
    assert "userCredentials" not in existing.json()


def test_domain_of_another_tenant_is_a_conflict(emu: Emulator) -> None:
    assert create(emu, new_customer("fresh6.onmicrosoft.com")).status_code == 201
    taken_by_other_partner = create(emu, new_customer("fresh6.onmicrosoft.com"), "partner-eu.com")
    assert_pc_error(taken_by_other_partner, 409, "409")
    assert_pc_error(create(emu, new_customer("eu-customer.com")), 409, "409")
    assert_pc_error(create(emu, new_customer("partner.onmicrosoft.com")), 409, "409")


def without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    node = body
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return body


@pytest.mark.parametrize(
    ("path", "mentions"),
    [
        (("CompanyProfile",), "companyProfile"),
        (("CompanyProfile", "Domain"), "companyProfile.domain"),
        (("BillingProfile",), "billingProfile"),
        (("BillingProfile", "CompanyName"), "billingProfile.companyName"),
        (("BillingProfile", "DefaultAddress"), "billingProfile.defaultAddress"),
        (("BillingProfile", "DefaultAddress", "Country"), "defaultAddress.country"),
    ],
)
def test_missing_required_input_is_800002(
    emu: Emulator, path: tuple[str, ...], mentions: str
) -> None:
    body = without(new_customer("invalid.onmicrosoft.com"), *path)
    error = assert_pc_error(create(emu, body), 400, "800002")
    assert mentions in error["description"]
    assert emu.world.tenant("invalid.onmicrosoft.com") is None


def test_registration_number_rules(emu: Emulator) -> None:
    russia = new_customer("ru1.onmicrosoft.com", "RU")
    russia["BillingProfile"]["DefaultAddress"]["PhoneNumber"] = "+7 495 000 00 00"
    assert_pc_error(create(emu, russia), 400, "600049")
    brazil = new_customer("br1.onmicrosoft.com", "BR")
    assert_pc_error(create(emu, brazil), 400, "600049")
    us = new_customer("us1.onmicrosoft.com", "US", OrganizationRegistrationNumber="123")
    assert_pc_error(create(emu, us), 400, "600002")
    ukraine = new_customer("ua1.onmicrosoft.com", "UA", OrganizationRegistrationNumber="1234567")
    assert_pc_error(create(emu, ukraine), 400, "600051")  # no phone number
    ukraine["BillingProfile"]["DefaultAddress"]["PhoneNumber"] = "+380 44 000 0000"
    created = create(emu, ukraine)
    assert created.status_code == 201, created.text
    assert created.json()["companyProfile"]["organizationRegistrationNumber"] == "1234567"


def test_post_without_correlation_or_request_id_is_served_with_ids_of_its_own(
    emu: Emulator,
) -> None:
    # Partner Center's header table requires only Authorization and MS-Contract-Version: the
    # correlation id "should" be on every call, the request id makes a retry idempotent.
    with client(emu, token(emu)) as pc:
        created = pc.post("/v1/customers", json=new_customer("noids.onmicrosoft.com"))
    assert created.status_code == 201, created.text
    for name in ("MS-CorrelationId", "MS-RequestId"):
        assert uuid.UUID(created.headers[name])  # one of its own, a GUID
    assert emu.world.tenant("noids.onmicrosoft.com") is not None


def test_post_with_ids_that_are_not_guids_is_refused_800002(emu: Emulator) -> None:
    body = new_customer("badids.onmicrosoft.com")
    with client(emu, token(emu)) as pc:
        bad_request_id = pc.post(
            "/v1/customers", json=body, headers={**ids(), "MS-RequestId": "retry-1"}
        )
        bad_correlation = pc.post(
            "/v1/customers", json=body, headers={**ids(), "MS-CorrelationId": "trace-7"}
        )
    assert "GUID" in assert_pc_error(bad_request_id, 400, "800002")["description"]
    assert "MS-CorrelationId" in assert_pc_error(bad_correlation, 400, "800002")["description"]
    assert emu.world.tenant("badids.onmicrosoft.com") is None


def test_body_must_be_json(emu: Emulator) -> None:
    with client(emu, token(emu)) as pc:
        response = pc.post(
            "/v1/customers",
            content=b"<customer/>",
            headers={**ids(), "Content-Type": "application/xml"},
        )
    assert_pc_error(response, 400, "800002")


# -- list -----------------------------------------------------------------------------------------


def test_list_pages_with_the_continuation_header(emu: Emulator) -> None:
    seen: list[str] = []
    pages = []
    with client(emu, token(emu, "pager.com")) as pc:
        response = pc.get("/v1/customers", params={"size": 2})
        while True:
            assert response.status_code == 200, response.text
            page = response.json()
            pages.append(len(page["items"]))
            assert page["totalCount"] == len(page["items"])
            assert page["attributes"] == {"objectType": "Collection"}
            for item in page["items"]:
                assert "billingProfile" not in item
                assert item["relationshipToPartner"] == "reseller"
                assert item["id"] == item["companyProfile"]["tenantId"]
                seen.append(item["id"])
            next_link = page["links"].get("next")
            if next_link is None:
                assert "continuationToken" not in page
                break
            assert next_link["method"] == "GET"
            assert next_link["headers"][0]["value"] == page["continuationToken"]
            headers = {h["key"]: h["value"] for h in next_link["headers"]}
            assert set(headers) == {"MS-ContinuationToken"}
            response = pc.get(next_link["uri"], headers=headers)  # verbatim, as the SDKs do
    assert pages == [2, 2, 1]
    expected = [tenant_id(emu, f"paged{i}.onmicrosoft.com") for i in range(5)]
    assert seen == expected


def test_list_shows_only_the_callers_customers(emu: Emulator) -> None:
    with client(emu, token(emu, "partner-eu.com")) as pc:
        items = pc.get("/v1/customers", params={"size": 100}).json()["items"]
    ids_ = {item["id"] for item in items}
    assert tenant_id(emu, "eu-customer.com") in ids_
    assert tenant_id(emu, "customer.com") not in ids_
    assert not ids_ & {tenant_id(emu, f"paged{i}.onmicrosoft.com") for i in range(5)}


def test_list_refuses_bad_paging(emu: Emulator) -> None:
    with client(emu, token(emu, "pager.com")) as pc:
        first = pc.get("/v1/customers", params={"size": 2}).json()
        next_uri = first["links"]["next"]["uri"]
        no_size = pc.get("/v1/customers")
        zero = pc.get("/v1/customers", params={"size": 0})
        no_token = pc.get(next_uri)
    with client(emu, token(emu, "partner.com")) as pc:
        stolen = pc.get(next_uri, headers={"MS-ContinuationToken": first["continuationToken"]})
    for response in (no_size, zero, no_token, stolen):
        assert_pc_error(response, 400, "800002")


# -- get by id ------------------------------------------------------------------------------------


def test_get_customer_by_id(emu: Emulator) -> None:
    customer = tenant_id(emu, "customer.com")
    with client(emu, token(emu)) as pc:
        response = pc.get(f"/v1/customers/{customer}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == body["companyProfile"]["tenantId"] == customer
    assert body["allowDelegatedAccess"] is True
    assert body["relationshipToPartner"] == "reseller"
    assert body["billingProfile"]["attributes"]["objectType"] == "CustomerBillingProfile"
    assert body["links"]["self"]["uri"] == f"/customers/{customer}"


def test_get_created_customer_keeps_its_billing_profile(emu: Emulator) -> None:
    created = create(emu, new_customer("fresh7.onmicrosoft.com")).json()
    with client(emu, token(emu)) as pc:
        body = pc.get(f"/v1/customers/{created['id']}").json()
    assert body["billingProfile"]["email"] == "a@b.com"
    assert body["companyProfile"]["domain"] == "fresh7.onmicrosoft.com"
    assert "userCredentials" not in body


def test_get_unknown_or_foreign_customer(emu: Emulator) -> None:
    foreign = tenant_id(emu, "eu-customer.com")
    with client(emu, token(emu)) as pc:
        unknown = pc.get(f"/v1/customers/{uuid.uuid4()}")
        other = pc.get(f"/v1/customers/{foreign}")
        malformed = pc.get("/v1/customers/customer.com")
    assert assert_pc_error(unknown, 404, "60003")["description"] == "Tenant not found"
    description = assert_pc_error(other, 403, "20002")["description"]
    assert description == (
        f"The partner ID {tenant_id(emu, 'partner.com')} has no commerce relationship with the "
        f"customer ID {foreign}."
    )
    assert_pc_error(malformed, 400, "800002")


def test_domain_check(emu: Emulator) -> None:
    with client(emu, token(emu)) as pc:
        assert pc.head("/v1/domains/customer.onmicrosoft.com").status_code == 200
        assert pc.head("/v1/domains/nobody-has-this.onmicrosoft.com").status_code == 404


# -- authentication -------------------------------------------------------------------------------


def test_no_token(emu: Emulator) -> None:
    with client(emu) as pc:
        response = pc.get("/v1/customers", params={"size": 1})
    assert_pc_error(response, 401, "800001")


def test_wrong_audience(emu: Emulator) -> None:
    with client(emu, token(emu, audience="https://graph.microsoft.com")) as pc:
        response = pc.get("/v1/customers", params={"size": 1})
    assert "Invalid audience" in assert_pc_error(response, 401, "400")["description"]


def test_expired_token(emu: Emulator) -> None:
    with client(emu, token(emu, lifetime=-10)) as pc:
        response = pc.get("/v1/customers", params={"size": 1})
    assert "expired" in assert_pc_error(response, 401, "400")["description"]


def test_token_from_a_customer_tenant(emu: Emulator) -> None:
    with client(emu, token(emu, "customer.com")) as pc:
        response = pc.get("/v1/customers", params={"size": 1})
    assert "not a Partner Center partner" in assert_pc_error(response, 401, "400")["description"]


def test_app_user_token_needs_mfa(emu: Emulator) -> None:
    with client(emu, token(emu, user=True, mfa=False)) as pc:
        refused = pc.get("/v1/customers", params={"size": 1})
    assert assert_pc_error(refused, 401, "400")["description"].startswith("MFA required")
    assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    with client(emu, token(emu, user=True, mfa=True)) as pc:
        assert pc.get("/v1/customers", params={"size": 1}).status_code == 200
    with client(emu, token(emu)) as pc:  # app-only: exempt, and it has no amr at all
        assert pc.get("/v1/customers", params={"size": 1}).status_code == 200


def test_forged_token(emu: Emulator, make_emulator: MakeEmulator) -> None:
    other = make_emulator(WORLD)  # another emulator: same claims, another signing key
    partner = tenant_id(emu, "partner.com")
    assert tenant_id(other, "partner.com") == partner
    with client(emu, token(other)) as pc:
        response = pc.get("/v1/customers", params={"size": 1})
    assert "signature" in assert_pc_error(response, 401, "400")["description"]


# -- throttling -----------------------------------------------------------------------------------


def test_customer_endpoints_are_rate_limited_per_partner(make_emulator: MakeEmulator) -> None:
    world = {**WORLD, "settings": {"throttling": {"partner_center_scale": 0.01}}}  # 5 a minute
    emu = make_emulator(world)
    with client(emu, token(emu)) as pc:
        for _ in range(5):
            assert pc.get("/v1/customers", params={"size": 1}).status_code == 200
        refused = pc.get(f"/v1/customers/{tenant_id(emu, 'customer.com')}")
    assert refused.status_code == 429
    seconds = int(refused.headers["retry-after"])
    assert 1 <= seconds <= 60  # until the first of the five is a minute old
    assert refused.json() == {
        "statusCode": 429,
        "message": f"Rate limit is exceeded. Try again in {seconds} seconds.",
    }
    with client(emu, token(emu, "partner-eu.com")) as pc:  # another partner's budget
        assert pc.get("/v1/customers", params={"size": 1}).status_code == 200
    emu.advance(seconds)
    with client(emu, token(emu)) as pc:
        assert pc.get("/v1/customers", params={"size": 1}).status_code == 200


def test_the_limit_counts_a_sliding_window_whose_length_follows_window_scale(
    make_emulator: MakeEmulator,
) -> None:
    # 5 requests per 30 s (a minute x 0.5); the world clock is moved, the wall clock barely runs.
    world = {
        **WORLD,
        "settings": {"throttling": {"partner_center_scale": 0.01, "window_scale": 0.5}},
    }
    emu = make_emulator(world)

    def statuses(count: int) -> list[int]:
        with client(emu, token(emu)) as pc:
            return [pc.get("/v1/customers", params={"size": 1}).status_code for _ in range(count)]

    assert statuses(2) == [200, 200]  # at t
    emu.advance(20)
    assert statuses(3) == [200, 200, 200]  # at t + 20: five within 30 s
    with client(emu, token(emu)) as pc:
        refused = pc.get("/v1/customers", params={"size": 1})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 10  # the two of t leave at t + 30
    emu.advance(10)
    # Exactly the two of t have left, the three of t + 20 have not: a log of arrivals.
    assert statuses(3) == [200, 200, 429]


def test_rate_limit_is_off_when_throttling_is(make_emulator: MakeEmulator) -> None:
    world = {**WORLD, "settings": {"throttling": {"partner_center_scale": 0.01, "enabled": False}}}
    emu = make_emulator(world)
    with client(emu, token(emu)) as pc:
        for _ in range(8):  # over the scaled budget of 5
            assert pc.get("/v1/customers", params={"size": 1}).status_code == 200


# -- end to end, with tokens from the emulated identity platform ----------------------------------

SECRET = "app-secret-na"
E2E_WORLD: dict[str, Any] = {
    "settings": {"propagation_delay": "3m"},
    "tenant": [
        {
            "domain": "partner.com",
            "kind": "partner",
            "app": [
                {
                    "display_name": "CSP app",
                    "client_id": APP_ID,
                    "client_secret": SECRET,
                    "admin_agents": True,
                    "application_permissions": ["User.Read.All"],
                }
            ],
        }
    ],
}


def test_onboarding_with_real_tokens(make_emulator: MakeEmulator) -> None:
    """The seed's story: create a customer, and Graph answers only once the relationship has
    propagated, and only with a token issued after that."""
    emu = make_emulator(E2E_WORLD)
    context = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)
    with httpx.Client(verify=context, timeout=10) as http:

        def access_token(tenant: str, resource: str) -> str:
            response = http.post(
                f"{emu.endpoints.authority_host}/{tenant}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": APP_ID,
                    "client_secret": SECRET,
                    "scope": f"{resource}/.default",
                },
            )
            assert response.status_code == 200, response.text
            value: str = response.json()["access_token"]
            return value

        def users(bearer: str) -> httpx.Response:
            return http.get(
                emu.endpoints.graph + "/v1.0/users", headers={"Authorization": f"Bearer {bearer}"}
            )

        pc_token = access_token("partner.com", PC)
        created = http.post(
            emu.endpoints.partner_center + "/v1/customers",
            json=new_customer("onboarded.onmicrosoft.com"),
            headers={"Authorization": f"Bearer {pc_token}", **ids()},
        )
        assert created.status_code == 201, created.text
        customer = created.json()["id"]
        listed = http.get(
            emu.endpoints.partner_center + "/v1/customers?size=10",
            headers={"Authorization": f"Bearer {pc_token}"},
        )
        assert [item["id"] for item in listed.json()["items"]] == [customer]

        early = access_token(customer, "https://graph.microsoft.com")
        assert users(early).status_code == 403  # the relationship has not reached the customer
        emu.advance(180)
        assert users(early).status_code == 403  # claims are frozen at issue
        fresh = users(access_token(customer, "https://graph.microsoft.com"))
        assert fresh.status_code == 200, fresh.text
        upns = [user["userPrincipalName"] for user in fresh.json()["value"]]
        assert upns == ["admin@onboarded.onmicrosoft.com"]
