"""App-only tokens: MSAL against the emulator, v1 and v2 wire shapes, client authentication."""

from __future__ import annotations

import base64
from urllib.parse import quote

import jwt
import pytest

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import DEMO_APP_PERMISSIONS, GDAP_READ_PERMISSION
from tests.emulator.identity_helpers import (
    GRAPH_DEFAULT,
    NA_APP,
    NA_SECRET,
    PC_DEFAULT,
    aadsts,
    cca,
    claims,
    session,
    tenant,
)

# The demo app's application permissions: what the sync reads, and (the demo world has its GDAP
# half) its partner's GDAP relationships.
DEMO_ROLES = {*DEMO_APP_PERMISSIONS, GDAP_READ_PERMISSION}


def test_msal_app_only_token_for_a_customer_verifies_against_the_jwks(
    emulator: Emulator,
) -> None:
    result = cca(emulator, "customer.com").acquire_token_for_client([GRAPH_DEFAULT])
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] > 300
    token = result["access_token"]

    # Verify the signature as a resource server would: JWKS fetched over HTTPS.
    s = session(emulator)
    customer = tenant(emulator, "customer.com")
    doc = s.get(
        f"{emulator.endpoints.authority_host}/customer.com/.well-known/openid-configuration"
    )
    jwks = jwt.PyJWKSet.from_dict(s.get(doc.json()["jwks_uri"]).json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    verified = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience="https://graph.microsoft.com",
        issuer=f"https://sts.windows.net/{customer.id}/",
        options={"verify_iat": False, "verify_nbf": False, "verify_exp": False},
    )
    assert verified["tid"] == customer.id
    assert set(verified["roles"]) == DEMO_ROLES
    assert verified["appid"] == NA_APP
    assert verified["appidacr"] == "1"
    assert verified["idtyp"] == "app"
    assert verified["ver"] == "1.0"
    assert verified["tenant_region_scope"] == "NA"
    assert "scp" not in verified
    sp = customer.service_principal_by_app_id(NA_APP)
    assert sp is not None and verified["oid"] == verified["sub"] == sp["id"]
    assert "nonce" in jwt.get_unverified_header(token)  # Graph-style: opaque to clients


def test_msal_serves_the_second_call_from_its_cache(emulator: Emulator) -> None:
    app = cca(emulator, "customer.com")
    first = app.acquire_token_for_client([GRAPH_DEFAULT])
    second = app.acquire_token_for_client([GRAPH_DEFAULT])
    assert first["token_source"] == "identity_provider"
    assert second["token_source"] == "cache"
    assert second["access_token"] == first["access_token"]


def test_v2_response_shape_and_headers(emulator: Emulator) -> None:
    r = session(emulator).post(
        f"{emulator.endpoints.authority_host}/customer.com/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": NA_APP,
            "client_secret": NA_SECRET,
            "scope": GRAPH_DEFAULT,
        },
    )
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store, no-cache"
    assert r.headers["pragma"] == "no-cache"
    body = r.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["expires_in"] == int(emulator.world.settings.token_lifetime)


