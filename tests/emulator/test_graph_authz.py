"""Who may call what: 401 shapes, permissions, the CSP scope, tenant isolation, and the headers
and error body every Graph answer carries."""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest

from csp_emulator import wellknown
from csp_emulator.identity.tokens import SigningKeys
from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator
from tests.emulator.graph_tokens import (
    CUSTOMER_DOMAIN,
    app_token,
    graph_client,
    graph_world,
    tenant_of,
    user_token,
)

WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize",'
    ' client_id="00000003-0000-0000-c000-000000000000"'
)
INNER_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
DENIED = (403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


def a_user_id(emu: Emulator, domain: str = CUSTOMER_DOMAIN) -> str:
    return next(iter(tenant_of(emu, domain).objects["users"]))


# -- 401 ------------------------------------------------------------------------------------------


def test_no_token_is_401_in_graphs_exact_words_with_the_sdk_hint_in_a_header(
    emulator: Emulator,
) -> None:
    with graph_client(emulator, None) as graph:
        response = graph.get("/v1.0/users")
    status, code, message = error_of(response)
    assert (status, code) == (401, "InvalidAuthenticationToken")
    assert message == "Access token is empty."  # Graph's sentence, nothing added
    # The msgraph-sdk trap, named where a developer looks, outside Graph's own fields.
    assert "allowed_hosts" in response.headers["x-csp-emulator-hint"]
    assert response.headers["WWW-Authenticate"] == WWW_AUTHENTICATE


def test_expired_token_is_401(emulator: Emulator) -> None:
    now = int(emulator.world.clock.now())
    token = app_token(emulator, iat=now - 7200, nbf=now - 7200, exp=now - 60)
    with graph_client(emulator, token) as graph:
        response = graph.get("/v1.0/users")
    assert error_of(response) == (
        401,
        "InvalidAuthenticationToken",
        "Access token has expired or is not yet valid.",
    )
    assert response.headers["WWW-Authenticate"] == WWW_AUTHENTICATE


def test_a_token_expires_when_the_world_clock_passes_its_exp(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(graph_world())
    token = app_token(emu, lifetime=3600)
    with graph_client(emu, token) as graph:
        assert graph.get("/v1.0/organization").status_code == 200
        emu.advance(3601)
        assert error_of(graph.get("/v1.0/organization"))[0] == 401


def test_wrong_audience_and_foreign_signature_are_401(emulator: Emulator) -> None:
    wrong_audience = app_token(emulator, aud="https://management.azure.com")
    with graph_client(emulator, wrong_audience) as graph:
        assert error_of(graph.get("/v1.0/users")) == (
            401,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        )
    tenant = tenant_of(emulator, CUSTOMER_DOMAIN)
    now = int(emulator.world.clock.now())
    forged = SigningKeys().sign(
        {"aud": "https://graph.microsoft.com", "tid": tenant.id, "exp": now + 600, "nbf": now,
         "roles": ["Directory.ReadWrite.All"], "idtyp": "app", "appid": str(uuid.uuid4())},
        graph_style=True,
    )  # fmt: skip
    with graph_client(emulator, forged) as graph:
        status, code, message = error_of(graph.get("/v1.0/users"))
    assert (status, code) == (401, "InvalidAuthenticationToken")
    assert message.startswith("Access token validation failure.")


def test_the_graph_app_id_is_an_accepted_audience(emulator: Emulator) -> None:
    token = app_token(emulator, aud=wellknown.GRAPH_APP_ID)
    with graph_client(emulator, token) as graph:
        assert graph.get("/v1.0/users").status_code == 200


# -- error body and headers -----------------------------------------------------------------------


def test_error_body_shape_and_inner_error_date(emulator: Emulator) -> None:
    with graph_client(emulator, app_token(emulator), client_request_id="my-correlation") as graph:
        response = graph.get("/v1.0/users/00000000-0000-0000-0000-00000000dead")
    body = response.json()
    assert list(body) == ["error"] and list(body["error"]) == ["code", "message", "innerError"]
    assert error_of(response) == (
        404,
        "Request_ResourceNotFound",
        "Resource '00000000-0000-0000-0000-00000000dead' does not exist or one of its queried "
        "reference-property objects are not present.",
    )
    inner = body["error"]["innerError"]
    assert INNER_DATE.match(inner["date"])  # no zone, no fraction
    assert inner["request-id"] == response.headers["request-id"]
    assert inner["client-request-id"] == "my-correlation" == response.headers["client-request-id"]


def test_success_headers(emulator: Emulator) -> None:
    with graph_client(emulator, app_token(emulator)) as graph:
        response = graph.get("/v1.0/organization")
    headers = response.headers
    assert headers["content-type"] == (
        "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
        "charset=utf-8"
    )
    assert headers["OData-Version"] == "4.0" and headers["Date"]
    assert (
        uuid.UUID(headers["request-id"]) and headers["client-request-id"] == headers["request-id"]
    )
    assert "DataCenter" in json.loads(headers["x-ms-ags-diagnostic"])["ServerInfo"]
    assert headers["x-ms-resource-unit"] == "1"


def test_unknown_segments_methods_and_versions(emulator: Emulator) -> None:
    user_id = a_user_id(emulator)
    with graph_client(emulator, app_token(emulator)) as graph:
        assert error_of(graph.get("/v1.0/identityRiskEvents")) == (
            400,
            "BadRequest",
            "Resource not found for the segment 'identityRiskEvents'.",
        )
        assert error_of(graph.get(f"/v1.0/users/{user_id}/shoeSizes"))[2] == (
            "Resource not found for the segment 'shoeSizes'."
        )
        assert error_of(graph.delete("/v1.0/organization"))[:2] == (405, "Request_BadRequest")
        assert error_of(graph.get("/v2.0/users"))[0] == 400


# -- permissions ----------------------------------------------------------------------------------


def test_missing_application_permission_is_403(emulator: Emulator) -> None:
    token = app_token(emulator, roles=["User.Read.All"])
    with graph_client(emulator, token) as graph:
        assert graph.get("/v1.0/users").status_code == 200
        assert error_of(graph.get("/v1.0/groups")) == DENIED
        assert error_of(graph.get("/v1.0/deviceManagement/managedDevices")) == DENIED
        assert error_of(graph.post("/v1.0/users", json={})) == DENIED  # writes need ReadWrite


def test_a_token_without_pre_consented_claims_is_refused(emulator: Emulator) -> None:
    """What a CSP app gets before the partner relationship reaches the customer: a token
    without roles (and without scp) — every call is Authorization_RequestDenied."""
    token = app_token(emulator, roles=())
    with graph_client(emulator, token) as graph:
        for path in ("/v1.0/users", "/v1.0/organization", "/beta/users"):
            assert error_of(graph.get(path)) == DENIED


def test_higher_permissions_cover_lower_ones(emulator: Emulator) -> None:
    token = app_token(emulator, roles=["Directory.Read.All"])
    with graph_client(emulator, token) as graph:
        for path in ("/v1.0/users", "/v1.0/groups", "/v1.0/devices", "/v1.0/organization",
                     "/v1.0/domains", "/v1.0/directoryRoles", "/v1.0/applications"):  # fmt: skip
            assert graph.get(path).status_code == 200, path
        # Directory.Read.All does not reach Intune.
        assert error_of(graph.get("/v1.0/deviceManagement/managedDevices")) == DENIED


def test_delegated_calls_need_a_scope(emulator: Emulator) -> None:
    with graph_client(emulator, user_token(emulator, scp="openid profile")) as graph:
        assert error_of(graph.get("/v1.0/users")) == DENIED
    with graph_client(emulator, user_token(emulator, scp="User.ReadBasic.All", wids=())) as graph:
        assert graph.get("/v1.0/users").status_code == 200
    # Directory.AccessAsUser.All is the user's directory powers, not Intune's.
    with graph_client(emulator, user_token(emulator)) as graph:
        assert error_of(graph.get("/v1.0/deviceManagement/managedDevices")) == DENIED
    intune = user_token(emulator, scp="DeviceManagementManagedDevices.Read.All")
    with graph_client(emulator, intune) as graph:
        assert graph.get("/v1.0/deviceManagement/managedDevices").status_code == 200


def test_me_is_for_delegated_tokens_only(emulator: Emulator) -> None:
    with graph_client(emulator, app_token(emulator)) as graph:
        assert error_of(graph.get("/v1.0/me")) == (
            400,
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        )


# -- the CSP scope --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1.0/users/{user}/messages", "ErrorAccessDenied"),
        ("/v1.0/users/{user}/mailFolders/inbox/messages", "ErrorAccessDenied"),
        ("/v1.0/users/{user}/calendar/events", "ErrorAccessDenied"),
        ("/v1.0/users/{user}/drive/root/children", "accessDenied"),
        ("/v1.0/groups/{group}/drive", "accessDenied"),
        ("/v1.0/drives", "accessDenied"),
        ("/v1.0/sites/root", "accessDenied"),
        ("/beta/sites?search=contoso", "accessDenied"),
        ("/v1.0/teams", "Authorization_RequestDenied"),
        ("/v1.0/chats", "Authorization_RequestDenied"),
        ("/v1.0/users/{user}/joinedTeams", "Authorization_RequestDenied"),
        ("/v1.0/security/alerts", "Authorization_RequestDenied"),
        ("/v1.0/reports/getOffice365ActiveUserDetail(period='D7')", "Authorization_RequestDenied"),
    ],
)
def test_outside_directory_and_intune_is_refused(emulator: Emulator, path: str, code: str) -> None:
    tenant = tenant_of(emulator, CUSTOMER_DOMAIN)
    url = path.format(user=a_user_id(emulator), group=next(iter(tenant.objects["groups"])))
    # Even an app holding the workload's permission is refused: the CSP rule, not the roles.
    token = app_token(emulator, roles=["Mail.Read", "Files.Read.All", "Sites.Read.All",
                                       "Team.ReadBasic.All", "Directory.Read.All"])  # fmt: skip
    with graph_client(emulator, token) as graph:
        response = graph.get(url)
    assert response.status_code == 403 and response.json()["error"]["code"] == code


