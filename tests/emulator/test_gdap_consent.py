"""App consent in a GDAP customer: Partner Center's applicationconsents (delegated scopes, who may
call, 409 on repeat), the app-role step through Graph's appRoleAssignedTo, a customer
administrator's /adminconsent, and how each reaches tokens after consent_delay."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from csp_emulator import roles, wellknown
from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator, tls
from tests.emulator.gdap_world import (
    APP_ID,
    APP_SECRET,
    DAP_CUSTOMER,
    GDAP_CUSTOMER,
    PARTNER,
    gdap_world,
)
from tests.emulator.graph_tokens import graph_client, tenant_of
from tests.emulator.test_gdap_tokens import claims, refusal, sign_in, token_of

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
PC_AUDIENCE = "https://api.partnercenter.microsoft.com"
SCOPES = "Directory.AccessAsUser.All,AppRoleAssignment.ReadWrite.All"


def pc_token(emu: Emulator, upn: str | None = "agent@partner.com") -> str:
    """A Partner Center token in the partner tenant: app+user for ``upn`` (with MFA), or the
    app's own (app-only) when ``upn`` is None."""
    partner = tenant_of(emu, PARTNER)
    now = int(emu.world.clock.now())
    base = {"aud": PC_AUDIENCE, "iss": f"https://sts.windows.net/{partner.id}/", "iat": now,
            "nbf": now, "exp": now + 3600, "tid": partner.id, "appid": APP_ID,
            "ver": "1.0"}  # fmt: skip
    if upn is None:
        sp = partner.service_principal_by_app_id(APP_ID)
        assert sp is not None
        base.update({"idtyp": "app", "oid": sp["id"], "sub": sp["id"]})
    else:
        user = partner.user_by_upn(upn)
        assert user is not None
        base.update({"idtyp": "user", "oid": user["id"], "upn": upn, "amr": ["pwd", "mfa"],
                     "scp": "user_impersonation"})  # fmt: skip
    return emu.ctx.keys.sign(base)


def partner_center(emu: Emulator, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=emu.endpoints.partner_center,
        verify=tls(emu),
        headers={"Authorization": f"Bearer {token}", "MS-RequestId": str(uuid.uuid4()),
                 "MS-CorrelationId": str(uuid.uuid4())},
    )  # fmt: skip


def consent_body(scope: str = SCOPES) -> dict[str, Any]:
    return {
        "applicationId": APP_ID,
        "applicationGrants": [{"enterpriseApplicationId": wellknown.GRAPH_APP_ID, "scope": scope}],
    }


def app_only(emu: Emulator, tenant: str) -> httpx.Response:
    return httpx.post(
        f"{emu.endpoints.authority_host}/{tenant}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": APP_ID,
              "client_secret": APP_SECRET, "scope": GRAPH_DEFAULT},
        verify=tls(emu),
    )  # fmt: skip


@pytest.fixture
def emu(make_emulator: MakeEmulator) -> Emulator:
    """The GDAP world without the app's consent in the GDAP customer."""
    data = gdap_world()
    data["tenant"][1]["consent"] = []
    return make_emulator(data)


def consents_url(emu: Emulator, domain: str = GDAP_CUSTOMER) -> str:
    return f"/v1/customers/{tenant_of(emu, domain).id}/applicationconsents"


def test_partner_center_consent_grants_delegated_scopes_once(emu: Emulator) -> None:
    customer = tenant_of(emu, GDAP_CUSTOMER)
    with partner_center(emu, pc_token(emu)) as pc:
        created = pc.post(consents_url(emu), json=consent_body())
        again = pc.post(consents_url(emu), json=consent_body())
        listed = pc.get(consents_url(emu)).json()
    assert created.status_code == 201, created.text
    assert created.json()["applicationGrants"][0]["scope"] == SCOPES
    assert again.status_code == 409
    assert again.json()["description"] == "Permission entry already exists."
    assert [c["applicationId"] for c in listed["items"]] == [APP_ID]
    sp = customer.service_principal_by_app_id(APP_ID)
    assert sp is not None
    grants = [g for g in customer.objects["oauth2PermissionGrants"].values()
              if g["clientId"] == sp["id"]]  # fmt: skip
    assert [(g["consentType"], g["scope"]) for g in grants] == [
        ("AllPrincipals", "Directory.AccessAsUser.All AppRoleAssignment.ReadWrite.All")
    ]
    # Delegated only: no app role assignment for the app.
    assert not [a for a in customer.objects["appRoleAssignments"].values()
                if a["principalId"] == sp["id"]]  # fmt: skip