def test_v1_client_credentials_answers_strings_and_the_resource(emulator: Emulator) -> None:
    r = session(emulator).post(
        f"{emulator.endpoints.authority_host}/customer.com/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": NA_APP,
            "client_secret": NA_SECRET,
            "resource": "https://graph.microsoft.com",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resource"] == "https://graph.microsoft.com"
    for key in ("expires_in", "ext_expires_in", "expires_on", "not_before"):
        assert isinstance(body[key], str) and body[key].isdigit()
    assert int(body["expires_on"]) - int(body["not_before"]) == int(body["expires_in"])
    assert claims(body["access_token"])["aud"] == "https://graph.microsoft.com"


def test_http_basic_client_authentication(emulator: Emulator) -> None:
    basic = base64.b64encode(f"{quote(NA_APP)}:{quote(NA_SECRET)}".encode()).decode()
    r = session(emulator).post(
        f"{emulator.endpoints.authority_host}/customer.com/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "scope": GRAPH_DEFAULT},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert r.status_code == 200, r.text
    assert claims(r.json()["access_token"])["appid"] == NA_APP


def test_app_id_form_of_the_scope_gives_the_guid_audience(emulator: Emulator) -> None:
    result = cca(emulator, "customer.com").acquire_token_for_client(
        ["00000003-0000-0000-c000-000000000000/.default"]
    )
    assert claims(result["access_token"])["aud"] == "00000003-0000-0000-c000-000000000000"


def test_home_tenant_token_carries_the_granted_roles(emulator: Emulator) -> None:
    result = cca(emulator, "partner.com").acquire_token_for_client([GRAPH_DEFAULT])
    c = claims(result["access_token"])
    assert c["tid"] == tenant(emulator, "partner.com").id
    assert set(c["roles"]) == DEMO_ROLES


def test_partner_center_app_only_at_the_partner_tenant(emulator: Emulator) -> None:
    result = cca(emulator, "partner.com").acquire_token_for_client([PC_DEFAULT])
    c = claims(result["access_token"])
    assert c["aud"] == "https://api.partnercenter.microsoft.com"
    assert c["idtyp"] == "app"
    assert "nonce" not in jwt.get_unverified_header(result["access_token"])


def test_issued_tokens_are_listed_without_the_token(emulator: Emulator) -> None:
    result = cca(emulator, "customer.com").acquire_token_for_client([GRAPH_DEFAULT])
    jti = claims(result["access_token"])["uti"]
    r = session(emulator).get(
        f"{emulator.endpoints.control}/_emulator/tokens", params={"client_id": NA_APP}
    )
    item = next(t for t in r.json()["value"] if t["jti"] == jti)
    assert item["kind"] == "app" and item["grant"] == "client_credentials"
    assert set(item["roles"]) == DEMO_ROLES
    assert result["access_token"] not in r.text


# -- refusals ------------------------------------------------------------------------------------


def _post(emulator: Emulator, tenant_ref: str, **data: str) -> tuple[int, dict[str, object]]:
    r = session(emulator).post(
        f"{emulator.endpoints.authority_host}/{tenant_ref}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", **data},
        headers={"client-request-id": "11111111-2222-3333-4444-555555555555"},
    )
    return r.status_code, r.json()


def test_bad_secret_is_7000215_invalid_client_401(emulator: Emulator) -> None:
    status, body = _post(
        emulator, "customer.com", client_id=NA_APP, client_secret="nope", scope=GRAPH_DEFAULT
    )
    assert status == 401
    assert body["error"] == "invalid_client"
    assert aadsts(body) == 7000215
    assert str(body["error_description"]).startswith(
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the "
        "request is the client secret value, not the client secret ID"
    )
    assert body["correlation_id"] == "11111111-2222-3333-4444-555555555555"
    assert "\r\nTrace ID: " in str(body["error_description"])
    assert body["trace_id"] in str(body["error_description"])
    assert str(body["error_uri"]).endswith("error?code=7000215")


def test_msal_reports_the_bad_secret(emulator: Emulator) -> None:
    result = cca(emulator, "customer.com", credential="nope").acquire_token_for_client(
        [GRAPH_DEFAULT]
    )
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]


def test_no_credential_is_7000218(emulator: Emulator) -> None:
    status, body = _post(emulator, "customer.com", client_id=NA_APP, scope=GRAPH_DEFAULT)
    assert (status, body["error"], aadsts(body)) == (401, "invalid_client", 7000218)


def test_unknown_client_is_700016(emulator: Emulator) -> None:
    unknown = "99999999-9999-4999-8999-999999999999"
    status, body = _post(
        emulator, "customer.com", client_id=unknown, client_secret="x", scope=GRAPH_DEFAULT
    )
    assert (status, body["error"], aadsts(body)) == (400, "unauthorized_client", 700016)
    assert str(body["error_description"]).startswith(
        f"AADSTS700016: Application with identifier '{unknown}' was not found in the directory "
        "'Contoso Customer'."
    )


def test_scope_without_default_is_1002012(emulator: Emulator) -> None:
    status, body = _post(
        emulator, "customer.com", client_id=NA_APP, client_secret=NA_SECRET, scope="User.Read"
    )
    assert (status, body["error"], aadsts(body)) == (400, "invalid_scope", 1002012)


def test_missing_scope_is_900144(emulator: Emulator) -> None:
    status, body = _post(emulator, "customer.com", client_id=NA_APP, client_secret=NA_SECRET)
    assert (status, body["error"], aadsts(body)) == (400, "invalid_request", 900144)


def test_unknown_resource_is_500011(emulator: Emulator) -> None:
    status, body = _post(
        emulator,
        "customer.com",
        client_id=NA_APP,
        client_secret=NA_SECRET,
        scope="https://vault.azure.net/.default",
    )
    assert (status, body["error"], aadsts(body)) == (400, "invalid_resource", 500011)


@pytest.mark.parametrize("segment", ["common", "organizations"])
def test_client_credentials_need_a_tenant(emulator: Emulator, segment: str) -> None:
    status, body = _post(
        emulator, segment, client_id=NA_APP, client_secret=NA_SECRET, scope=GRAPH_DEFAULT
    )
    assert (status, body["error"], aadsts(body)) == (400, "invalid_request", 50059)


def test_unsupported_grant_type(emulator: Emulator) -> None:
    r = session(emulator).post(
        f"{emulator.endpoints.authority_host}/customer.com/oauth2/v2.0/token",
        data={"grant_type": "password", "client_id": NA_APP, "username": "a", "password": "b"},
    )
    assert r.status_code == 400
    assert r.json()["error"] == "unsupported_grant_type"