def test_me_messages_is_refused_for_a_partner_agent(emulator: Emulator) -> None:
    with graph_client(emulator, user_token(emulator, partner_ref="partner.com")) as graph:
        response = graph.get("/v1.0/me/messages")
    assert error_of(response)[:2] == (403, "ErrorAccessDenied")


# -- tenant isolation -----------------------------------------------------------------------------


def test_a_token_serves_its_own_tenant_only(emulator: Emulator) -> None:
    other = "northwind.onmicrosoft.com"
    foreign_user = a_user_id(emulator, other)
    foreign_group = next(iter(tenant_of(emulator, other).objects["groups"]))
    with graph_client(emulator, app_token(emulator, CUSTOMER_DOMAIN)) as graph:
        listed = {u["id"] for u in graph.get("/v1.0/users").json()["value"]}
        assert listed == set(tenant_of(emulator, CUSTOMER_DOMAIN).objects["users"])
        assert foreign_user not in listed
        assert error_of(graph.get(f"/v1.0/users/{foreign_user}"))[:2] == (
            404,
            "Request_ResourceNotFound",
        )
        assert graph.get(f"/v1.0/groups/{foreign_group}/members").status_code == 404
        org = graph.get("/v1.0/organization").json()["value"][0]
        assert org["id"] == tenant_of(emulator, CUSTOMER_DOMAIN).id
        foreign_tenant = tenant_of(emulator, other).id
        assert graph.get(f"/v1.0/organization/{foreign_tenant}").status_code == 404


def test_a_token_for_a_tenant_the_world_does_not_have_is_401(emulator: Emulator) -> None:
    token = app_token(emulator, tid=str(uuid.uuid4()))
    with graph_client(emulator, token) as graph:
        assert error_of(graph.get("/v1.0/users"))[:2] == (401, "InvalidAuthenticationToken")
