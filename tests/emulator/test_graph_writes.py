"""Directory writes over HTTPS: users, groups and membership references, applications with
addPassword, service principals and app role assignments — and who may make them."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from csp_emulator import wellknown
from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator, tls
from tests.emulator.graph_tokens import (
    CUSTOMER_DOMAIN,
    PARTNER_DOMAIN,
    app_token,
    graph_client,
    graph_world,
    tenant_of,
    user_token,
)

DENIED = (403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
CSP_APP_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"  # graph_world's partner-managed app


@pytest.fixture
def emu(make_emulator: MakeEmulator) -> Emulator:
    return make_emulator(graph_world())


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


def new_user(upn: str = "new.hire@customer.com", **extra: Any) -> dict[str, Any]:
    return {
        "accountEnabled": True,
        "displayName": "New Hire",
        "mailNickname": upn.split("@")[0],
        "userPrincipalName": upn,
        "passwordProfile": {"password": "Initial-Pa55!", "forceChangePasswordNextSignIn": True},
        **extra,
    }


def test_create_read_update_delete_a_user(emu: Emulator) -> None:
    tenant = tenant_of(emu, CUSTOMER_DOMAIN)
    with graph_client(emu, app_token(emu, roles=["User.ReadWrite.All"])) as graph:
        created = graph.post("/v1.0/users", json=new_user(department="Sales"))
        assert created.status_code == 201
        body = created.json()
        assert body["@odata.context"].endswith("#users/$entity")
        assert body["userPrincipalName"] == "new.hire@customer.com"
        assert "passwordProfile" not in body
        stored = tenant.get("users", body["id"])
        assert stored is not None and stored["department"] == "Sales"
        assert stored["_password"] == "Initial-Pa55!"  # the sign-in side will accept it

        patched = graph.patch(f"/v1.0/users/{body['id']}", json={"jobTitle": "Analyst"})
        assert patched.status_code == 204 and patched.content == b""
        again = graph.get("/v1.0/users/new.hire@customer.com").json()
        assert again["jobTitle"] == "Analyst"

        assert graph.delete(f"/v1.0/users/{body['id']}").status_code == 204
        assert error_of(graph.get(f"/v1.0/users/{body['id']}"))[:2] == (
            404,
            "Request_ResourceNotFound",
        )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            new_user(upn="someone@not-ours.com"),
            "The domain portion of the userPrincipalName property is invalid. You must use one of "
            "the verified domain names in your organization.",
        ),
        (
            {k: v for k, v in new_user().items() if k != "mailNickname"},
            "A value is required for property 'mailNickname' of resource 'User'.",
        ),
    ],
)
def test_invalid_users_are_refused(emu: Emulator, body: dict[str, Any], message: str) -> None:
    with graph_client(emu, app_token(emu, roles=["User.ReadWrite.All"])) as graph:
        assert error_of(graph.post("/v1.0/users", json=body)) == (
            400,
            "Request_BadRequest",
            message,
        )


def test_duplicate_upn_is_refused(emu: Emulator) -> None:
    with graph_client(emu, app_token(emu, roles=["User.ReadWrite.All"])) as graph:
        assert graph.post("/v1.0/users", json=new_user()).status_code == 201
        assert error_of(graph.post("/v1.0/users", json=new_user()))[2] == (
            "Another object with the same value for property userPrincipalName already exists."
        )


def test_bad_json_is_a_400(emu: Emulator) -> None:
    with graph_client(emu, app_token(emu, roles=["User.ReadWrite.All"])) as graph:
        response = graph.post(
            "/v1.0/users", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert error_of(response)[:2] == (400, "BadRequest")


def test_delegated_writes_need_an_admin_role(emu: Emulator) -> None:
    tenant = tenant_of(emu, CUSTOMER_DOMAIN)
    target = next(u for u in tenant.objects["users"].values() if u["userPrincipalName"][0] == "a")
    helpdesk = user_token(emu, upn="helpdesk@customer.com", wids=[wellknown.ROLE_HELPDESK_ADMIN])
    nobody = user_token(emu, wids=[wellknown.ROLE_USER_TEMPLATE])
    agent = user_token(emu, partner_ref=PARTNER_DOMAIN)  # AdminAgents: Global Administrator
    with graph_client(emu, nobody) as graph:
        assert error_of(graph.post("/v1.0/users", json=new_user())) == DENIED
    with graph_client(emu, helpdesk) as graph:
        # Helpdesk Administrators reset passwords but change nothing else.
        reset = {"passwordProfile": {"password": "Reset-Pa55!"}}
        assert graph.patch(f"/v1.0/users/{target['id']}", json=reset).status_code == 204
        assert tenant.objects["users"][target["id"]]["_password"] == "Reset-Pa55!"
        rename = {"displayName": "Renamed"}
        assert error_of(graph.patch(f"/v1.0/users/{target['id']}", json=rename)) == DENIED
    with graph_client(emu, agent) as graph:
        assert graph.post("/v1.0/users", json=new_user()).status_code == 201


def test_group_membership_references(emu: Emulator) -> None:
    tenant = tenant_of(emu, CUSTOMER_DOMAIN)
    group = next(iter(tenant.objects["groups"].values()))
    outsider = next(u for u in tenant.objects["users"] if u not in group["_members"])
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{outsider}"}
    with graph_client(emu, app_token(emu, roles=["GroupMember.ReadWrite.All"])) as graph:
        added = graph.post(f"/v1.0/groups/{group['id']}/members/$ref", json=ref)
        assert added.status_code == 204 and outsider in group["_members"]
        assert error_of(graph.post(f"/v1.0/groups/{group['id']}/members/$ref", json=ref)) == (
            400,
            "Request_BadRequest",
            "One or more added object references already exist for the following modified "
            "properties: 'members'.",
        )
        ghost = {"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/"
                 "00000000-0000-0000-0000-0000000000ff"}  # fmt: skip
        assert error_of(graph.post(f"/v1.0/groups/{group['id']}/members/$ref", json=ghost))[:2] == (
            404,
            "Request_ResourceNotFound",
        )
        removed = graph.delete(f"/v1.0/groups/{group['id']}/members/{outsider}/$ref")
        assert removed.status_code == 204 and outsider not in group["_members"]
        assert (
            graph.delete(f"/v1.0/groups/{group['id']}/members/{outsider}/$ref").status_code == 404
        )
        # Creating a group needs more than GroupMember.ReadWrite.All.
        group_body = {"displayName": "X", "mailEnabled": False, "mailNickname": "x",
                      "securityEnabled": True}  # fmt: skip
        assert error_of(graph.post("/v1.0/groups", json=group_body)) == DENIED


def test_create_a_group_with_members_bound(emu: Emulator) -> None:
    tenant = tenant_of(emu, CUSTOMER_DOMAIN)
    first_two = list(tenant.objects["users"])[:2]
    body = {
        "displayName": "Project Falcon",
        "mailEnabled": False,
        "mailNickname": "falcon",
        "securityEnabled": True,
        "members@odata.bind": [
            f"https://graph.microsoft.com/v1.0/users/{object_id}" for object_id in first_two
        ],
    }
    with graph_client(emu, app_token(emu, roles=["Group.ReadWrite.All"])) as graph:
        created = graph.post("/v1.0/groups", json=body)
        assert created.status_code == 201
        group_id = created.json()["id"]
        members = graph.get(f"/v1.0/groups/{group_id}/members").json()["value"]
    assert sorted(m["id"] for m in members) == sorted(first_two)


def test_register_an_application_and_add_a_password(emu: Emulator) -> None:
    partner = tenant_of(emu, PARTNER_DOMAIN)
    token = app_token(emu, PARTNER_DOMAIN, roles=["Application.ReadWrite.All"])
    graph_access = {
        "resourceAppId": wellknown.GRAPH_APP_ID,
        "resourceAccess": [
            {"id": wellknown.APPLICATION_PERMISSIONS["User.Read.All"].id, "type": "Role"}
        ],
    }
    with graph_client(emu, token) as graph:
        created = graph.post(
            "/v1.0/applications",
            json={"displayName": "Second CSP app", "signInAudience": "AzureADMultipleOrgs"},
        )
        assert created.status_code == 201
        app = created.json()
        patched = graph.patch(
            f"/v1.0/applications/{app['id']}", json={"requiredResourceAccess": [graph_access]}
        )
        assert patched.status_code == 204
        secret = graph.post(
            f"/v1.0/applications/{app['id']}/addPassword",
            json={"passwordCredential": {"displayName": "ci"}},
        )
        assert secret.status_code == 200
        credential = secret.json()
        again = graph.get(f"/v1.0/applications/{app['id']}").json()
    assert (
        len(credential["secretText"]) == 40 and credential["hint"] == credential["secretText"][:3]
    )
    assert again["requiredResourceAccess"] == [graph_access]
    # Shown once: the application lists the credential without its text...
    assert [(c["keyId"], c["secretText"]) for c in again["passwordCredentials"]] == [
        (credential["keyId"], None)
    ]
    # ...and keeps it privately, where the token endpoint looks for it.
    stored = partner.objects["applications"][app["id"]]["_secrets"]
    assert [s["secretText"] for s in stored] == [credential["secretText"]]


def test_consent_by_app_role_assignment_in_a_customer(emu: Emulator) -> None:
    """CIPP's bootstrap: create the app's service principal in the customer, then grant it a
    Graph app role with POST servicePrincipals/{graph}/appRoleAssignedTo."""
    tenant = tenant_of(emu, CUSTOMER_DOMAIN)
    graph_sp = tenant.service_principal_by_app_id(wellknown.GRAPH_APP_ID)
    assert graph_sp is not None
    user_read_all = wellknown.APPLICATION_PERMISSIONS["User.Read.All"].id
    roles = ["Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All"]
    with graph_client(emu, app_token(emu, roles=roles)) as graph:
        created = graph.post("/v1.0/servicePrincipals", json={"appId": CSP_APP_ID})
        assert created.status_code == 201
        sp = created.json()
        assert sp["appId"] == CSP_APP_ID and sp["appOwnerOrganizationId"] == (
            tenant_of(emu, PARTNER_DOMAIN).id
        )
        assert graph.post("/v1.0/servicePrincipals", json={"appId": CSP_APP_ID}).status_code == 409
        unknown = graph.post(
            "/v1.0/servicePrincipals", json={"appId": "1" * 8 + "-1111-1111-1111-" + "1" * 12}
        )
        assert error_of(unknown)[:2] == (400, "Request_BadRequest")

        grant = {"principalId": sp["id"], "resourceId": graph_sp["id"], "appRoleId": user_read_all}
        url = f"/v1.0/servicePrincipals/{graph_sp['id']}/appRoleAssignedTo"
        granted = graph.post(url, json=grant)
        assert granted.status_code == 201 and granted.json()["appRoleId"] == user_read_all
        assert error_of(graph.post(url, json=grant))[2] == (
            "Permission being assigned already exists on the object."
        )
        bogus = {**grant, "appRoleId": "00000000-0000-0000-0000-0000000000aa"}
        assert error_of(graph.post(url, json=bogus))[:2] == (400, "Request_BadRequest")
        listed = graph.get(f"/v1.0/servicePrincipals/{sp['id']}/appRoleAssignments").json()
    assert [a["appRoleId"] for a in listed["value"]] == [user_read_all]


def self_signed_certificate() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cspgraph test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def test_upload_a_certificate_and_sign_in_with_it(emu: Emulator) -> None:
    """PATCH keyCredentials with the certificate's public part — then the token endpoint takes
    a client assertion signed with its private key."""
    partner = tenant_of(emu, PARTNER_DOMAIN)
    app = partner.application_by_app_id(CSP_APP_ID)
    assert app is not None
    key, certificate = self_signed_certificate()
    der = certificate.public_bytes(serialization.Encoding.DER)
    upload = {
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
        "key": base64.b64encode(der).decode(),
    }
    token = app_token(emu, PARTNER_DOMAIN, roles=["Application.ReadWrite.All"])
    with graph_client(emu, token) as graph:
        url = f"/v1.0/applications/{app['id']}"
        assert graph.patch(url, json={"keyCredentials": [upload]}).status_code == 204
        listed = graph.get(url).json()["keyCredentials"]
        selected = graph.get(url, params={"$select": "keyCredentials"}).json()["keyCredentials"]
        bad = graph.patch(url, json={"keyCredentials": [{"key": "bm90IGEgY2VydA=="}]})
    assert [c["customKeyIdentifier"] for c in listed] == [hashlib.sha1(der).hexdigest().upper()]
    assert listed[0]["key"] is None  # public keys only on one object's $select=keyCredentials
    assert selected[0]["key"] == upload["key"]
    assert error_of(bad)[:2] == (400, "Request_BadRequest")

    token_endpoint = f"{emu.endpoints.authority_host}/{partner.id}/oauth2/v2.0/token"
    now = int(emu.world.clock.now())
    thumbprint = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
    assertion = jwt.encode(
        {"aud": token_endpoint, "iss": CSP_APP_ID, "sub": CSP_APP_ID, "jti": str(uuid.uuid4()),
         "nbf": now, "exp": now + 600},
        key,
        algorithm="RS256",
        headers={"x5t": thumbprint},
    )  # fmt: skip
    response = httpx.post(
        token_endpoint,
        data={
            "grant_type": "client_credentials",
            "client_id": CSP_APP_ID,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
            "scope": "https://graph.microsoft.com/.default",
        },
        verify=tls(emu),
    )
    assert response.status_code == 200, response.text


def test_a_secret_from_add_password_signs_in(emu: Emulator) -> None:
    partner = tenant_of(emu, PARTNER_DOMAIN)
    app = partner.application_by_app_id(CSP_APP_ID)
    assert app is not None
    token = app_token(emu, PARTNER_DOMAIN, roles=["Application.ReadWrite.All"])
    with graph_client(emu, token) as graph:
        secret = graph.post(f"/v1.0/applications/{app['id']}/addPassword", json={}).json()
    response = httpx.post(
        f"{emu.endpoints.authority_host}/{CUSTOMER_DOMAIN}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CSP_APP_ID,
            "client_secret": secret["secretText"],
            "scope": "https://graph.microsoft.com/.default",
        },
        verify=tls(emu),
    )
    assert response.status_code == 200, response.text
    # ...and the token it gets reads the customer's directory.
    with graph_client(emu, response.json()["access_token"]) as graph:
        assert graph.get("/v1.0/users?$top=1").status_code == 200
