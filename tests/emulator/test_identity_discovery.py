"""OIDC discovery v1/v2, JWKS and instance discovery, as MSAL and OIDC libraries read them."""

from __future__ import annotations

import msal
import pytest

from csp_emulator.server import Emulator
from tests.emulator.identity_helpers import aadsts, authority, session, tenant


def test_v2_discovery_by_domain_names_the_guid_everywhere(emulator: Emulator) -> None:
    s = session(emulator)
    customer = tenant(emulator, "customer.com")
    host = emulator.endpoints.authority_host
    r = s.get(f"{host}/Customer.COM/v2.0/.well-known/openid-configuration")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "max-age=86400, private"
    doc = r.json()
    base = f"{host}/{customer.id}"
    assert doc["issuer"] == f"{base}/v2.0"
    assert doc["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert doc["device_authorization_endpoint"] == f"{base}/oauth2/v2.0/devicecode"
    assert doc["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert doc["tenant_region_scope"] == "NA"
    assert doc["cloud_instance_name"] == "microsoftonline.com"
    assert doc["msgraph_host"] == emulator.endpoints.graph_host
    assert doc["token_endpoint_auth_methods_supported"] == [
        "client_secret_post",
        "private_key_jwt",
        "client_secret_basic",
    ]
    assert doc["scopes_supported"] == ["openid", "profile", "email", "offline_access"]


def test_v1_discovery_uses_the_sts_issuer_and_v1_endpoints(emulator: Emulator) -> None:
    s = session(emulator)
    eu = next(t for t in emulator.world.tenants.values() if t.region == "EU")
    host = emulator.endpoints.authority_host
    doc = s.get(f"{host}/{eu.default_domain}/.well-known/openid-configuration").json()
    assert doc["issuer"] == f"https://sts.windows.net/{eu.id}/"
    assert doc["token_endpoint"] == f"{host}/{eu.id}/oauth2/token"
    assert doc["authorization_endpoint"] == f"{host}/{eu.id}/oauth2/authorize"
    assert doc["device_authorization_endpoint"] == f"{host}/{eu.id}/oauth2/devicecode"
    assert doc["jwks_uri"] == f"{host}/common/discovery/keys"
    assert doc["tenant_region_scope"] == "EU"
    assert doc["scopes_supported"] == ["openid"]
    assert doc["microsoft_multi_refresh_token"] is True
    assert {"amr", "given_name", "family_name", "nickname"} <= set(doc["claims_supported"])


def test_common_discovery_has_a_placeholder_issuer(emulator: Emulator) -> None:
    s = session(emulator)
    host = emulator.endpoints.authority_host
    doc = s.get(f"{host}/common/v2.0/.well-known/openid-configuration").json()
    assert doc["issuer"] == f"{host}/{{tenantid}}/v2.0"
    assert doc["token_endpoint"] == f"{host}/common/oauth2/v2.0/token"
    assert doc["jwks_uri"] == f"{host}/common/discovery/v2.0/keys"
    assert doc["tenant_region_scope"] is None


@pytest.mark.parametrize(
    "path", ["v2.0/.well-known/openid-configuration", ".well-known/openid-configuration"]
)
def test_unknown_tenant_is_aadsts90002_invalid_tenant(emulator: Emulator, path: str) -> None:
    r = session(emulator).get(f"{emulator.endpoints.authority_host}/nowhere.example/{path}")
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "invalid_tenant"
    assert aadsts(body) == 90002
    assert body["error_description"].startswith(
        "AADSTS90002: Tenant 'nowhere.example' not found. Check to make sure you have the correct "
        "tenant ID and are signing into the correct cloud."
    )


def test_unknown_tenant_at_the_token_endpoint_is_invalid_request(emulator: Emulator) -> None:
    r = session(emulator).post(
        f"{emulator.endpoints.authority_host}/nowhere.example/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": "x", "scope": "y"},
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert aadsts(r.json()) == 90002


def test_jwks_endpoints_publish_the_signing_key(emulator: Emulator) -> None:
    s = session(emulator)
    host = emulator.endpoints.authority_host
    v1 = s.get(f"{host}/common/discovery/keys").json()
    v2 = s.get(f"{host}/customer.com/discovery/v2.0/keys").json()
    common_v2 = s.get(f"{host}/common/discovery/v2.0/keys").json()
    kid = emulator.ctx.keys.kid
    assert [k["kid"] for k in v1["keys"]] == [kid]
    assert "issuer" not in v1["keys"][0]
    assert v2["keys"][0]["issuer"] == f"{host}/{tenant(emulator, 'customer.com').id}/v2.0"
    assert common_v2["keys"][0]["issuer"] == f"{host}/{{tenantid}}/v2.0"
    assert v2["keys"][0]["kty"] == "RSA" and v2["keys"][0]["e"] == "AQAB"


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_instance_discovery(emulator: Emulator, version: str) -> None:
    s = session(emulator)
    host = emulator.endpoints.authority_host
    r = s.get(
        f"{host}/common/discovery/instance",
        params={
            "api-version": version,
            "authorization_endpoint": f"{host}/customer.com/oauth2/v2.0/authorize",
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["tenant_discovery_endpoint"] == (
        f"{host}/customer.com/v2.0/.well-known/openid-configuration"
    )
    aliases = {a for entry in body["metadata"] for a in entry["aliases"]}
    assert host.split("://")[1] in aliases
    assert "login.microsoftonline.com" in aliases


def test_instance_discovery_refuses_an_unknown_host(emulator: Emulator) -> None:
    r = session(emulator).get(
        f"{emulator.endpoints.authority_host}/common/discovery/instance",
        params={"api-version": "1.1", "authorization_endpoint": "https://evil.example/x/oauth2"},
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_instance"
    assert aadsts(r.json()) == 50049


def test_msal_uses_the_guid_as_its_realm(emulator: Emulator) -> None:
    app = msal.ConfidentialClientApplication(
        "6731de76-14a6-49ae-97bc-6eba6914391e",
        client_credential="app-secret-na",
        authority=authority(emulator, "customer.com"),
        instance_discovery=False,
        http_client=session(emulator),
    )
    customer = tenant(emulator, "customer.com")
    assert app.authority.tenant == customer.id
    assert app.authority.token_endpoint.endswith(f"/{customer.id}/oauth2/v2.0/token")