def test_a_consent_reaches_tokens_after_the_consent_delay(emu: Emulator) -> None:
    assert refusal(sign_in(emu, GDAP_CUSTOMER, "tech@partner.com")).startswith("AADSTS90099:")
    with partner_center(emu, pc_token(emu)) as pc:
        assert pc.post(consents_url(emu), json=consent_body()).status_code == 201
    early = token_of(emu, GDAP_CUSTOMER, "tech@partner.com")
    assert "scp" not in claims(early)
    assert app_only(emu, GDAP_CUSTOMER).json()["error_codes"] == [700016]
    emu.advance(61)
    later = token_of(emu, GDAP_CUSTOMER, "tech@partner.com")
    assert claims(later)["scp"] == "Directory.AccessAsUser.All AppRoleAssignment.ReadWrite.All"
    with graph_client(emu, early) as graph:
        assert graph.get("/v1.0/users").status_code == 403  # frozen without scp
    with graph_client(emu, later) as graph:
        assert graph.get("/v1.0/users").status_code == 200
    # Partner Center's consent is delegated only: an app-only token carries no roles.
    answer = app_only(emu, GDAP_CUSTOMER)
    assert answer.status_code == 200 and "roles" not in claims(answer.json()["access_token"])


def consented_through_partner_center(
    emu: Emulator,
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The app consented in the GDAP customer through Partner Center a minute ago: (the
    customer, Microsoft Graph's service principal there, the app's)."""
    with partner_center(emu, pc_token(emu)) as pc:
        assert pc.post(consents_url(emu), json=consent_body()).status_code == 201
    emu.advance(61)
    customer = tenant_of(emu, GDAP_CUSTOMER)
    graph_sp = customer.service_principal_by_app_id(wellknown.GRAPH_APP_ID)
    app_sp = customer.service_principal_by_app_id(APP_ID)
    assert graph_sp is not None and app_sp is not None
    return customer, graph_sp, app_sp


def test_app_roles_through_app_role_assigned_to_arrive_after_the_consent_delay(
    emu: Emulator,
) -> None:
    _customer, graph_sp, app_sp = consented_through_partner_center(emu)
    # The agent holds Privileged Role Administrator in the customer through GDAP.
    with graph_client(emu, token_of(emu, GDAP_CUSTOMER, "agent@partner.com")) as graph:
        for name in ("User.Read.All", "Group.Read.All"):
            answer = graph.post(
                f"/v1.0/servicePrincipals/{graph_sp['id']}/appRoleAssignedTo",
                json={"principalId": app_sp["id"], "resourceId": graph_sp["id"],
                      "appRoleId": wellknown.APPLICATION_PERMISSIONS[name].id},
            )  # fmt: skip
            assert answer.status_code == 201, answer.text
    before = app_only(emu, GDAP_CUSTOMER).json()["access_token"]
    assert "roles" not in claims(before)
    emu.advance(61)
    after = app_only(emu, GDAP_CUSTOMER).json()["access_token"]
    assert set(claims(after)["roles"]) == {"User.Read.All", "Group.Read.All"}
    with graph_client(emu, after) as graph:
        assert graph.get("/v1.0/users").status_code == 200
    with graph_client(emu, before) as graph:
        assert graph.get("/v1.0/users").status_code == 403


def test_a_cloud_application_administrator_may_not_grant_microsoft_graphs_app_roles(
    make_emulator: MakeEmulator,
) -> None:
    # Entra: Cloud Application Administrator grants any API's permissions but Microsoft
    # Graph's app roles; those take Privileged Role Administrator (or Global Administrator).
    world = gdap_world()
    world["tenant"][1]["consent"] = []
    relationship = world["gdap"][0]
    for held in (relationship["roles"], *(a["roles"] for a in relationship["assignment"])):
        if "Privileged Role Administrator" in held:
            held.remove("Privileged Role Administrator")
    emu = make_emulator(world)
    customer, graph_sp, app_sp = consented_through_partner_center(emu)
    token = token_of(emu, GDAP_CUSTOMER, "agent@partner.com")
    assert roles.CLOUD_APPLICATION_ADMINISTRATOR in claims(token)["wids"]
    with graph_client(emu, token) as graph:
        refused = graph.post(
            f"/v1.0/servicePrincipals/{graph_sp['id']}/appRoleAssignedTo",
            json={"principalId": app_sp["id"], "resourceId": graph_sp["id"],
                  "appRoleId": wellknown.APPLICATION_PERMISSIONS["User.Read.All"].id},
        )  # fmt: skip
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "Authorization_RequestDenied"
    assert not [
        a for a in customer.objects["appRoleAssignments"].values()
        if a.get("principalId") == app_sp["id"]
    ]  # fmt: skip


def test_consent_callers_need_admin_agents_and_a_consenting_gdap_role(emu: Emulator) -> None:
    # tech@ holds User Administrator through GDAP but is outside AdminAgents.
    with partner_center(emu, pc_token(emu, "tech@partner.com")) as pc:
        outside = pc.post(consents_url(emu), json=consent_body())
    assert outside.status_code == 403 and "AdminAgents" in outside.json()["description"]
    # The app itself is in AdminAgents, but an app has no GDAP roles: only DAP lets it consent.
    with partner_center(emu, pc_token(emu, None)) as pc:
        gdap = pc.post(consents_url(emu), json=consent_body())
        dap = pc.post(consents_url(emu, DAP_CUSTOMER), json=consent_body())
    assert gdap.status_code == 403
    assert dap.status_code == 201, dap.text
    # Nobody consents in a tenant the partner has no relationship with.
    with partner_center(emu, pc_token(emu)) as pc:
        stranger = pc.post(consents_url(emu, "alone.com"), json=consent_body())
    assert stranger.status_code == 403 and stranger.json()["code"] == "20002"


def test_deleting_a_consent_removes_the_service_principal(emu: Emulator) -> None:
    with partner_center(emu, pc_token(emu)) as pc:
        assert pc.post(consents_url(emu), json=consent_body()).status_code == 201
        assert pc.delete(f"{consents_url(emu)}/{APP_ID}").status_code == 204
        assert pc.get(consents_url(emu)).json()["items"] == []
    assert tenant_of(emu, GDAP_CUSTOMER).service_principal_by_app_id(APP_ID) is None


def admin_consent(
    emu: Emulator, path: str, params: dict[str, str], user: str, password: str
) -> httpx.Response:
    url = f"{emu.endpoints.authority_host}/{tenant_of(emu, GDAP_CUSTOMER).id}/{path}"
    with httpx.Client(verify=tls(emu)) as http:
        page = http.get(url, params=params)
        assert page.status_code == 200 and 'id="signin"' in page.text, page.text
        return http.post(url, data={**params, "username": user, "password": password})


@pytest.mark.parametrize("path", ["adminconsent", "v2.0/adminconsent"])
def test_a_customer_global_administrator_consents_through_adminconsent(
    emu: Emulator, path: str
) -> None:
    customer = tenant_of(emu, GDAP_CUSTOMER)
    params = {"client_id": APP_ID, "redirect_uri": "http://localhost", "state": "s-42"}
    if path.startswith("v2.0"):
        params["scope"] = GRAPH_DEFAULT
    member = next(u for u in customer.objects["users"].values()
                  if not customer.roles_of(u["id"]) and u.get("_password"))  # fmt: skip
    refused = admin_consent(emu, path, params, member["userPrincipalName"], member["_password"])
    assert refused.status_code == 200 and 'data-aadsts="90094"' in refused.text
    admin = f"admin@{customer.initial_domain}"
    answer = admin_consent(emu, path, params, admin, f"Admin-{customer.id[:8]}")
    assert answer.status_code == 302, answer.text
    back = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    assert back["admin_consent"] == "True" and back["tenant"] == customer.id
    assert back["state"] == "s-42"
    assert app_only(emu, GDAP_CUSTOMER).json()["error_codes"] == [700016]  # not there yet
    emu.advance(61)
    token = app_only(emu, GDAP_CUSTOMER).json()["access_token"]
    assert set(jwt.decode(token, options={"verify_signature": False})["roles"]) == {
        "User.Read.All", "Group.Read.All", "DelegatedAdminRelationship.ReadWrite.All"
    }  # fmt: skip


def test_a_second_tenant_wide_grant_through_graph_already_exists(emu: Emulator) -> None:
    _customer, graph_sp, app_sp = consented_through_partner_center(emu)
    with graph_client(emu, token_of(emu, GDAP_CUSTOMER, "agent@partner.com")) as graph:
        listed = graph.get(f"/v1.0/servicePrincipals/{app_sp['id']}/oauth2PermissionGrants")
        again = graph.post(
            "/v1.0/oauth2PermissionGrants",
            json={"clientId": app_sp["id"], "consentType": "AllPrincipals",
                  "resourceId": graph_sp["id"], "scope": "User.Read.All"},
        )  # fmt: skip
    assert listed.status_code == 200 and len(listed.json()["value"]) == 1
    assert again.status_code == 400
    assert again.json()["error"]["message"] == "Permission entry already exists."
